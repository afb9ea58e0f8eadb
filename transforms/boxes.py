"""Bounding boxes follow the pixels: EXIF orientation, then the resize plan's scale and crop.

Boxes are [x0, y0, x1, y1] in continuous pixel-edge coordinates (a box covering the whole image is
[0, 0, w, h]). Each orientation is a flip/transpose of those coordinates; the resize is an affine
map; the result is clipped to the output, and boxes that become empty (or were never valid) are
dropped, because a zero-area box is no annotation.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from .resize import Plan

Box = list[float]


def orient_point(x: float, y: float, orientation: int, width: int, height: int) -> tuple[float, float]:
    """Where stored point (x, y) of a `width` x `height` image lands once displayed upright."""
    return {
        1: (x, y),
        2: (width - x, y),  # mirrored horizontally
        3: (width - x, height - y),  # rotated 180
        4: (x, height - y),  # mirrored vertically
        5: (y, x),  # transposed
        6: (height - y, x),  # needs 90 degrees clockwise
        7: (height - y, width - x),  # transversed
        8: (y, width - x),  # needs 90 degrees counter-clockwise
    }[orientation]


def transform_boxes(
    boxes: Sequence[Sequence[float]] | None, orientation: int, stored: tuple[int, int], plan: Plan
) -> list[Box] | None:
    """Source-pixel boxes -> output-pixel boxes (clipped, empty ones dropped); None stays None."""
    if boxes is None:
        return None
    out = []
    for box in boxes:
        moved = _transform_box(box, orientation, stored, plan)
        if moved is not None:
            out.append(moved)
    return out


def _transform_box(
    box: Sequence[float], orientation: int, stored: tuple[int, int], plan: Plan
) -> Box | None:
    if box is None or len(box) != 4 or not all(v is not None and math.isfinite(v) for v in box):
        return None
    x0, y0, x1, y1 = box
    (ax, ay), (bx, by) = (orient_point(x, y, orientation, *stored) for x, y in ((x0, y0), (x1, y1)))
    sx, sy = plan.size[0] / plan.source[0], plan.size[1] / plan.source[1]
    left, top, right, bottom = plan.crop
    out_w, out_h = right - left, bottom - top
    nx0, nx1 = (_clip(min(ax, bx) * sx - left, out_w), _clip(max(ax, bx) * sx - left, out_w))
    ny0, ny1 = (_clip(min(ay, by) * sy - top, out_h), _clip(max(ay, by) * sy - top, out_h))
    if nx1 <= nx0 or ny1 <= ny0:
        return None
    return [nx0, ny0, nx1, ny1]


def _clip(value: float, limit: int) -> float:
    return min(max(value, 0.0), float(limit))
