"""Study: Hamming distances of the 64-bit DCT phash under common edits and between unrelated photos.

Reads the ImageNet-like crops of real photographs made by scripts/photos.py
(.cache/photos/imagenet-like, with a manifest naming each crop's original), applies each edit,
hashes with synshard.transforms.phash and prints Markdown tables (docs/phash.md is written from
this output).

    .venv/bin/python bench/phash_study.py [--photos DIR] [--limit N] [--out docs/phash.md]
"""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from synshard.transforms.neardup import hamming
from synshard.transforms.phash import phash_image

RADII = (2, 4, 6, 8, 10, 12)


def jpeg(q: int) -> Callable[[Image.Image], Image.Image]:
    def edit(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return edit


def png(im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def scale(f: float) -> Callable[[Image.Image], Image.Image]:
    return lambda im: im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))),
                                Image.LANCZOS)


def crop(p: float) -> Callable[[Image.Image], Image.Image]:
    """Keep the central (1 - p) of each side (p/2 cut from every edge)."""
    def edit(im: Image.Image) -> Image.Image:
        dx, dy = round(im.width * p / 2), round(im.height * p / 2)
        return im.crop((dx, dy, im.width - dx, im.height - dy))
    return edit


def corner_crop(p: float) -> Callable[[Image.Image], Image.Image]:
    """Cut p of each side from the right and bottom only (an off-centre crop)."""
    return lambda im: im.crop((0, 0, round(im.width * (1 - p)), round(im.height * (1 - p))))


EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "lossless re-save (PNG)": png,
    **{f"JPEG q{q}": jpeg(q) for q in (95, 85, 70, 50, 30)},
    **{f"downscale {f}x": scale(f) for f in (0.9, 0.75, 0.5, 0.25)},
    "blur (Gaussian r=1)": lambda im: im.filter(ImageFilter.GaussianBlur(1)),
    "blur (Gaussian r=2)": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
    "brightness +10%": lambda im: ImageEnhance.Brightness(im).enhance(1.1),
    "brightness -10%": lambda im: ImageEnhance.Brightness(im).enhance(0.9),
    "centre crop 2%": crop(0.02),
    "centre crop 5%": crop(0.05),
    "corner crop 2%": corner_crop(0.02),
    "corner crop 5%": corner_crop(0.05),
}


def load(photos: Path, limit: int) -> tuple[list[Image.Image], list[str]]:
    manifest = json.loads((photos / "manifest.json").read_text())["images"][:limit]
    images = [Image.open(photos / m["file"]).convert("RGB") for m in manifest]
    return images, [m["source"] for m in manifest]


def summary(d: np.ndarray) -> str:
    within = " | ".join(f"{100 * np.mean(d <= r):.1f}" for r in RADII)
    return (f"{d.size} | {d.min()} | {np.median(d):.0f} | {np.percentile(d, 99):.0f} | "
            f"{d.max()} | {within}")


def unrelated(hashes: np.ndarray, origin: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Distances over all pairs from different originals, and over pairs of the same original."""
    i, j = np.triu_indices(hashes.size, 1)
    d = hamming(hashes[i], hashes[j])
    src = np.array(origin)
    same = src[i] == src[j]
    return d[~same], d[same]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=Path, default=Path(".cache/photos/imagenet-like"))
    ap.add_argument("--limit", type=int, default=600)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    images, origin = load(args.photos, args.limit)
    base = np.array([phash_image(im) for im in images], dtype=np.uint64)
    head = ("| edit | pairs | min | median | p99 | max | "
            + " | ".join(f"% <= {r}" for r in RADII) + " |")
    lines = [head, "|" + "---|" * (6 + len(RADII))]
    for name, edit in EDITS.items():
        edited = np.array([phash_image(edit(im)) for im in images], dtype=np.uint64)
        lines.append(f"| {name} | {summary(hamming(base, edited))} |")
    other, same = unrelated(base, origin)
    lines.append(f"| **unrelated** (crops of different photographs) | {summary(other)} |")
    lines.append(f"| *other crops of the same photograph* | {summary(same)} |")
    text = (f"{len(images)} ImageNet-like crops of {len(set(origin))} photographs "
            f"({args.photos}).\n\n" + "\n".join(lines) + "\n")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
