"""Deciding whether crop bytes are an image worth sending, without decoding them.

A crop that is not a PNG, JPEG or WebP (an HTML error page served with status 200, a
truncated upload) would cost a Gemini call and come back as nonsense; a "decompression
bomb" (a small file declaring 50,000 x 50,000 pixels) could exhaust memory in whatever
decodes it later. Both are caught here from the header alone, so no image library is
needed and nothing is ever decompressed.
"""

from __future__ import annotations

import struct

from pgqueue_enricher.errors import PermanentFailure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"

# JPEG start-of-frame markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share
# the range but are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _reject(reason: str) -> PermanentFailure:
    return PermanentFailure("crop_rejected", reason)


def _describe_start(data: bytes) -> str:
    """A hint for the operator about what was received instead of an image."""
    head = data[:64].lstrip()
    if head[:1] in (b"<",):
        return "it looks like HTML or XML, perhaps an error page"
    if head[:1] in (b"{", b"["):
        return "it looks like JSON, perhaps an error response"
    if data[:4] == b"%PDF":
        return "it is a PDF, not a cropped image"
    if data[:4] in (b"GIF8", b"II*\x00", b"MM\x00*") or data[:2] == b"BM":
        return "it is an image format Gemini crops are not stored in (GIF, TIFF or BMP)"
    return "first bytes: " + data[:8].hex(" ")


def sniff_image(data: bytes) -> str:
    """The MIME type from the magic bytes; anything else is a permanent rejection."""
    if not data:
        raise _reject("crop is empty (0 bytes)")
    if data.startswith(PNG_SIGNATURE):
        return "image/png"
    if data.startswith(JPEG_SOI):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise _reject(f"crop is not a PNG, JPEG or WebP image ({_describe_start(data)})")


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise _reject("crop is a truncated or malformed PNG (no IHDR header)")
    return struct.unpack(">II", data[16:24])


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    size = len(data)
    while pos < size:
        if data[pos] != 0xFF:
            raise _reject("crop is a malformed JPEG (bad marker before the frame header)")
        while pos < size and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= size:
            break
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            break
        if pos + 2 > size:
            break
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            raise _reject("crop is a malformed JPEG (segment length below 2)")
        if marker in _JPEG_SOF:
            if pos + 7 > size:
                break
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            return width, height
        pos += length
    raise _reject("crop is a truncated or malformed JPEG (no frame header with its size)")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    body = data[20:]
    if chunk == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", body[6:10])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        (bits,) = struct.unpack("<I", body[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(body) >= 10:
        width = int.from_bytes(body[4:7], "little") + 1
        height = int.from_bytes(body[7:10], "little") + 1
        return width, height
    raise _reject("crop is a truncated or malformed WebP (no VP8, VP8L or VP8X header)")


def image_size(data: bytes) -> tuple[str, int, int]:
    """(mime, width, height) as declared by the header."""
    mime = sniff_image(data)
    if mime == "image/png":
        width, height = _png_size(data)
    elif mime == "image/jpeg":
        width, height = _jpeg_size(data)
    else:
        width, height = _webp_size(data)
    return mime, width, height


def check_image(data: bytes, max_pixels: int) -> str:
    """The MIME type, once the header shows a plausible image no larger than `max_pixels`."""
    mime, width, height = image_size(data)
    kind = mime.split("/", 1)[1].upper()
    if width <= 0 or height <= 0:
        raise _reject(f"crop {kind} declares an empty size ({width}x{height} pixels)")
    if width * height > max_pixels:
        raise _reject(
            f"crop {kind} declares {width:,}x{height:,} = {width * height:,} pixels, over the "
            f"PASS2_MAX_IMAGE_PIXELS limit of {max_pixels:,}; it was not decoded"
        )
    return mime
