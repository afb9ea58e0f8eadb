"""Decoding and augmentation for the training loader: any `PIL` (Pillow or Pillow-SIMD), numpy.

Why decode this way: the crop is chosen from the JPEG header's size before any pixel is decoded,
then `Image.draft` asks libjpeg for the smallest DCT scale (1/2, 1/4, 1/8) that still leaves the
crop at least `image_size` pixels, so large stored images decode at a fraction of the cost. One
`resize(..., box=crop)` then crops and scales in one pass. Only APIs common to Pillow >= 10 and
Pillow-SIMD are used (`draft`, `resize` with `box`, `transpose`).

Bounding boxes (stored in the record's output pixels, [x0, y0, x1, y1]) go through the same crop,
scale and flip; boxes left with no area are dropped.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol

import numpy as np
from PIL import Image

from . import jpeg

Mode = Literal["train", "eval"]
Box = tuple[float, float, float, float]
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class SampleHook(Protocol):
    """A user transform, run last on every yielded sample dict (may replace any entry)."""

    def __call__(self, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]: ...


@dataclass(frozen=True)
class AugmentOptions:
    """What `augment` does. `eval_resize` is the shorter side before the centre crop
    (default `image_size / 0.875`, i.e. 256 for 224, the ImageNet convention)."""

    image_size: int = 224
    mode: Mode = "train"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    eval_resize: int | None = None
    draft: bool = True
    resample: int = Image.Resampling.BILINEAR

    def __post_init__(self) -> None:
        if self.image_size < 1:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if self.mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {self.mode!r}")


def random_resized_crop_box(
    width: int, height: int, rng: np.random.Generator, scale: tuple[float, float],
    ratio: tuple[float, float],
) -> Box:  # fmt: skip
    """torchvision's RandomResizedCrop box: 10 tries at a random area and log-uniform aspect,
    then the whole image clamped to the ratio range, centred."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            x0 = int(rng.integers(0, width - w + 1))
            y0 = int(rng.integers(0, height - h + 1))
            return (x0, y0, x0 + w, y0 + h)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    x0, y0 = (width - w) // 2, (height - h) // 2
    return (x0, y0, x0 + w, y0 + h)


def center_crop_box(width: int, height: int, resize: int, size: int) -> Box:
    """The box that, after scaling the shorter side to `resize`, is the centred `size` square."""
    side = min(width, height) * size / resize
    side_w, side_h = min(side, width), min(side, height)
    x0, y0 = (width - side_w) / 2, (height - side_h) / 2
    return (x0, y0, x0 + side_w, y0 + side_h)


def decode_crop(
    data: bytes, opts: AugmentOptions, rng: np.random.Generator | None
) -> tuple[Image.Image, Box, bool]:
    """Decode `data` as RGB, cropped and resized to `image_size`; also the crop box in the
    stored image's pixels and whether it was flipped. Raises DECODE_ERRORS on bad bytes.
    `rng` may be None for eval crops only (nothing random runs)."""
    im, region, box, flip = _decode(data, opts, rng)
    return (im.crop(region) if region else im), box, flip


def _decode(
    data: bytes, opts: AugmentOptions, rng: np.random.Generator | None
) -> tuple[Image.Image, Box | None, Box, bool]:
    """(image, the whole-pixel region of it that is the output or None for all of it, crop
    box in stored pixels, flipped)."""
    plain_size = jpeg.open_plain(data)  # an ordinary JPEG: no Image.open needed
    opened = None if plain_size else Image.open(io.BytesIO(data))
    width, height = plain_size or opened.size  # type: ignore[union-attr]
    if opts.mode == "train":
        assert rng is not None  # the loader gives every train sample its generator
        box = random_resized_crop_box(width, height, rng, opts.scale, opts.ratio)
        flip = bool(opts.flip and rng.random() < 0.5)
    else:
        resize = opts.eval_resize or round(opts.image_size / 0.875)
        box, flip = center_crop_box(width, height, resize, opts.image_size), False
    if opts.draft and (opened is None or opened.format == "JPEG"):
        need = opts.image_size / min(box[2] - box[0], box[3] - box[1])
        ask = (math.ceil(width * need), math.ceil(height * need))
        if min(width // ask[0], height // ask[1]) >= 2:  # else draft keeps scale 1: skip it
            opened = opened or Image.open(io.BytesIO(data))
            opened.draft("RGB", ask)
    sx, sy = (1.0, 1.0) if opened is None else (opened.size[0] / width, opened.size[1] / height)
    scaled = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    size = opts.image_size
    plain = abs(scaled[2] - scaled[0] - size) < 1e-6 and abs(scaled[3] - scaled[1] - size) < 1e-6
    # Rows the output needs: the box's, plus the resampling filter's reach below it.
    reach = 0.0 if plain else _SUPPORT.get(opts.resample, 3.0) * max(1.0, (scaled[3] - scaled[1]) / size)
    rows = math.ceil(scaled[3] + reach) + 1
    if opened is None:
        im = jpeg.decode_plain(data, (width, height), rows)
    else:
        im = jpeg.decode_rows(opened, data, rows)
    if im.mode != "RGB":
        im = im.convert("RGB")
    if plain:
        # No scaling (an eval crop of an image stored at the eval size): a plain crop, to whole
        # pixels, instead of a resampling pass over the same pixels.
        x0, y0 = round(scaled[0]), round(scaled[1])
        region: Box | None = (x0, y0, x0 + size, y0 + size)
        if flip:
            im, region = im.crop(region).transpose(Image.Transpose.FLIP_LEFT_RIGHT), None
        return im, region, box, flip
    out = im.resize((size, size), opts.resample, box=scaled)
    if flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out, None, box, flip


# How far (in input pixels, at scale 1) each resampling filter reaches past its centre
# (Pillow's filter supports): the rows below a resize box that its output still reads.
_SUPPORT: dict[int, float] = {Image.Resampling.NEAREST: 0.5, Image.Resampling.BOX: 0.5, Image.Resampling.BILINEAR: 1.0,
            Image.Resampling.HAMMING: 1.0, Image.Resampling.BICUBIC: 2.0, Image.Resampling.LANCZOS: 3.0}  # fmt: skip


def transform_boxes(boxes: list | None, crop: Box, size: int, flip: bool) -> np.ndarray:
    """Boxes in stored pixels -> boxes in the `size` x `size` output; empty ones dropped."""
    if not boxes:
        return np.zeros((0, 4), dtype=np.float32)
    arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    x0, y0, x1, y1 = crop
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    out = np.empty_like(arr)
    out[:, [0, 2]] = np.clip((arr[:, [0, 2]] - x0) * sx, 0, size)
    out[:, [1, 3]] = np.clip((arr[:, [1, 3]] - y0) * sy, 0, size)
    if flip:
        out[:, [0, 2]] = size - out[:, [2, 0]]
    keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return out[keep]


def augment(
    data: bytes, boxes: Any, opts: AugmentOptions, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """(HxWx3 uint8 image, Nx4 float32 boxes) for one stored image."""
    im, region, crop, flip = _decode(data, opts, rng)
    return jpeg.pixels(im, region), transform_boxes(boxes, crop, opts.image_size, flip)


HookFn = Callable[[dict[str, Any], np.random.Generator], dict[str, Any]]
