"""Decode-with-draft, crops, flips and box transforms."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from synshard.shards.augment import (
    AugmentOptions,
    DECODE_ERRORS,
    augment,
    center_crop_box,
    decode_crop,
    random_resized_crop_box,
    transform_boxes,
)


def jpeg(w: int, h: int) -> bytes:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (255, 0, 0)  # left half red, right half blue
    arr[:, w // 2 :] = (0, 0, 255)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95)
    return buf.getvalue()


@given(st.integers(1, 2000), st.integers(1, 2000), st.integers(0, 2**32 - 1))
def test_random_resized_crop_box_inside_image(w, h, seed):
    x0, y0, x1, y1 = random_resized_crop_box(w, h, np.random.default_rng(seed), (0.08, 1), (0.75, 4 / 3))
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h


def test_center_crop_box_is_centred_square():
    assert center_crop_box(400, 300, 256, 224) == (68.75, 18.75, 331.25, 281.25)  # 262.5 px square


def test_draft_decodes_large_jpeg_at_reduced_scale():
    data = jpeg(2048, 1536)
    opts = AugmentOptions(image_size=64, mode="eval")
    im, box, flip = decode_crop(data, opts, np.random.default_rng(0))
    assert im.size == (64, 64) and not flip
    raw = Image.open(io.BytesIO(data))
    raw.draft("RGB", (2048 * 64 // 1536 + 1, 64 * 256 // 224 + 1))
    assert raw.size[0] < 2048  # libjpeg scaled decoding is really used for such a request


def test_eval_is_deterministic_and_train_flips_sometimes():
    data = jpeg(64, 48)
    ev = AugmentOptions(image_size=32, mode="eval")
    a, _ = augment(data, None, ev, np.random.default_rng(1))
    b, _ = augment(data, None, ev, np.random.default_rng(2))
    assert (a == b).all() and a.shape == (32, 32, 3)
    tr = AugmentOptions(image_size=32, mode="train", scale=(1.0, 1.0), ratio=(64 / 48, 64 / 48))
    lefts = {int(augment(data, None, tr, np.random.default_rng(s))[0][16, 2, 0] > 128) for s in range(20)}
    assert lefts == {0, 1}  # red on the left unflipped, blue on the left flipped


def test_boxes_crop_scale_flip():
    boxes = [[10, 10, 30, 20], [0, 0, 2, 2]]
    out = transform_boxes(boxes, (10, 10, 50, 50), 20, False)
    np.testing.assert_allclose(out, [[0, 0, 10, 5]])  # the second box falls outside: dropped
    flipped = transform_boxes(boxes, (10, 10, 50, 50), 20, True)
    np.testing.assert_allclose(flipped, [[10, 0, 20, 5]])
    assert transform_boxes(None, (0, 0, 1, 1), 8, True).shape == (0, 4)


def test_corrupt_bytes_raise_a_decode_error():
    with pytest.raises(DECODE_ERRORS):
        augment(b"\xff\xd8garbage", None, AugmentOptions(image_size=8), np.random.default_rng(0))


# -- the decode path is pixel-exact: what a plain Pillow decode, crop / resize and asarray give --
def plain_pillow(data: bytes, opts: AugmentOptions, rng) -> np.ndarray:
    """The straightforward path (full decode, `draft` as the loader asks, crop or resize with
    box, flip, `np.asarray`) that the loader's partial decode and direct packing must match."""
    im = Image.open(io.BytesIO(data))
    w, h = im.size
    if opts.mode == "train":
        box = random_resized_crop_box(w, h, rng, opts.scale, opts.ratio)
        flip = bool(opts.flip and rng.random() < 0.5)
    else:
        box, flip = center_crop_box(w, h, opts.eval_resize or round(opts.image_size / 0.875), opts.image_size), False
    if im.format == "JPEG":
        need = opts.image_size / min(box[2] - box[0], box[3] - box[1])
        im.draft("RGB", (int(np.ceil(w * need)), int(np.ceil(h * need))))
    sx, sy = im.size[0] / w, im.size[1] / h
    scaled = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    im, s = im.convert("RGB"), opts.image_size
    if abs(scaled[2] - scaled[0] - s) < 1e-6 and abs(scaled[3] - scaled[1] - s) < 1e-6:
        x0, y0 = round(scaled[0]), round(scaled[1])
        out = im.crop((x0, y0, x0 + s, y0 + s))
    else:
        out = im.resize((s, s), opts.resample, box=scaled)
    if flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(out)


