"""Pixel-exact fast paths through Pillow's own JPEG decoder, for the loader's crops.

Pillow (and Pillow-SIMD) decode a JPEG with libjpeg(-turbo) top to bottom into an RGBX image,
and `np.asarray` of a crop then copies the crop and packs it to RGB in chunks. The loader needs
neither the rows below its crop nor the copies, so:

- `decode_rows` decodes only the top `rows` rows (skipping the entropy decoding, IDCT and colour
  conversion of the rest). The rows decoded are exactly a full decode's: libjpeg's output of a
  row does not depend on what comes after it (fancy upsampling reads one row group ahead, which
  libjpeg decodes as it needs it).
- `open_plain` reads the size of an ordinary JPEG (8-bit, 3 components, SOF0/1/2) from its
  frame header, so such an image never goes through `Image.open`'s marker parsing in Python.
- `pixels` packs an image region to HxWx3 uint8 with Pillow's raw encoder, in one pass.

Everything else (other formats, grey/CMYK JPEGs, drafts, huge images) takes Pillow's normal path.
Tests compare every path with a plain Pillow decode, pixel for pixel, on both Pillows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageFile

_SOF_PLAIN = (0xC0, 0xC1, 0xC2)  # baseline, extended sequential, progressive (Huffman)
_SOF_OTHER = frozenset(range(0xC3, 0xD0)) - {0xC4, 0xC8, 0xCC}  # lossless, arithmetic, ...


def open_plain(data: bytes) -> tuple[int, int] | None:
    """(width, height) of an 8-bit, 3-component JPEG that Pillow would open as RGB with the
    default decoder arguments; None for anything else (then use `Image.open`)."""
    if data[:2] != b"\xff\xd8" or ImageFile.LOAD_TRUNCATED_IMAGES:
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF_PLAIN:
            if i + 10 > n or data[i + 4] != 8 or data[i + 9] != 3:
                return None
            height, width = int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 7 : i + 9], "big")
            limit = Image.MAX_IMAGE_PIXELS
            if not width or not height or (limit and width * height > limit):
                return None  # Image.open warns or refuses (decompression bomb)
            return width, height
        if marker in _SOF_OTHER or marker in (0xD9, 0xDA):
            return None
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _pad_byte(core: Any, x: int, y: int) -> int:
    """The pad (4th) byte of pixel (x, y) of an RGB image core."""
    enc = Image._getencoder("RGB", "raw", ("RGBX",))
    enc.setimage(core, (x, y, x + 1, y + 1))
    return enc.encode(4)[2][3]


def _partial_ok() -> bool:
    """Whether this Pillow gives what `decode_rows` relies on: a new RGB image is zeroed (its
    pad byte 0); the decoder writes 255 there (checked by the tests)."""
    try:
        return _pad_byte(Image.core.new("RGB", (2, 1)), 1, 0) == 0
    except (AttributeError, TypeError, ValueError, OSError):
        return False


PARTIAL_DECODE = _partial_ok()


def _decode_into(size: tuple[int, int], args: Any, config: Any, payload: bytes, rows: int) -> Any:
    """An RGB image core of `size` with its top `rows` rows decoded from `payload` (the whole
    image when `rows` covers it); OSError as `ImageFile.load` raises it on bad data.

    Stopping early makes libjpeg's finish step report too few scanlines, which Pillow reports
    as a broken stream; the pad byte (255 on every decoded pixel, 0 in the new image) of the
    last pixel wanted (libjpeg writes whole rows, in order) tells that from a stream that
    really broke earlier. A stream cut short
    before `rows` raises too; damage below `rows` is not seen (those pixels are not used;
    `synshard verify` checks every shard's bytes)."""
    width, height = size
    rows = min(rows, height)
    core = Image.core.new("RGB", size)  # full size, rest black: resize picks its passes by size
    decoder = Image._getdecoder("RGB", "jpeg", args, config)
    decoder.setimage(core, (0, 0, width, rows))
    try:
        consumed, err = decoder.decode(payload)
    finally:
        decoder.cleanup()
    if consumed >= 0 and err == 0:
        raise OSError("image file is truncated")
    if err < 0 and (rows == height or _pad_byte(core, width - 1, rows - 1) != 255):
        raise OSError("broken data stream when reading image file")
    return core


def decode_plain(data: bytes, size: tuple[int, int], rows: int) -> Image.Image:
    """An image `open_plain` accepted, with at least its top `rows` rows decoded."""
    return Image.Image()._new(_decode_into(size, ("RGB", ""), (), data, rows if PARTIAL_DECODE else size[1]))


def decode_rows(im: ImageFile.ImageFile, data: bytes, rows: int) -> Image.Image:
    """`im` (from `Image.open(BytesIO(data))`, maybe drafted) with at least its top `rows` rows
    decoded: only those for a one-tile RGB JPEG, else all of it (`im.load()`)."""
    tile = im.tile
    if (rows >= im.size[1] or not PARTIAL_DECODE or im.mode != "RGB" or len(tile) != 1
            or tile[0][0] != "jpeg"):  # fmt: skip
        im.load()
        return im
    _, _, offset, args = tile[0][:4]
    return im._new(_decode_into(im.size, args, im.decoderconfig, data[offset:], rows))


def pixels(im: Image.Image, region: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """The HxWx3 uint8 pixels of an RGB image (of `region` of it, in whole pixels), packed once
    by Pillow's raw encoder straight from the image (no crop copy, no `tobytes` chunk joins)."""
    x0, y0, x1, y1 = (int(v) for v in region) if region else (0, 0, *im.size)
    nbytes = (x1 - x0) * (y1 - y0) * 3
    enc = Image._getencoder("RGB", "raw", ("RGB",))
    enc.setimage(im.im, (x0, y0, x1, y1))
    chunks = []
    while True:
        _, status, chunk = enc.encode(nbytes)
        chunks.append(chunk)
        if status:
            break
    if status < 0:
        raise OSError(f"encoder error {status} packing pixels")
    buf = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return np.frombuffer(buf, dtype=np.uint8).reshape(y1 - y0, x1 - x0, 3)

