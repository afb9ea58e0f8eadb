"""Resize plans and bounding boxes: property tests over random sizes, modes and orientations."""
from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from synshard.transforms.boxes import orient_point, transform_boxes
from synshard.transforms.options import ResizeSpec, TransformOptions
from synshard.transforms.process import ORIENT, transform_image
from synshard.transforms.resize import apply_plan, decode_size, plan_resize

dims = st.integers(1, 5000)
specs = st.builds(ResizeSpec, st.sampled_from(["shorter", "longer", "center-crop"]), st.integers(1, 1024))


@given(dims, dims, specs, st.booleans())
def test_resize_bounds(width, height, spec, upscale):
    plan = plan_resize(width, height, spec, upscale)
    out_w, out_h = plan.out_size
    assert out_w >= 1 and out_h >= 1
    short, long_ = min(plan.size), max(plan.size)
    if spec.mode == "shorter" or spec.mode == "center-crop":
        side = min(width, height)
        assert short == (spec.size if upscale or side >= spec.size else side)
    if spec.mode == "longer":
        side = max(width, height)
        assert long_ == (spec.size if upscale or side >= spec.size else side)
    if spec.mode == "center-crop":
        assert out_w <= spec.size and out_h <= spec.size
        assert out_w == min(spec.size, plan.size[0]) and out_h == min(spec.size, plan.size[1])
    else:
        assert plan.out_size == plan.size
    if not upscale:
        assert plan.size[0] <= width and plan.size[1] <= height
    # proportions survive within rounding (the other side is at least 1 pixel)
    other = 1 if (spec.mode == "longer") == (plan.size[0] >= plan.size[1]) else 0
    expected = (width, height)[other] * (max(plan.size) / max(width, height) if spec.mode == "longer"
                                         else min(plan.size) / min(width, height))
    assert abs(plan.size[other] - expected) <= 0.5 or plan.size[other] == 1


@given(dims, dims)
def test_none_keeps_size(width, height):
    plan = plan_resize(width, height, ResizeSpec("none", 0), upscale=True)
    assert plan.size == plan.out_size == (width, height) and not plan.resizes


@given(st.integers(1, 300), st.integers(1, 300), specs, st.booleans())
@settings(max_examples=60, deadline=None)
def test_apply_plan_gives_planned_size(width, height, spec, upscale):
    plan = plan_resize(width, height, spec, upscale)
    out = apply_plan(Image.new("RGB", (width, height)), plan)
    assert out.size == plan.out_size


@given(dims, dims, specs, st.integers(1, 8))
def test_decode_size_never_below_target(width, height, spec, orientation):
    oriented = (height, width) if orientation >= 5 else (width, height)
    plan = plan_resize(*oriented, spec, upscale=False)
    target = decode_size(plan, orientation)
    if target is not None:
        shown = (target[1], target[0]) if orientation >= 5 else target
        assert shown[0] >= plan.size[0] and shown[1] >= plan.size[1]
        assert target[0] <= width and target[1] <= height


boxes = st.lists(
    st.tuples(*[st.floats(-100, 6000, allow_nan=False)] * 4).map(list), max_size=5
)


@given(dims, dims, specs, st.booleans(), st.integers(1, 8), boxes)
def test_boxes_stay_within_output(width, height, spec, upscale, orientation, source_boxes):
    oriented = (height, width) if orientation >= 5 else (width, height)
    plan = plan_resize(*oriented, spec, upscale)
    out = transform_boxes(source_boxes, orientation, (width, height), plan)
    assert len(out) <= len(source_boxes)
    out_w, out_h = plan.out_size
    for x0, y0, x1, y1 in out:
        assert 0 <= x0 < x1 <= out_w and 0 <= y0 < y1 <= out_h


def test_boxes_none_and_invalid():
    plan = plan_resize(100, 100, ResizeSpec("shorter", 50))
    assert transform_boxes(None, 1, (100, 100), plan) is None
    assert transform_boxes([[10, 10, 10, 20], [float("nan"), 0, 5, 5]], 1, (100, 100), plan) == []
    assert transform_boxes([[0, 0, 100, 100]], 1, (100, 100), plan) == [[0, 0, 50, 50]]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_point_matches_pil_transpose(orientation):
    """A marked pixel lands where orient_point says, for all eight EXIF orientations."""
    image = Image.new("L", (7, 4), 0)
    image.putpixel((1, 0), 255)  # pixel covering [1, 2] x [0, 1]
    shown = image if orientation == 1 else image.transpose(ORIENT[orientation])
    (ax, ay), (bx, by) = (orient_point(x, y, orientation, 7, 4) for x, y in ((1, 0), (2, 1)))
    x, y = int(min(ax, bx)), int(min(ay, by))
    assert shown.getpixel((x, y)) == 255


@given(st.integers(1, 8), st.sampled_from(["shorter:64", "center-crop:48", "longer:90"]),
       st.integers(0, 40), st.integers(0, 30), st.integers(20, 40), st.integers(15, 30))
@settings(max_examples=25, deadline=None)
def test_boxes_follow_the_pixels(orientation, spec, x0, y0, bw, bh):
    """A white patch drawn at the box is where the transformed box says, after the whole stage."""
    image = Image.new("RGB", (120, 90), (0, 0, 0))
    image.paste((255, 255, 255), (x0, y0, x0 + bw, y0 + bh))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "PNG", exif=exif.tobytes())
    opts = TransformOptions(resize=ResizeSpec.parse(spec), format="png", min_size=1)
    out = transform_image(buffer.getvalue(), [[x0, y0, x0 + bw, y0 + bh]], opts)
    pixels = np.asarray(Image.open(io.BytesIO(out.image)).convert("L")) > 127
    ys, xs = np.nonzero(pixels)
    if not out.bboxes:
        assert len(xs) == 0 or len(xs) < 6  # cropped away (but for resampling fringe)
        return
    bx0, by0, bx1, by1 = out.bboxes[0]
    assert abs(xs.min() - bx0) <= 2 and abs(xs.max() + 1 - bx1) <= 2
    assert abs(ys.min() - by0) <= 2 and abs(ys.max() + 1 - by1) <= 2
