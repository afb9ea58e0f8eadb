"""Decode-with-draft, crops, flips and box transforms."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from synshard.shards.augment import (
    AugmentOptions,
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
    import pytest

    from synshard.shards.augment import DECODE_ERRORS

    with pytest.raises(DECODE_ERRORS):
        augment(b"\xff\xd8garbage", None, AugmentOptions(image_size=8), np.random.default_rng(0))
