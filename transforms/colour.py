"""Colour normalisation: every decoded image becomes 8-bit sRGB RGB, with no metadata attached.

Order matters and is fixed: (1) mode normalisation (palette -> RGB/RGBA, 1-bit -> L, 16/32-bit
integer -> L scaled by 255/65535, never clipped); (2) alpha composited on white, in the source
colour space, so the ICC step sees an opaque image; (3) the embedded ICC profile, when there is one
and it is not already sRGB, converts to sRGB with LittleCMS (PIL.ImageCms), relative colorimetric
intent; (4) whatever remains (L, CMYK without a profile, YCbCr) converts to RGB with PIL.

Each step that changes something appends a name to `ops`: `palette`, `bilevel`, `16bit`, `alpha`,
`icc`, `icc-ignored` (a profile LittleCMS cannot use for this mode), `cmyk`, `grey`.
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms

ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
WIDE_INT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")
WHITE = {"RGB": (255, 255, 255), "L": 255}
_SRGB = ImageCms.createProfile("sRGB")


def to_rgb(image: Image.Image, icc: bytes | None) -> tuple[Image.Image, list[str]]:
    """Return `image` as opaque 8-bit sRGB "RGB" with an empty `info`, and the ops applied.

    "RGBX" (PIL's padded RGB, what the fast JPEG decoder produces without a copy) is returned as
    it is: same pixels; the caller converts it after resizing, when it is small.
    """
    ops: list[str] = []
    if image.mode == "RGBX" and (icc is None or is_srgb(icc)):
        image.info = {}
        return image, ops
    image = _normalise_mode(image, ops)
    if image.mode in ALPHA_MODES:
        image = _flatten_alpha(image)
        ops.append("alpha")
    if icc is not None:
        image = _apply_icc(image, icc, ops)
    if image.mode != "RGB":
        ops.append("cmyk" if image.mode == "CMYK" else "grey" if image.mode == "L" else "convert")
        image = image.convert("RGB")
    image.info = {}
    return image, ops


def _normalise_mode(image: Image.Image, ops: list[str]) -> Image.Image:
    """Bring exotic modes to one of RGB, RGBA, L, LA, CMYK (others convert straight to RGB)."""
    mode = image.mode
    if mode in ("P", "PA"):
        ops.append("palette")
        transparent = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if transparent else "RGB")
    if mode == "1":
        ops.append("bilevel")
        return image.convert("L")
    if mode in WIDE_INT_MODES:
        ops.append("16bit")
        return _scale_to_8bit(image)
    if mode in ("RGBa", "La"):
        return image.convert({"RGBa": "RGBA", "La": "LA"}[mode])
    if mode == "RGB" and "transparency" in image.info:
        ops.append("palette")
        return image.convert("RGBA")
    return image


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    """16-bit (and 32-bit integer holding 16-bit) grey to 8 bit: v * 255 / 65535, rounded.

    Scaling keeps the tonal range (65535 -> 255, 32768 -> 128); PIL's own convert would clip
    everything above 255 to white.
    """
    values = np.asarray(image)
    if image.mode == "F":
        top = 1.0 if values.size and float(np.nanmax(values)) <= 1.0 else 255.0
        scaled = np.nan_to_num(values / top * 255.0)
    else:
        scaled = np.clip(values.astype(np.int64), 0, 65535) * 255.0 / 65535.0  # type: ignore[assignment]
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite on white: transparent pixels become white, not whatever colour they stored."""
    base_mode = "L" if image.mode.startswith("L") else "RGB"
    image = image.convert(base_mode + "A")
    background = Image.new(base_mode, image.size, WHITE[base_mode])  # type: ignore[arg-type]
    background.paste(image, mask=image.getchannel("A"))
    return background


def _apply_icc(image: Image.Image, icc: bytes, ops: list[str]) -> Image.Image:
    """Convert through the embedded profile to sRGB; an unusable profile is ignored, not fatal."""
    transform = _transform_to_srgb(icc, image.mode)
    if transform is None:
        if not is_srgb(icc):
            ops.append("icc-ignored")
        return image
    if image.mode == "CMYK":
        ops.append("cmyk")
    ops.append("icc")
    return ImageCms.applyTransform(image, transform)  # type: ignore[return-value]  # not in place


def is_srgb(icc: bytes) -> bool:
    """True when the profile describes itself as sRGB: converting would change (almost) nothing."""
    return _profile_description(icc).lower().startswith("srgb") if icc else False


@lru_cache(maxsize=64)
def _profile_description(icc: bytes) -> str:
    try:
        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return ""


@lru_cache(maxsize=64)
def _transform_to_srgb(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """A cached LittleCMS transform (building one costs milliseconds); None for sRGB or unusable."""
    if is_srgb(icc):
        return None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.buildTransform(
            source, _SRGB, mode, "RGB", ImageCms.Intent.RELATIVE_COLORIMETRIC
        )
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return None
