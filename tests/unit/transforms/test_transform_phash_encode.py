"""The perceptual hash variant, Hamming distances, and lossless metadata stripping."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from synshard.transforms.encode import encode_image, strip_jpeg, strip_metadata, strip_png
from synshard.transforms.phash import grey32, hamming, phash_batch, phash_image


def naive_phash(grey: np.ndarray) -> int:
    """The documented variant, written out loop by loop as an independent reference."""
    n = 32
    def c(k: int) -> float:
        return math.sqrt(1 / n) if k == 0 else math.sqrt(2 / n)
    coeffs = []
    for u in range(8):
        for v in range(8):
            total = sum(
                grey[x, y] * math.cos(math.pi * (2 * x + 1) * u / (2 * n))
                * math.cos(math.pi * (2 * y + 1) * v / (2 * n))
                for x in range(n) for y in range(n)
            )
            coeffs.append(c(u) * c(v) * total)
    median = float(np.median(coeffs))
    value = 0
    for coeff in coeffs:
        value = (value << 1) | int(coeff > median)
    return value


def photo(seed: int, size=(320, 240)) -> Image.Image:
    small = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def test_phash_batch_matches_reference():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (3, 32, 32)).astype(np.uint8)
    hashes = phash_batch(grey)
    assert hashes.dtype == np.uint64 and hashes.shape == (3,)
    assert [int(h) for h in hashes] == [naive_phash(g.astype(float)) for g in grey]


def test_dc_is_the_most_significant_bit():
    grey = np.full((1, 32, 32), 200, np.uint8)
    grey[0, :, :16] = 100  # a left/right edge: DC and the first horizontal coefficient are large
    value = int(phash_batch(grey)[0])
    assert value >> 63 == 1


def test_near_copies_are_near_and_others_far():
    original = photo(1)
    recompressed = Image.open(io.BytesIO(encode_image(original, "jpeg", 40)))
    smaller = original.resize((160, 120), Image.Resampling.LANCZOS)
    base = phash_image(original)
    assert 0 <= base < 2**64
    assert hamming(base, phash_image(recompressed)) <= 4
    assert hamming(base, phash_image(smaller)) <= 4
    others = [phash_image(photo(seed)) for seed in range(2, 12)]
    assert min(hamming(base, np.array(others, np.uint64))) > 10


def test_hamming_vectorised():
    a = np.array([0, 2**64 - 1, 0b1011], np.uint64)
    b = np.array([0, 0, 0b0001], np.uint64)
    assert hamming(a, b).tolist() == [0, 64, 2]
    assert hamming(a[:, None], a[None, :]).shape == (3, 3)


def test_grey32_is_601_luma_box():
    image = Image.new("RGB", (64, 64), (255, 0, 0))
    assert grey32(image).shape == (32, 32)
    assert int(grey32(image)[0, 0]) == 76  # 0.299 * 255


def test_phash_batch_rejects_wrong_shape():
    with pytest.raises(ValueError):
        phash_batch(np.zeros((2, 16, 16)))


def jpeg_with_metadata() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    buffer = io.BytesIO()
    photo(3).save(buffer, "JPEG", quality=90, exif=exif.tobytes(), comment=b"hello",
                  icc_profile=b"not really a profile")
    return buffer.getvalue()


def test_strip_jpeg_is_lossless_and_keeps_jfif():
    data = jpeg_with_metadata()
    stripped = strip_jpeg(data)
    assert b"CameraMaker" not in stripped and b"hello" not in stripped
    assert b"ICC_PROFILE" not in stripped and b"JFIF" in stripped
    before, after = Image.open(io.BytesIO(data)), Image.open(io.BytesIO(stripped))
    assert np.array_equal(np.asarray(before), np.asarray(after))
    assert "exif" not in after.info and "icc_profile" not in after.info


def test_strip_refuses_broken_files():
    assert strip_metadata(b"\xff\xd8\xff\xe1\x00", "jpeg") is None
    assert strip_metadata(jpeg_with_metadata()[:40], "jpeg") is None
    assert strip_metadata(b"\x89PNG\r\n\x1a\nxx", "png") is None
    assert strip_metadata(b"GIF89a", "gif") is None


def test_strip_png():
    info = __import__("PIL.PngImagePlugin", fromlist=["PngInfo"]).PngInfo()
    info.add_text("Comment", "secret")
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    buffer = io.BytesIO()
    photo(4).save(buffer, "PNG", pnginfo=info, exif=exif.tobytes())
    data = buffer.getvalue()
    stripped = strip_png(data)
    assert b"secret" not in stripped and b"CameraMaker" not in stripped and b"eXIf" not in stripped
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(Image.open(io.BytesIO(stripped))))


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png"])
def test_encode_has_no_metadata(fmt):
    image = photo(5)
    image.info["icc_profile"] = b"junk"
    image.info["exif"] = b"Exif\x00\x00junk"
    data = encode_image(image, fmt, 90)
    out = Image.open(io.BytesIO(data))
    assert out.format.lower() == fmt and out.size == image.size
    assert "icc_profile" not in out.info and "exif" not in out.info
