"""transform_batch on tiny in-memory images of every kind a crawl meets."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageCms

from synshard.transforms.options import ResizeSpec, TransformOptions
from synshard.transforms.process import transform_batch
from synshard.transforms.schema import CANDIDATE_SCHEMA, TRANSFORMED_SCHEMA, make_key, sha256_hex

OPTS = TransformOptions(min_size=1)


def encode(image: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def run(data: bytes | None, opts: TransformOptions = OPTS, bboxes=None, **row) -> dict:
    candidate = {"source": "mem://x", "synset": "n01440764", "split": "train", "data": data,
                 "bboxes": bboxes}
    candidate.update(row)
    table = pa.Table.from_pylist([candidate], schema=CANDIDATE_SCHEMA)
    out = transform_batch(table, opts)
    assert out.schema == TRANSFORMED_SCHEMA and out.num_rows == 1
    return out.to_pylist()[0]


def accepted(data: bytes, opts: TransformOptions = OPTS, **kw) -> tuple[dict, Image.Image]:
    row = run(data, opts, **kw)
    assert row["reason"] is None, row["reason"]
    assert row["stage"] is None and row["label"] is None and row["confidence"] is None
    for name in ("key", "image", "format", "width", "height", "orig_width", "orig_height",
                 "orig_format", "sha256", "phash", "ops"):
        assert row[name] is not None, name
    image = Image.open(io.BytesIO(row["image"]))
    assert image.format.lower() == row["format"]
    assert image.size == (row["width"], row["height"])
    assert image.mode == "RGB"
    assert "exif" not in image.info and "icc_profile" not in image.info
    image.load()
    return row, image


def rejected(data: bytes | None, opts: TransformOptions = OPTS, **kw) -> dict:
    row = run(data, opts, **kw)
    assert row["reason"] is not None and row["stage"] is not None
    assert row["image"] is None and row["phash"] is None
    return row


def solid(mode: str, size: tuple[int, int], colour) -> Image.Image:
    return Image.new(mode, size, colour)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height: tiny bytes, never a real bitmap."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def swapped_profile() -> bytes:
    """An RGB ICC profile whose red and blue primaries are sRGB's blue and red."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack(">I", data[128:132])[0]
    entries = {bytes(data[132 + 12 * i: 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, blue = entries[b"rXYZ"], entries[b"bXYZ"]
    data[red + 4: red + 12], data[blue + 4: blue + 12] = data[blue + 4: blue + 12], data[red + 4: red + 12]
    start = data.index("sRGB".encode("utf-16-be"))
    data[start: start + 8] = "Swap".encode("utf-16-be")
    return bytes(data)


def gps_exif(orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}  # GPS IFD
    exif[0x010F] = "CameraMaker"
    if orientation:
        exif[0x0112] = orientation
    return exif.tobytes()


# ---- the contract ------------------------------------------------------------------------------

def test_rows_keep_count_order_and_identity():
    good = encode(solid("RGB", (64, 48), (10, 200, 30)))
    rows = [
        {"source": "a", "synset": "n1", "split": "train", "data": good},
        {"source": "b", "synset": "n1", "split": "val", "data": b""},
        {"source": "c", "synset": None, "split": None, "data": good},
        {"source": "d", "synset": "n2", "split": None, "data": None, "reason": "HTTP 404"},
        {"source": "e", "synset": "n2", "split": None, "data": good, "reason": "too large"},
        {"source": "f", "synset": "n2", "split": "test", "data": good, "license": "CC-BY",
         "attribution": "me"},
    ]
    out = transform_batch(pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA), OPTS).to_pylist()
    assert [r["source"] for r in out] == list("abcdef")
    assert [(r["stage"], r["reason"]) for r in out] == [
        (None, None), ("decode", "empty file"), ("validate", "no synset"),
        ("ingest", "HTTP 404"), ("ingest", "too large"), (None, None)]
    sha = sha256_hex(good)
    assert out[0]["sha256"] == sha and out[0]["key"] == make_key("n1", sha)
    assert out[2]["sha256"] == sha and out[2]["key"] is None  # no synset, no key
    assert out[3]["sha256"] is None and out[3]["key"] is None  # never had bytes
    assert out[4]["key"] == make_key("n2", sha)
    assert out[5]["split"] == "test" and out[5]["license"] == "CC-BY" and out[5]["attribution"] == "me"
    assert out[1]["split"] == "val"


def test_empty_table():
    out = transform_batch(CANDIDATE_SCHEMA.empty_table(), OPTS)
    assert out.num_rows == 0 and out.schema == TRANSFORMED_SCHEMA


# ---- bad input ---------------------------------------------------------------------------------

def test_zero_bytes_and_random_bytes():
    assert rejected(b"")["reason"] == "empty file"
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    row = rejected(noise)
    assert (row["stage"], row["reason"]) == ("decode", "not an image")
    assert row["sha256"] == sha256_hex(noise)


@pytest.mark.parametrize("mode", ["RGB", "CMYK"])  # simplejpeg path and PIL path
def test_truncated_jpeg(mode):
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).convert(mode)
    data = encode(image, quality=90)
    row = rejected(data[: len(data) // 2])
    assert (row["stage"], row["reason"]) == ("decode", "truncated")


def test_truncated_png():
    data = encode(Image.fromarray(np.random.default_rng(4).integers(0, 256, (200, 200, 3), dtype=np.uint8)), "PNG")
    row = rejected(data[: len(data) // 2])
    assert (row["stage"], row["reason"]) == ("decode", "truncated")


def test_decompression_bomb_header_is_refused_without_decoding():
    row = rejected(png_header_only(20000, 20000))
    assert (row["stage"], row["reason"]) == ("decode", "decompression bomb: 20000x20000 pixels")


def test_max_pixels_is_ours_not_pils():
    data = encode(solid("RGB", (100, 80), (1, 2, 3)), "PNG")
    row = rejected(data, TransformOptions(max_pixels=7999))
    assert row["reason"] == "decompression bomb: 100x80 pixels"
    accepted(data, TransformOptions(max_pixels=8000))


def test_too_small_and_aspect():
    tiny = encode(solid("RGB", (3, 4), (0, 0, 0)))
    assert rejected(tiny, TransformOptions())["reason"] == "too small: 3x4"
    thin = encode(solid("RGB", (384, 32), (0, 0, 0)))
    row = rejected(thin, TransformOptions())
    assert (row["stage"], row["reason"]) == ("validate", "aspect ratio 12.0 > 10.0")


# ---- every kind of image -----------------------------------------------------------------------

def test_4x4_jpeg_is_kept_not_upscaled():
    data = encode(solid("RGB", (4, 4), (200, 100, 50)))
    row, image = accepted(data)
    assert (row["width"], row["height"], row["orig_format"]) == (4, 4, "jpeg")
    assert row["ops"] == "original"


def test_upscale_when_asked():
    data = encode(solid("RGB", (40, 30), (200, 100, 50)))
    row, _ = accepted(data, TransformOptions(min_size=1, upscale=True, resize=ResizeSpec("shorter", 60)))
    assert (row["width"], row["height"]) == (80, 60)


def test_cmyk_jpeg_becomes_rgb():
    data = encode(solid("CMYK", (64, 64), (0, 255, 255, 0)))  # pure red ink
    row, image = accepted(data)
    assert "cmyk" in row["ops"].split(",")
    r, g, b = image.getpixel((32, 32))
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize("mode,colour", [("RGBA", (255, 0, 0, 0)), ("LA", (0, 0))])
def test_transparent_pixels_become_white(mode, colour):
    image = solid(mode, (64, 64), colour)
    image.paste(solid(mode, (32, 64), (0, 0, 0, 255) if mode == "RGBA" else (0, 255)), (0, 0))
    row, out = accepted(encode(image, "PNG"), TransformOptions(min_size=1, format="png"))
    assert "alpha" in row["ops"].split(",")
    assert out.getpixel((48, 32)) == (255, 255, 255)  # transparent -> white
    assert out.getpixel((10, 32)) == (0, 0, 0)  # opaque black stays black


def test_palette_with_transparency():
    image = Image.new("P", (64, 64), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (0, 0, 32, 64))
    data = encode(image, "PNG", transparency=0)
    row, out = accepted(data, TransformOptions(min_size=1, format="png"))
    assert {"palette", "alpha"} <= set(row["ops"].split(","))
    assert out.getpixel((10, 10)) == (0, 0, 255)
    assert out.getpixel((50, 10)) == (255, 255, 255)


def test_16bit_png_is_scaled_not_clipped():
    values = np.zeros((64, 64), dtype=np.uint16)
    values[:, :16], values[:, 16:32], values[:, 32:48] = 65535, 32768, 1000
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    row, out = accepted(encode(image, "PNG"), TransformOptions(min_size=1, format="png"))
    assert "16bit" in row["ops"].split(",")
    assert out.getpixel((5, 5)) == (255, 255, 255)
    assert out.getpixel((20, 5)) in ((128, 128, 128), (127, 127, 127))
    assert out.getpixel((40, 5)) == (4, 4, 4)  # 1000 * 255 / 65535 = 3.9, not clipped to 255
    assert out.getpixel((60, 5)) == (0, 0, 0)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])  # PNG with save_all: APNG
def test_animation_first_frame(fmt):
    frames = [solid("RGB", (64, 64), (255, 0, 0)), solid("RGB", (64, 64), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    row, out = accepted(buffer.getvalue(), TransformOptions(min_size=1, format="png"))
    assert row["orig_format"] == fmt.lower() and "frame0" in row["ops"].split(",")
    r, g, b = out.getpixel((32, 32))
    assert r > 240 and b < 20


def test_exif_rotated_landscape_comes_out_portrait_with_its_box():
    image = solid("RGB", (400, 300), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 100, 50))  # top-left of the stored landscape
    data = encode(image, quality=95, exif=gps_exif(orientation=6))
    row, out = accepted(data, TransformOptions(), bboxes=[[0, 0, 100, 50], [500, 500, 600, 600]])
    assert (row["orig_width"], row["orig_height"]) == (400, 300)
    assert (row["width"], row["height"]) == (256, 341)
    assert "exif-rotate" in row["ops"].split(",")
    assert len(row["bboxes"]) == 1  # the box outside the image is dropped
    x0, y0, x1, y1 = row["bboxes"][0]
    assert x0 == pytest.approx(256 - 50 * 256 / 300, abs=0.01) and x1 == pytest.approx(256)
    assert y0 == pytest.approx(0) and y1 == pytest.approx(100 * 341 / 400, abs=0.01)
    assert min(out.getpixel((int(x0) + 4, int(y1) // 2))) > 200  # the white patch is inside
    assert max(out.getpixel((int(x0) - 6, int(y1) // 2))) < 60  # and black just outside it


@pytest.mark.parametrize("size", [(256, 300), (600, 500)])  # kept original, re-encoded
def test_gps_exif_and_comments_are_stripped(size):
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, size[::-1] + (3,), dtype=np.uint8))
    data = encode(image, quality=85, exif=gps_exif(), comment=b"secret place")
    assert b"CameraMaker" in data and b"secret place" in data
    row, out = accepted(data, TransformOptions())
    assert ("original" in row["ops"].split(",")) == (size == (256, 300))
    assert b"CameraMaker" not in row["image"] and b"secret place" not in row["image"]
    assert b"Exif" not in row["image"] and not out.getexif()
    if size == (256, 300):
        assert np.array_equal(np.asarray(out), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_icc_profile_is_applied_and_stripped():
    data = encode(solid("RGB", (64, 64), (255, 0, 0)), quality=95, icc_profile=swapped_profile())
    row, out = accepted(data)
    assert "icc" in row["ops"].split(",")
    assert "original" not in row["ops"].split(",")  # colours changed: never keep the source bytes
    r, g, b = out.getpixel((32, 32))
    assert b > 200 and r < 60  # the profile's "red" is sRGB blue
    assert b"Swap" not in row["image"]


def test_srgb_profile_needs_no_conversion():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(solid("RGB", (64, 64), (255, 0, 0)), quality=95, icc_profile=srgb)
    row, out = accepted(data)
    assert row["ops"] == "original" and "icc_profile" not in out.info


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png"])
def test_output_formats(fmt):
    data = encode(solid("RGB", (500, 375), (30, 60, 90)), "PNG")
    row, out = accepted(data, TransformOptions(format=fmt))
    assert row["format"] == fmt and (row["width"], row["height"]) == (341, 256)
    assert row["orig_format"] == "png"


def test_center_crop_and_longer():
    data = encode(solid("RGB", (500, 375), (30, 60, 90)))
    row, _ = accepted(data, TransformOptions(resize=ResizeSpec("center-crop", 224)))
    assert (row["width"], row["height"]) == (224, 224) and row["ops"] == "resize,crop,encode"
    row, _ = accepted(data, TransformOptions(resize=ResizeSpec("longer", 100)))
    assert (row["width"], row["height"]) == (100, 75)
    row, _ = accepted(data, TransformOptions(resize=ResizeSpec("none", 0), keep_original="never"))
    assert (row["width"], row["height"]) == (500, 375) and row["ops"] == "encode"


def test_scaled_decode_matches_full_decode():
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    photo = Image.fromarray(small).resize((1600, 1200), Image.Resampling.BICUBIC)
    data = encode(photo, quality=95)
    fast, out_fast = accepted(data, TransformOptions(resize=ResizeSpec("shorter", 200)))
    slow, out_slow = accepted(data, TransformOptions(resize=ResizeSpec("shorter", 200), draft=False))
    assert out_fast.size == out_slow.size == (267, 200)
    diff = np.abs(np.asarray(out_fast, float) - np.asarray(out_slow, float))
    assert diff.mean() < 3.0
