"""Fetching a pointer's crop: Supabase Storage over REST, or a local directory.

`png_path` comes from a database row written by another program, so it is treated as
untrusted: it is validated before any I/O and can never name something outside the bucket
(or outside STORAGE_DIR). Sizes are checked before bytes are held in memory, and the bytes
are checked to be a plausible image before they are sent anywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from pathlib import Path
from urllib.parse import quote

import httpx

from pgqueue_enricher.errors import PermanentFailure, TransientFailure
from pgqueue_enricher.providers.checks import check_http_url, check_key
from pgqueue_enricher.providers.http_failures import (
    is_transient_status,
    retry_after_header,
    transient_status_failure,
)
from pgqueue_enricher.providers.imaging import check_image
from pgqueue_enricher.providers.types import CropStore
from pgqueue_enricher.redact import register_settings_secrets
from pgqueue_enricher.settings import ConfigError, Settings

MAX_PATH_CHARS = 1024
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# How much of an error body is read to classify it; error bodies are small JSON documents.
_ERROR_BODY_BYTES = 16 * 1024


def validate_png_path(png_path: str | None) -> list[str]:
    """The path's segments, or a permanent failure that explains what is wrong with it."""
    if png_path is None or not isinstance(png_path, str) or not png_path.strip():
        raise PermanentFailure("crop_missing", "pointer has no png_path, so there is no crop to describe")
    shown = repr(png_path[:80])
    if len(png_path) > MAX_PATH_CHARS:
        raise PermanentFailure("crop_rejected", f"png_path is {len(png_path)} characters long; refused")
    if _CONTROL.search(png_path):
        raise PermanentFailure("crop_rejected", f"png_path {shown} contains control characters; refused")
    if "\\" in png_path:
        raise PermanentFailure("crop_rejected", f"png_path {shown} contains a backslash; refused")
    if "://" in png_path or _SCHEME.match(png_path):
        raise PermanentFailure(
            "crop_rejected", f"png_path {shown} is a URL, not a path inside the bucket; refused"
        )
    if png_path.startswith("/"):
        raise PermanentFailure(
            "crop_rejected", f"png_path {shown} is absolute; it must be relative to the bucket"
        )
    segments = png_path.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise PermanentFailure(
            "crop_rejected",
            f"png_path {shown} has an empty, '.' or '..' segment and could escape the bucket; refused",
        )
    return segments


def _too_big(size: int, limit: int, path: str) -> PermanentFailure:
    return PermanentFailure(
        "crop_rejected",
        f"crop {path!r} is {size:,} bytes, over the PASS2_MAX_IMAGE_BYTES limit of {limit:,}; not loaded",
    )