def photo_like(w: int, h: int, seed: int, **save: object) -> bytes:
    """Smooth gradients plus noise (what real photos give libjpeg: every block busy)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w, 1), yy * 255 // max(h, 1), (xx + yy) % 256], -1)
    arr = np.clip(base + rng.integers(-40, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    buf, block = io.BytesIO(), ImageFile.MAXBLOCK
    ImageFile.MAXBLOCK = 1 << 23  # a progressive JPEG is written in one go: room for all of it
    try:
        Image.fromarray(arr).save(buf, "JPEG", **({"quality": 90} | save))
    finally:
        ImageFile.MAXBLOCK = block
    return buf.getvalue()


@settings(deadline=None, max_examples=80)  # no wall-clock limits (busy machines)
@given(st.integers(8, 700), st.integers(8, 700), st.sampled_from(["train", "eval"]),
       st.sampled_from([32, 64, 224]), st.booleans(), st.integers(0, 1000))  # fmt: skip
def test_decode_matches_plain_pillow(w, h, mode, size, progressive, seed):
    data = photo_like(w, h, seed, progressive=progressive, subsampling=seed % 3)
    opts = AugmentOptions(image_size=size, mode=mode)
    got, _ = augment(data, None, opts, np.random.default_rng(seed))
    np.testing.assert_array_equal(got, plain_pillow(data, opts, np.random.default_rng(seed)))


@pytest.mark.parametrize("resample", [Image.Resampling.NEAREST, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS])
def test_decode_matches_plain_pillow_other_filters(resample):
    data = photo_like(333, 500, 7)
    for seed in range(30):
        opts = AugmentOptions(image_size=96, mode="train" if seed % 2 else "eval", resample=resample)
        got, _ = augment(data, None, opts, np.random.default_rng(seed))
        np.testing.assert_array_equal(got, plain_pillow(data, opts, np.random.default_rng(seed)))


def test_non_jpeg_and_grey_and_cmyk_decode_as_plain_pillow():
    arr = np.random.default_rng(0).integers(0, 255, (300, 260, 3), dtype=np.uint8)
    for mode, fmt in [("RGB", "PNG"), ("L", "JPEG"), ("CMYK", "JPEG"), ("RGBA", "PNG"), ("P", "PNG")]:
        buf = io.BytesIO()
        Image.fromarray(arr).convert(mode).save(buf, fmt)
        for m in ("eval", "train"):
            opts = AugmentOptions(image_size=64, mode=m)
            got, _ = augment(buf.getvalue(), None, opts, np.random.default_rng(3))
            np.testing.assert_array_equal(got, plain_pillow(buf.getvalue(), opts, np.random.default_rng(3)))


def test_partial_decode_is_used_and_rows_below_are_not_decoded():
    from synshard.shards import jpeg

    assert jpeg.PARTIAL_DECODE  # both Pillow and Pillow-SIMD keep what it relies on
    data = photo_like(256, 600, 1)
    for im in (jpeg.decode_rows(Image.open(io.BytesIO(data)), data, 100), jpeg.decode_plain(data, (256, 600), 100)):
        arr = np.asarray(im)
        full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        np.testing.assert_array_equal(arr[:100], full[:100])
        assert not arr[120:].any()  # never decoded (left black): the work skipped


def test_damaged_jpeg_above_the_crop_raises_as_plain_pillow_does():
    data = photo_like(256, 600, 2)
    opts = AugmentOptions(image_size=64, mode="eval")  # centre crop: rows ~ 0..470 needed
    with pytest.raises(DECODE_ERRORS):
        augment(data[: len(data) // 3], None, opts, None)  # cut short above the crop's bottom
    with pytest.raises(DECODE_ERRORS):
        Image.open(io.BytesIO(data[: len(data) // 3])).load()
    broken = data[:200] + b"\xff\xd9" + data[202:]  # an EOI marker in the header segments
    with pytest.raises(DECODE_ERRORS):
        augment(broken, None, opts, None)


def test_pixels_packs_a_region_exactly():
    from synshard.shards.jpeg import pixels

    im = Image.open(io.BytesIO(photo_like(123, 77, 3))).convert("RGB")
    full = np.asarray(im)
    np.testing.assert_array_equal(pixels(im), full)
    np.testing.assert_array_equal(pixels(im, (5, 7, 105, 70)), full[7:70, 5:105])


def test_open_plain_takes_ordinary_jpegs_only():
    from synshard.shards.jpeg import open_plain

    assert open_plain(photo_like(123, 45, 0)) == (123, 45)
    assert open_plain(photo_like(64, 48, 0, progressive=True)) == (64, 48)
    arr = np.zeros((40, 30, 3), np.uint8)
    for mode in ("L", "CMYK"):
        buf = io.BytesIO()
        Image.fromarray(arr).convert(mode).save(buf, "JPEG")
        assert open_plain(buf.getvalue()) is None  # Pillow's own path
    png = io.BytesIO()
    Image.fromarray(arr).save(png, "PNG")
    assert open_plain(png.getvalue()) is None and open_plain(b"") is None and open_plain(b"\xff\xd8\xff") is None
    huge = photo_like(64, 48, 0)
    at = huge.index(b"\xff\xc0") + 5
    bomb = huge[:at] + (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big") + huge[at + 4 :]
    assert open_plain(bomb) is None  # left to Image.open's decompression-bomb check
    with pytest.raises(DECODE_ERRORS):
        augment(bomb, None, AugmentOptions(image_size=8, mode="eval"), None)
