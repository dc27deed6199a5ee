"""Fetching crops: Supabase Storage (through httpx, against the fake) and a local directory."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from pgqueue_enricher.errors import PermanentFailure
from pgqueue_enricher.providers.imaging import check_image, sniff_image
from pgqueue_enricher.providers.storage import LocalDirStore, SupabaseStore, open_crop_store
from pgqueue_enricher.settings import Settings
from tests.fakes.pytest_plugin import FAKE_SUPABASE_KEY
from tests.fakes.server import FakeServer, Fault, png_header, tiny_png
from tests.support.helpers import raised_failure

CROP = tiny_png()
PATH = "project-1/page-2/pointer 3#a.png"

BAD_PATHS = [
    "../secrets.png",
    "crops/../../etc/passwd",
    "crops/./a.png",
    "crops//a.png",
    "/etc/passwd",
    "crops\\a.png",
    "C:\\crops\\a.png",
    "c:a.png",
    "https://evil.example/a.png",
    "file:///etc/passwd",
    "//evil.example/a.png",
    "crops/a.png\x00.jpg",
    "crops/\na.png",
    "crops/a\x7f.png",
    "x" * 2000,
]


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = (
        b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    )
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def webp(chunk: bytes, width: int, height: int) -> bytes:
    if chunk == b"VP8 ":
        body = b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width, height)
    elif chunk == b"VP8L":
        body = b"\x2f" + struct.pack("<I", (width - 1) | ((height - 1) << 14))
    else:
        body = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    payload = b"WEBP" + chunk + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


@pytest.fixture
async def store(provider_settings: Settings) -> AsyncIterator[SupabaseStore]:
    crop_store = SupabaseStore(provider_settings)
    yield crop_store
    await crop_store.aclose()


# -- Supabase ------------------------------------------------------------------------------


async def test_downloads_the_object_with_both_key_headers(
    fake_server: FakeServer, store: SupabaseStore
) -> None:
    fake_server.storage.put(PATH, CROP)
    assert await store.fetch(PATH) == CROP
    request = fake_server.storage.last
    assert request.path == "/storage/v1/object/project-files/project-1/page-2/pointer%203%23a.png"
    assert request.headers["apikey"] == FAKE_SUPABASE_KEY
    assert request.headers["authorization"] == f"Bearer {FAKE_SUPABASE_KEY}"


async def test_new_secret_keys_are_sent_as_apikey_only(
    fake_server: FakeServer, provider_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sb_secret_fake_0123456789abcdef"
    monkeypatch.setattr(fake_server.storage, "key", key)
    fake_server.storage.put(PATH, CROP)
    crop_store = SupabaseStore(provider_settings.model_copy(update={"supabase_service_key": SecretStr(key)}))
    try:
        assert await crop_store.fetch(PATH) == CROP
    finally:
        await crop_store.aclose()
    assert fake_server.storage.last.headers["apikey"] == key
    assert "authorization" not in fake_server.storage.last.headers


async def test_a_missing_object_answered_as_400_with_a_404_body_is_not_found(
    fake_server: FakeServer, store: SupabaseStore
) -> None:
    failure = await raised_failure(store.fetch(PATH))
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "crop_not_found"
    assert PATH in failure.reason


async def test_an_http_404_is_not_found(fake_server: FakeServer, store: SupabaseStore) -> None:
    fake_server.storage.put(PATH, CROP)
    fake_server.storage.script(["404"])
    failure = await raised_failure(store.fetch(PATH))
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "crop_not_found"


async def test_a_wrong_key_answered_as_400_with_a_403_body_is_a_refused_key(
    fake_server: FakeServer, provider_settings: Settings
) -> None:
    wrong = "wrong-supabase-key-4444-5555"
    fake_server.storage.put(PATH, CROP)
    crop_store = SupabaseStore(
        provider_settings.model_copy(update={"supabase_service_key": SecretStr(wrong)})
    )
    try:
        failure = await raised_failure(crop_store.fetch(PATH))
    finally:
        await crop_store.aclose()
    assert failure.kind == "storage_auth"
    assert wrong not in failure.reason and "***" not in failure.reason


async def test_an_oversize_crop_is_rejected_from_its_content_length(
    fake_server: FakeServer, provider_settings: Settings
) -> None:
    fake_server.storage.put(PATH, tiny_png(200, 200, extra=os.urandom(5000)))
    crop_store = SupabaseStore(provider_settings.model_copy(update={"pass2_max_image_bytes": 4000}))
    try:
        failure = await raised_failure(crop_store.fetch(PATH))
    finally:
        await crop_store.aclose()
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "crop_rejected"
    assert "over the PASS2_MAX_IMAGE_BYTES limit of 4,000" in failure.reason


async def test_an_oversize_crop_without_content_length_is_rejected_while_streaming(
    fake_server: FakeServer, provider_settings: Settings
) -> None:
    fake_server.storage.put(PATH, tiny_png(200, 200, extra=os.urandom(200_000)))
    fake_server.storage.script(["no_length"])
    crop_store = SupabaseStore(provider_settings.model_copy(update={"pass2_max_image_bytes": 100_000}))
    try:
        failure = await raised_failure(crop_store.fetch(PATH))
    finally:
        await crop_store.aclose()
    assert failure.kind == "crop_rejected"
    assert "while downloading" in failure.reason


async def test_an_endless_body_is_cut_off_at_the_limit(
    fake_server: FakeServer, provider_settings: Settings
) -> None:
    fake_server.storage.script(["endless"])  # up to 1 GiB, chunked, no Content-Length
    crop_store = SupabaseStore(provider_settings.model_copy(update={"pass2_max_image_bytes": 1_000_000}))
    started = time.monotonic()
    try:
        failure = await raised_failure(crop_store.fetch(PATH))
    finally:
        await crop_store.aclose()
    assert failure.kind == "crop_rejected"
    assert time.monotonic() - started < 2.0


async def test_a_small_crop_without_content_length_is_accepted(
    fake_server: FakeServer, store: SupabaseStore
) -> None:
    fake_server.storage.put(PATH, CROP)
    fake_server.storage.script(["no_length"])
    assert await store.fetch(PATH) == CROP


async def test_non_image_bytes_are_rejected(fake_server: FakeServer, store: SupabaseStore) -> None:
    fake_server.storage.script([Fault("body", body=b"<html><body>Bad gateway</body></html>")])
    failure = await raised_failure(store.fetch(PATH))
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "crop_rejected"
    assert "not a PNG, JPEG or WebP image" in failure.reason
    assert "HTML" in failure.reason


async def test_a_png_declaring_50000_by_50000_pixels_is_rejected_undecoded(
    fake_server: FakeServer, store: SupabaseStore
) -> None:
    fake_server.storage.put(PATH, png_header(50_000, 50_000))
    failure = await raised_failure(store.fetch(PATH))
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "crop_rejected"
    assert "50,000x50,000" in failure.reason
    assert "PASS2_MAX_IMAGE_PIXELS" in failure.reason


@pytest.mark.parametrize("path", [None, "", "   ", "\t\n"])
async def test_a_pointer_without_png_path_is_crop_missing_without_a_request(
    fake_server: FakeServer, store: SupabaseStore, path: str | None
) -> None:
    failure = await raised_failure(store.fetch(path))
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "crop_missing"
    assert "pointer has no png_path" in failure.reason
    assert fake_server.requests == []


@pytest.mark.parametrize("path", BAD_PATHS)
async def test_paths_that_could_escape_the_bucket_are_rejected_without_a_request(
    fake_server: FakeServer, store: SupabaseStore, path: str
) -> None:
    fake_server.storage.put("etc/passwd", CROP)
    failure = await raised_failure(store.fetch(path))
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "crop_rejected"
    assert fake_server.requests == []


# -- local directory -----------------------------------------------------------------------


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    root = tmp_path / "crops"
    root.mkdir()
    return Settings(_env_file=None, storage_dir=str(root), supabase_url=None)  # type: ignore[call-arg]


async def test_storage_dir_wins_over_supabase(local_settings: Settings) -> None:
    settings = local_settings.model_copy(update={"supabase_url": "http://127.0.0.1:9"})
    assert isinstance(open_crop_store(settings), LocalDirStore)


async def test_local_store_reads_the_file_under_storage_dir(local_settings: Settings) -> None:
    target = Path(local_settings.storage_dir or "") / "project-1" / "pointer 3.png"
    target.parent.mkdir()
    target.write_bytes(CROP)
    assert await open_crop_store(local_settings).fetch("project-1/pointer 3.png") == CROP


async def test_local_store_missing_file_is_not_found(local_settings: Settings) -> None:
    failure = await raised_failure(LocalDirStore(local_settings).fetch("project-1/absent.png"))
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "crop_not_found"


@pytest.mark.parametrize("path", BAD_PATHS)
async def test_local_store_rejects_escaping_paths(
    local_settings: Settings, tmp_path: Path, path: str
) -> None:
    (tmp_path / "secrets.png").write_bytes(CROP)
    failure = await raised_failure(LocalDirStore(local_settings).fetch(path))
    assert failure.kind == "crop_rejected"


async def test_local_store_rejects_a_symlink_that_leaves_the_directory(
    local_settings: Settings, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(CROP)
    (Path(local_settings.storage_dir or "") / "link.png").symlink_to(outside)
    failure = await raised_failure(LocalDirStore(local_settings).fetch("link.png"))
    assert failure.kind == "crop_rejected"
    assert "outside STORAGE_DIR" in failure.reason


async def test_local_store_checks_the_size_before_reading(local_settings: Settings) -> None:
    big = Path(local_settings.storage_dir or "") / "big.png"
    big.write_bytes(CROP)
    os.truncate(big, 2 * 1024**3)  # sparse: 2 GB declared, nothing written
    failure = await raised_failure(LocalDirStore(local_settings).fetch("big.png"))
    assert failure.kind == "crop_rejected"
    assert "PASS2_MAX_IMAGE_BYTES" in failure.reason


async def test_local_store_rejects_directories_and_non_images(local_settings: Settings) -> None:
    root = Path(local_settings.storage_dir or "")
    (root / "folder").mkdir()
    (root / "notes.png").write_bytes(b"%PDF-1.7 not a png")
    crop_store = LocalDirStore(local_settings)
    assert (await raised_failure(crop_store.fetch("folder"))).kind == "crop_rejected"
    failure = await raised_failure(crop_store.fetch("notes.png"))
    assert failure.kind == "crop_rejected"
    assert "PDF" in failure.reason


async def test_local_store_applies_the_pixel_limit(local_settings: Settings) -> None:
    (Path(local_settings.storage_dir or "") / "bomb.png").write_bytes(png_header(50_000, 50_000))
    failure = await raised_failure(LocalDirStore(local_settings).fetch("bomb.png"))
    assert failure.kind == "crop_rejected"
    assert "pixels" in failure.reason


# -- image headers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (tiny_png(), "image/png"),
        (jpeg(640, 480), "image/jpeg"),
        (webp(b"VP8 ", 640, 480), "image/webp"),
        (webp(b"VP8L", 640, 480), "image/webp"),
        (webp(b"VP8X", 640, 480), "image/webp"),
    ],
)
def test_png_jpeg_and_webp_headers_are_read(data: bytes, mime: str) -> None:
    assert sniff_image(data) == mime
    assert check_image(data, max_pixels=640 * 480) == mime


@pytest.mark.parametrize(
    "data",
    [
        jpeg(20_000, 20_000),
        webp(b"VP8X", 16_000, 16_000),
        webp(b"VP8L", 16_000, 16_000),
        png_header(50_000, 50_000),
    ],
    ids=["jpeg", "webp-vp8x", "webp-vp8l", "png"],
)
def test_declared_sizes_over_the_pixel_limit_are_rejected(data: bytes) -> None:
    with pytest.raises(PermanentFailure, match="PASS2_MAX_IMAGE_PIXELS"):
        check_image(data, max_pixels=100_000_000)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff\xe0\x00\x10JFIF",
        b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        b"GIF89a....",
    ],
    ids=["empty", "png-truncated", "jpeg-without-frame", "webp-truncated", "gif"],
)
def test_truncated_or_other_formats_are_rejected(data: bytes) -> None:
    with pytest.raises(PermanentFailure) as caught:
        check_image(data, max_pixels=100_000_000)
    assert caught.value.kind == "crop_rejected"
