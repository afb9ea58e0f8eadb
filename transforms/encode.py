"""Encoding the output, and stripping metadata from original bytes that are kept as they are.

Outputs never carry source metadata (EXIF with GPS positions, XMP, comments, ICC profiles): new
encodes are written from a bare RGB image with no `exif`/`icc_profile` arguments, and kept originals
lose their metadata losslessly, segment by segment (JPEG) or chunk by chunk (PNG), without touching
the compressed image data.
"""
from __future__ import annotations

import io
import struct

from PIL import Image

from .options import OutputFormat

# JPEG markers kept when stripping: APP0 (JFIF) and APP14 ("Adobe": says whether the channels are
# YCbCr or RGB, so dropping it could change colours; it holds no personal data).
_KEEP_APP = {0xE0: b"JFIF\x00", 0xEE: b"Adobe"}
# PNG chunks kept when stripping: the image itself, its palette/transparency and sRGB/gamma data.
# Dropped: tEXt, zTXt, iTXt, eXIf, iCCP, tIME, pHYs, and any unknown ancillary chunk.
_KEEP_PNG = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"sRGB", b"gAMA", b"cHRM"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode_image(image: Image.Image, fmt: OutputFormat, quality: int) -> bytes:
    """Encode an RGB (or RGBX) image with PIL (JPEG: libjpeg-turbo, 4:2:0, no optimize pass).

    simplejpeg's encoder was measured too: no faster at 437x256 q90, and it needs an extra copy.
    """
    buffer = io.BytesIO()
    bare = {"icc_profile": None, "exif": b""}  # PIL's PNG writer would fall back to image.info
    if image.mode != "RGB" and not (fmt == "jpeg" and image.mode == "RGBX"):
        image = image.convert("RGB")  # libjpeg reads RGBX as it is: no copy for the common case
    if fmt == "jpeg":
        image.save(buffer, "JPEG", quality=quality, **bare)
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=quality, method=4, **bare)
    else:
        image.save(buffer, "PNG", compress_level=6, **bare)
    return buffer.getvalue()


def strip_metadata(data: bytes, fmt: str) -> bytes | None:
    """The same image without metadata, or None when `data` cannot be stripped safely."""
    try:
        if fmt == "jpeg":
            return strip_jpeg(data)
        if fmt == "png":
            return strip_png(data)
    except (ValueError, struct.error, IndexError):
        return None
    return None


def strip_jpeg(data: bytes) -> bytes:
    """Drop APP1..APP15 (EXIF, XMP, ICC, Photoshop...) and COM segments, except those in _KEEP_APP.

    Everything from the first SOS marker on (the entropy-coded data) is copied verbatim.
    """
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    out, pos = [b"\xff\xd8"], 2
    while pos < len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"expected a marker at {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is image data
            out.append(data[pos:])
            return b"".join(out)
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos : pos + 2 + length]
        if len(segment) != 2 + length:
            raise ValueError("segment runs past the end")
        if not _is_metadata(marker, segment[4:]):
            out.append(segment)
        pos += 2 + length
    raise ValueError("no start of scan")


def _is_metadata(marker: int, payload: bytes) -> bool:
    if marker == 0xFE:  # COM
        return True
    if 0xE0 <= marker <= 0xEF:
        keep = _KEEP_APP.get(marker)
        return keep is None or not payload.startswith(keep)
    return False


def strip_png(data: bytes) -> bytes:
    """Keep only the chunks in _KEEP_PNG; chunk CRCs are copied as they are (the bytes do not change)."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    out, pos = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("chunk runs past the end")
        if kind in _KEEP_PNG:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            return b"".join(out)
    raise ValueError("no IEND")