class LocalDirStore:
    """Crops as files under STORAGE_DIR (demo, tests, and hosts that sync the bucket to disk)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.storage_dir is not None
        self._root = Path(settings.storage_dir).expanduser().resolve()
        self._max_bytes = settings.pass2_max_image_bytes
        self._max_pixels = settings.pass2_max_image_pixels

    async def open(self) -> None:
        """A missing or unreadable folder would fail every pointer as `crop_not_found`."""
        root = str(self._root)
        if not self._root.is_dir():
            raise ConfigError(
                f"STORAGE_DIR {root!r} does not exist or is not a directory: "
                "point STORAGE_DIR at the folder that holds the crops"
            )
        if not os.access(self._root, os.R_OK | os.X_OK):
            raise ConfigError(
                f"STORAGE_DIR {root!r} is not readable by this process: "
                "grant it read and search permission, or point STORAGE_DIR elsewhere"
            )

    async def fetch(self, png_path: str | None) -> bytes:
        segments = validate_png_path(png_path)
        assert png_path is not None
        data = await asyncio.to_thread(self._read, png_path, segments)
        check_image(data, self._max_pixels)
        return data

    def _read(self, png_path: str, segments: list[str]) -> bytes:
        # resolve() follows symlinks, so a link pointing outside the root is caught here too.
        target = self._root.joinpath(*segments).resolve()
        if not target.is_relative_to(self._root):
            raise PermanentFailure(
                "crop_rejected", f"png_path {png_path!r} resolves outside STORAGE_DIR; refused"
            )
        try:
            with open(target, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise PermanentFailure("crop_rejected", f"png_path {png_path!r} is not a regular file")
                if info.st_size > self._max_bytes:
                    raise _too_big(info.st_size, self._max_bytes, png_path)
                # The file may grow between fstat and read: never read past the limit.
                data = handle.read(self._max_bytes + 1)
        except FileNotFoundError:
            raise PermanentFailure(
                "crop_not_found", f"crop {png_path!r} not found in STORAGE_DIR {str(self._root)!r}"
            ) from None
        except IsADirectoryError:
            raise PermanentFailure("crop_rejected", f"png_path {png_path!r} is a directory") from None
        except PermissionError:
            raise PermanentFailure(
                "crop_rejected", f"crop {png_path!r} in STORAGE_DIR is not readable (permission denied)"
            ) from None
        if len(data) > self._max_bytes:
            raise _too_big(len(data), self._max_bytes, png_path)
        return data

    async def aclose(self) -> None:
        return None


class SupabaseStore:
    """Private-bucket downloads through the Storage REST API, over one pooled connection set."""

    def __init__(self, settings: Settings) -> None:
        if not settings.supabase_url:
            raise ConfigError("SUPABASE_URL is not set (or set STORAGE_DIR for local crops)")
        if settings.supabase_service_key is None:
            raise ConfigError("SUPABASE_SERVICE_KEY is not set (or set STORAGE_DIR for local crops)")
        register_settings_secrets(settings)
        self._url, self._key = settings.supabase_url, settings.supabase_service_key
        key = settings.supabase_service_key.get_secret_value()
        headers = {"apikey": key}
        if not key.startswith("sb_secret_"):  # new secret keys are not JWTs and go in apikey only
            headers["Authorization"] = f"Bearer {key}"
        self._base = settings.supabase_url.rstrip("/")
        self._bucket = settings.storage_bucket
        self._max_bytes = settings.pass2_max_image_bytes
        self._max_pixels = settings.pass2_max_image_pixels
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(settings.pass2_storage_timeout),
            limits=httpx.Limits(max_connections=max(10, 2 * settings.pass2_max_concurrent)),
            follow_redirects=False,
        )

    async def open(self) -> None:
        """Shapes only: a download needs a real crop path, and start-up needs no network."""
        check_http_url("SUPABASE_URL", self._url, "the project URL, e.g. https://<ref>.supabase.co")
        check_key("SUPABASE_SERVICE_KEY", self._key)

    def object_url(self, segments: list[str]) -> str:
        path = "/".join(quote(segment, safe="") for segment in segments)
        return f"{self._base}/storage/v1/object/{quote(self._bucket, safe='')}/{path}"

    async def fetch(self, png_path: str | None) -> bytes:
        segments = validate_png_path(png_path)
        assert png_path is not None
        try:
            data = await self._download(self.object_url(segments), png_path)
        except httpx.TimeoutException:
            raise TransientFailure(
                "timeout",
                f"Supabase Storage did not answer within {self._client.timeout.read}s "
                f"while downloading {png_path!r} (PASS2_STORAGE_TIMEOUT)",
            ) from None
        except httpx.RequestError as exc:
            raise TransientFailure(
                "connection",
                f"could not reach Supabase Storage at {self._base} ({type(exc).__name__}: {exc})",
            ) from None
        check_image(data, self._max_pixels)
        return data

    async def _download(self, url: str, png_path: str) -> bytes:
        async with self._client.stream("GET", url) as response:
            if response.status_code != 200:
                body = await _read_some(response, _ERROR_BODY_BYTES)
                raise self._classify(response, body, png_path)
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
                raise _too_big(int(declared), self._max_bytes, png_path)
            buffer = bytearray()
            async for chunk in response.aiter_bytes():
                buffer += chunk
                if len(buffer) > self._max_bytes:
                    raise PermanentFailure(
                        "crop_rejected",
                        f"crop {png_path!r} exceeded the PASS2_MAX_IMAGE_BYTES limit of "
                        f"{self._max_bytes:,} bytes while downloading; not loaded",
                    )
            return bytes(buffer)

    def _classify(self, response: httpx.Response, body: bytes, png_path: str) -> Exception:
        status = response.status_code
        info = _json_object(body)
        inner = str(info.get("statusCode") or "")
        message = str(info.get("message") or info.get("error") or "")[:200]
        where = f"{self._bucket}/{png_path}"
        if status == 404 or (status == 400 and (inner == "404" or info.get("code") == "NoSuchKey")):
            return PermanentFailure("crop_not_found", f"crop not found in Supabase Storage: {where!r}")
        if status in (401, 403) or (status == 400 and inner in ("401", "403")):
            return PermanentFailure(
                "storage_auth",
                f"Supabase Storage refused the service key (HTTP {status}"
                f"{', ' + message if message else ''}): check SUPABASE_SERVICE_KEY and STORAGE_BUCKET",
            )
        if is_transient_status(status):
            return transient_status_failure(
                "storage",
                status,
                f"Supabase Storage answered HTTP {status} for {where!r}",
                retry_after=retry_after_header(response.headers),
            )
        return PermanentFailure(
            "storage_error",
            f"Supabase Storage refused the download of {where!r} (HTTP {status}"
            f"{': ' + message if message else ''})",
        )

    async def aclose(self) -> None:
        await self._client.aclose()


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if len(buffer) >= limit:
            break
    return bytes(buffer[:limit])


def _json_object(body: bytes) -> dict[str, object]:
    try:
        value = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def open_crop_store(settings: Settings) -> CropStore:
    """STORAGE_DIR wins when set (SUPABASE_* are then not needed)."""
    if settings.storage_dir:
        return LocalDirStore(settings)
    return SupabaseStore(settings)
