"""The Supabase Storage fake: `GET /storage/v1/object/{bucket}/{key}` serves objects put with
`put()` (or `POST /_fake/objects/{bucket}/{key}`), and answers like Storage when they are not
there or the key is wrong; `GET /storage/v1/bucket/{id}` (`doctor`) finds `buckets`. Also the
PNG builders the tests store in it."""

from __future__ import annotations

import binascii
import re
import struct
import zlib
from collections.abc import Iterable
from urllib.parse import unquote

from tests.fakes.base import Exchange, Fault, RecordedRequest, Route, ServiceFake

DEFAULT_BUCKET = "project-files"

STORAGE_KINDS = frozenset(
    {
        "ok", "404", "400", "400_not_found", "401", "403", "429", "429_no_retry_after", "408",
        "500", "503", "timeout", "drop", "drop_mid_body", "no_length", "endless", "body",
    }
)  # fmt: skip

_NOT_FOUND = {"statusCode": "404", "code": "NoSuchKey", "error": "not_found", "message": "Object not found"}
_TOO_MANY = {"statusCode": "429", "error": "too_many_requests", "message": "Too many requests"}


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = binascii.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header(width: int, height: int) -> bytes:
    """A PNG that only declares its size (no pixel data): enough to test size limits."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def tiny_png(width: int = 8, height: int = 6, *, extra: bytes = b"") -> bytes:
    """A valid greyscale PNG. `extra` goes into a private ancillary chunk; the default
    contains bytes whose base64 has '-' and '_' in the URL-safe alphabet."""
    rows = b"".join(b"\x00" + bytes((x * 31 + y * 17) % 256 for x in range(width)) for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    private = extra or (b"\xfb\xff\xbf" * 8 + b"\xf8\x3e\xff")
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"teSt", private)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


class StorageFake(ServiceFake):
    name = "storage"
    kinds = STORAGE_KINDS

    def routes(self) -> list[Route]:
        return [
            ("GET", r"/storage/v1/object/(?P<rest>.*)", self._download),
            ("POST", r"/_fake/objects/(?P<rest>.*)", self._upload),
            ("GET", r"/storage/v1/bucket/(?P<bucket>[^/]+)", self._bucket),
        ]

    def reset(self) -> None:
        super().reset()
        self.objects: dict[str, bytes] = {}
        # Buckets the bucket lookup finds (objects are served whatever these are).
        self.buckets: set[str] = {DEFAULT_BUCKET}
        self.bucket_lookups = 0

    def put(self, path: str, data: bytes, bucket: str = DEFAULT_BUCKET) -> None:
        with self._lock:
            self.objects[f"{bucket}/{path}"] = data

    def _upload(self, ex: Exchange, match: re.Match[str], body: bytes) -> None:
        bucket, _, key = unquote(match["rest"]).partition("/")
        self.put(key, body, bucket=bucket)
        ex.json(201, {"Key": f"{bucket}/{key}", "size": len(body)})

    def _download(self, ex: Exchange, match: re.Match[str], body: bytes) -> None:
        bucket, _, key = match["rest"].partition("/")
        bucket, key = unquote(bucket), unquote(key)
        record = RecordedRequest("storage", "GET", ex.path, ex.headers_dict())
        auth = record.headers.get("authorization")
        if self.key is not None and (
            record.headers.get("apikey") != self.key or (auth is not None and auth != f"Bearer {self.key}")
        ):
            # What Storage answers for a key it cannot verify.
            ex.json(400, {"statusCode": "403", "error": "Unauthorized", "message": "Invalid Compact JWS"})
            return
        ex.serve(self, record, lambda fault: self._reply(ex, fault, f"{bucket}/{key}"))

    def _key_refused(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization")
        return self.key is not None and (
            headers.get("apikey") != self.key or (auth is not None and auth != f"Bearer {self.key}")
        )

    def _bucket(self, ex: Exchange, match: re.Match[str], body: bytes) -> None:
        """The bucket's row, or Storage's 400 whose body says 404 (older Storage versions)."""
        bucket = unquote(match["bucket"])
        with self._lock:
            self.bucket_lookups += 1
            exists = bucket in self.buckets
        if self._key_refused(ex.headers_dict()):
            ex.json(400, {"statusCode": "403", "error": "Unauthorized", "message": "Invalid Compact JWS"})
        elif not exists:
            ex.json(400, {"statusCode": "404", "error": "Bucket not found", "message": "Bucket not found"})
        else:
            stamp = "2026-01-01T00:00:00.000Z"
            row = {"id": bucket, "name": bucket, "owner": "", "public": False, "file_size_limit": None}
            ex.json(200, {**row, "allowed_mime_types": None, "created_at": stamp, "updated_at": stamp})

    def _reply(self, ex: Exchange, fault: Fault, object_key: str) -> None:
        kind = fault.kind
        data = self.objects.get(object_key)
        if ex.common(fault):
            return
        if kind == "404":
            ex.json(404, _NOT_FOUND)
        elif kind == "400":
            ex.json(400, {"statusCode": "400", "error": "InvalidRequest", "message": "Invalid object key"})
        elif kind == "400_not_found" or (kind in ("ok", "no_length") and data is None):
            ex.json(400, _NOT_FOUND)
        elif kind in ("401", "403"):
            ex.json(int(kind), {"statusCode": kind, "error": "Unauthorized", "message": "invalid signature"})
        elif kind == "429":
            ex.json(429, _TOO_MANY, {"Retry-After": fault.retry_after or "4"})
        elif kind == "429_no_retry_after":
            ex.json(429, _TOO_MANY)
        elif kind in ("500", "503"):
            payload = {"statusCode": kind, "error": "internal", "message": "Internal Server Error"}
            ex.json(int(kind), payload, ex.retry_after(fault))
        elif kind == "body":
            ex.send(200, fault.body or b"", "application/octet-stream")
        elif kind == "no_length":
            assert data is not None
            ex.stream(iter(data[i : i + 65536] for i in range(0, len(data), 65536)))
        elif kind == "endless":
            ex.stream(self._endless())
        else:
            assert data is not None
            ex.send(200, data, "image/png", {"Cache-Control": "no-cache"})

    def _endless(self) -> Iterable[bytes]:
        yield png_header(100, 100)[:-12]
        chunk = b"\x00" * 65536
        for _ in range(16384):  # 1 GiB at most
            if self._server._stopping.is_set():
                return
            yield chunk
