#!/usr/bin/env python3
"""Regenerate the bundled demo sample, data/sample/, from real photographs.

    .venv/bin/python scripts/make_sample.py [--out data/sample] [--seed S]

`synshard demo` builds this folder, so it has to exercise what a real ImageNet folder throws at a
build, at a size we can commit (under 3 MB): crops of Debian wallpaper photographs (see
scripts/photos.py) in ImageNet layout (`<wnid>/<wnid>_<n>.JPEG`) under four ILSVRC-2012 classes
whose WordNet glosses fit the pictures, plus one file for each special case a build must handle
(duplicates, a label conflict, a near-duplicate, a truncated JPEG, CMYK, a palette PNG with
transparency named .JPEG as in ImageNet, EXIF orientation, GPS EXIF, a too-small image).

Seeded and deterministic for a given Pillow build. Regular images are drawn again when their
perceptual hash lands within `MIN_DISTANCE` bits of an image already drawn, so the only
duplicates in the sample are the intended ones. The README (file list, expected outcome of every
special file, attribution) is generated here too, so it cannot drift from the files.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import REPO, ensure_originals  # noqa: E402  (a script beside this one)

DEFAULT_OUT = REPO / "data" / "sample"
DEFAULT_SEED = 1000
MIN_DISTANCE = 16  # phash bits between any two unrelated sample images
BUDGET_BYTES = 3_000_000

SYNSETS = {  # ILSVRC-2012 wnid -> (lemma, WordNet 3.0 gloss)
    "n02165456": ("ladybug", "small round bright-colored and spotted beetle ..."),
    "n09332890": ("lakeside", "the shore of a lake"),
    "n09428293": ("seashore", "the shore of a sea or ocean"),
    "n11939491": ("daisy", "any of numerous composite plants having flower heads with "
                           "well-developed ray flowers usually arranged in a single whorl"),
}
def log(message: str) -> None:
    print(f"make_sample: {message}", flush=True)


Box = tuple[float, float, float, float]  # fractions of the photo: x0, y0, x1, y1


@dataclass(frozen=True)
class Shot:
    """`count` crops of one photograph for one synset; every crop contains `subject`."""
    wnid: str
    photo: str  # file in .cache/photos/originals
    count: int
    subject: Box = (0.45, 0.45, 0.55, 0.55)


PLAN = (
    Shot("n11939491", "mate-nature-YellowFlower.jpg", 4, (0.70, 0.55, 0.95, 0.95)),
    Shot("n11939491", "mate-nature-FreshFlower.jpg", 3, (0.25, 0.45, 0.60, 0.90)),
    Shot("n11939491", "mate-nature-Garden.jpg", 3, (0.40, 0.25, 0.85, 0.80)),
    Shot("n02165456", "mate-nature-LadyBird.jpg", 6, (0.64, 0.42, 0.76, 0.60)),
    Shot("n09332890", "plasma-BytheWater.jpg", 2),
    Shot("n09332890", "plasma-DarkestHour.jpg", 2),
    Shot("n09332890", "plasma-summer_1am.jpg", 2),
    Shot("n09332890", "plasma-EveningGlow.jpg", 3),
    Shot("n09332890", "plasma-ColdRipple.jpg", 2, (0.35, 0.55, 0.65, 0.80)),
    Shot("n09428293", "mate-nature-Dune.jpg", 5),
)
# Bases for the special files: fresh crops, hash-checked like the regular ones.
SPECIAL_BASES = {
    "corrupt": Shot("n11939491", "mate-nature-Garden.jpg", 1, (0.40, 0.25, 0.85, 0.80)),
    "cmyk": Shot("n02165456", "mate-nature-LadyBird.jpg", 1, (0.64, 0.42, 0.76, 0.60)),
    "palette": Shot("n11939491", "mate-nature-YellowFlower.jpg", 1, (0.70, 0.55, 0.95, 0.95)),
    "exif-rotated": Shot("n09332890", "plasma-summer_1am.jpg", 1),
    "gps": Shot("n09428293", "mate-nature-Dune.jpg", 1),
    "tiny": Shot("n02165456", "mate-nature-LadyBird.jpg", 1, (0.64, 0.42, 0.76, 0.60)),
}


@dataclass
class Item:
    """One file of the sample."""
    wnid: str
    data: bytes
    photo: str
    kind: str = "regular"
    expect: str = "accepted"
    name: str = ""
    pixels: Image.Image | None = field(default=None, repr=False)


# ---------------------------------------------------------------- drawing crops

def phash(image: Image.Image) -> int:
    """64-bit DCT hash, following the recipe in transforms/phash.py (luma, 32x32 BOX, 8x8, median)."""
    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float64)
    k, i = np.arange(32)[:, None], np.arange(32)[None, :]
    dct = np.cos(np.pi * (2 * i + 1) * k / 64) * np.sqrt(2 / 32)
    dct[0, :] = np.sqrt(1 / 32)
    block = (dct @ grey @ dct.T)[:8, :8].ravel()
    return int("".join("1" if c > np.median(block) else "0" for c in block), 2)


def hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def _span(lo: float, hi: float, rng: random.Random) -> float:
    """Uniform in [lo, hi], or the middle when the range is empty (subject larger than the box)."""
    return rng.uniform(lo, hi) if lo <= hi else (lo + hi) / 2


def random_crop(rng: random.Random, photo: Image.Image, subject: Box, portrait: bool) -> Image.Image:
    """A crop of 400-640 px (aspect 4:3-16:9), 55-100% of the largest box, containing `subject`."""
    longer = rng.randint(400, 640)
    out = (longer, round(longer / rng.uniform(4 / 3, 16 / 9)))
    out = out[::-1] if portrait else out
    pw, ph = photo.size
    sx0, sy0, sx1, sy1 = subject[0] * pw, subject[1] * ph, subject[2] * pw, subject[3] * ph
    fit = min(pw / out[0], ph / out[1])
    need = max((sx1 - sx0) / out[0], (sy1 - sy0) / out[1], 1.0)  # never upscale
    scale = _span(min(max(0.55 * fit, need), fit), fit, rng)
    bw, bh = min(pw, out[0] * scale), min(ph, out[1] * scale)
    x0 = min(max(_span(max(0, sx1 - bw), min(sx0, pw - bw), rng), 0), pw - bw)
    y0 = min(max(_span(max(0, sy1 - bh), min(sy0, ph - bh), rng), 0), ph - bh)
    return photo.resize(out, Image.Resampling.LANCZOS, box=(x0, y0, x0 + bw, y0 + bh))


class Drawer:
    """Draws crops whose hashes are at least MIN_DISTANCE bits from every crop drawn before."""

    def __init__(self, rng: random.Random, originals: Path) -> None:
        self.rng, self.originals = rng, originals
        self.photos: dict[str, Image.Image] = {}
        self.hashes: list[int] = []

    def photo(self, name: str) -> Image.Image:
        if name not in self.photos:
            with Image.open(self.originals / name) as im:
                self.photos[name] = im.convert("RGB")
        return self.photos[name]

    def draw(self, shot: Shot, portrait: bool = False) -> Image.Image:
        for _ in range(200):
            crop = random_crop(self.rng, self.photo(shot.photo), shot.subject, portrait)
            h = phash(crop)
            if all(hamming(h, other) >= MIN_DISTANCE for other in self.hashes):
                self.hashes.append(h)
                return crop
        raise RuntimeError(f"no crop of {shot.photo} is {MIN_DISTANCE} bits from the others")


def jpeg(image: Image.Image, quality: int, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality, **params)
    return buf.getvalue()


class Namer:
    """ImageNet-style names, `<wnid>_<n>.JPEG`, n random but unique per synset."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.used = rng, set()

    def __call__(self, wnid: str) -> str:
        while (name := f"{wnid}_{self.rng.randint(100, 49999)}.JPEG") in self.used:
            pass
        self.used.add(name)
        return name


def regular_items(drawer: Drawer, namer: Namer) -> list[Item]:
    """The plain photographs: PLAN's crops, quality 80-92, one in eight portrait."""
    items = []
    for shot in PLAN:
        for _ in range(shot.count):
            crop = drawer.draw(shot, portrait=drawer.rng.random() < 0.125)
            data = jpeg(crop, drawer.rng.randint(80, 92))
            items.append(Item(shot.wnid, data, shot.photo, name=namer(shot.wnid), pixels=crop))
    return items


# ---------------------------------------------------------------- the special files

def _first(items: list[Item], wnid: str, photo: str = "") -> Item:
    return next(i for i in items if i.wnid == wnid and photo in i.photo and i.kind == "regular")


def near_copy(image: Image.Image) -> bytes:
    """What a re-upload looks like: trimmed 3% a side, scaled to 80%, re-encoded at q70."""
    w, h = image.size
    box = (0.03 * w, 0.03 * h, 0.97 * w, 0.97 * h)
    size = (round(0.8 * 0.94 * w), round(0.8 * 0.94 * h))
    return jpeg(image.resize(size, Image.Resampling.LANCZOS, box=box), 70)


def duplicate_items(items: list[Item], namer: Namer) -> list[Item]:
    """Same bytes twice in one synset; same bytes in two synsets; a re-encoded smaller copy."""
    daisy = _first(items, "n11939491")
    boats = _first(items, "n09332890", "EveningGlow")
    lake = _first(items, "n09332890", "DarkestHour")
    near = near_copy(lake.pixels)  # type: ignore[arg-type]
    distance = hamming(phash(Image.open(io.BytesIO(near))), phash(lake.pixels))  # type: ignore
    return [
        Item("n11939491", daisy.data, daisy.photo, "exact-duplicate",
             f"duplicates table, kind `exact`, distance 0, kept copy {daisy.name}",
             namer("n11939491")),
        Item("n09428293", boats.data, boats.photo, "cross-synset-duplicate",
             f"the same bytes as n09332890/{boats.name} (lakeside): a label conflict. Default "
             "`label_conflict=drop`: BOTH copies go to the rejects table (stage dedup, reason "
             "label conflict); `keep`: one copy per synset",
             namer("n09428293")),
        Item("n09332890", near, lake.photo, "near-duplicate",
             f"{lake.name} trimmed by 3% a side, scaled to 80% and re-encoded at q70 (phash "
             f"distance {distance}): "
             "duplicates table, kind `near`, when near-duplicate removal is on; else accepted",
             namer("n09332890")),
    ]


def broken_items(drawer: Drawer, namer: Namer) -> list[Item]:
    """Files a build must reject with a reason: a truncated JPEG and an image below 32 px."""
    full = jpeg(drawer.draw(SPECIAL_BASES["corrupt"]), 88)
    tiny_shot = SPECIAL_BASES["tiny"]
    tiny = drawer.draw(tiny_shot).resize((28, 21), Image.Resampling.LANCZOS)
    return [
        Item("n11939491", full[: len(full) * 3 // 5], tiny_shot.photo, "truncated",
             f"a JPEG cut at 60% ({len(full) * 3 // 5} of {len(full)} bytes, no EOI marker): "
             "rejects table, stage decode (the header parses, the pixels do not)",
             namer("n11939491")),
        Item("n02165456", jpeg(tiny, 90), tiny_shot.photo, "too-small",
             "28x21 px: rejects table, stage validate (shorter side below min_size=32)",
             namer("n02165456")),
    ]


def palette_png(image: Image.Image) -> bytes:
    """Mode P, 64 colours, transparent outside an ellipse (a tRNS chunk), as a sticker would be."""
    rgba = image.convert("RGBA")
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse((0, 0, image.width - 1, image.height - 1), fill=255)
    rgba.putalpha(mask)
    pal = rgba.quantize(colors=64, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    pal.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def exif_bytes(orientation: int | None = None, gps: bool = False) -> bytes:
    """EXIF with an Orientation tag and/or a (fictitious) GPS position, as a phone writes them."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "synshard", "make_sample"  # Make, Model
    if orientation is not None:
        exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (40.0, 7.0, 30.0), 3: "E", 4: (9.0, 30.0, 0.0)}
    return exif.tobytes()


def format_items(drawer: Drawer, namer: Namer) -> list[Item]:
    """Decodable but unusual: CMYK, palette PNG named .JPEG, EXIF-rotated, GPS EXIF."""
    b = SPECIAL_BASES
    cmyk = drawer.draw(b["cmyk"]).convert("CMYK")
    # Displayed portrait; stored as landscape pixels turned 90 degrees counter-clockwise, with
    # Orientation=6 ("rotate 90 clockwise to display"), as a camera held upright writes it.
    upright = drawer.draw(b["exif-rotated"], portrait=True)
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    return [
        Item("n02165456", jpeg(cmyk, 90), b["cmyk"].photo, "cmyk",
             "CMYK JPEG (4 components, no ICC profile): accepted, converted to RGB",
             namer("n02165456")),
        Item("n11939491", palette_png(drawer.draw(b["palette"])), b["palette"].photo,
             "palette-png", "a PNG (mode P, 64 colours, tRNS transparency outside an ellipse) "
             "named .JPEG, as ImageNet has one: format sniffed from the bytes; accepted, "
             "transparency flattened to RGB", namer("n11939491")),
        Item("n09332890", jpeg(stored, 88, exif=exif_bytes(orientation=6)), b["exif-rotated"].photo,
             "exif-rotated", f"{stored.width}x{stored.height} pixels with EXIF Orientation=6: "
             f"accepted as {upright.width}x{upright.height} (portrait), EXIF stripped",
             namer("n09332890")),
        Item("n09428293", jpeg(drawer.draw(b["gps"]), 88, exif=exif_bytes(gps=True)),
             b["gps"].photo, "gps-exif", "EXIF with a GPS position (fictitious, 40.125N 9.5E): "
             "accepted; the output carries no EXIF (no GPS)", namer("n09428293")),
    ]


# ---------------------------------------------------------------- writing

def build_items(originals: Path, seed: int) -> list[Item]:
    """Every file of the sample, from the seed alone (the order of rng draws is fixed)."""
    rng = random.Random(seed)
    drawer, namer = Drawer(rng, originals), Namer(rng)
    items = regular_items(drawer, namer)
    items += duplicate_items(items, namer)
    items += broken_items(drawer, namer)
    items += format_items(drawer, namer)
    return items


def write_sample(out: Path, items: list[Item], readme: str) -> int:
    """Replace the synset folders and README under `out`; returns the bytes written."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("n[0-9]*"):
        shutil.rmtree(old)
    for item in items:
        (out / item.wnid).mkdir(exist_ok=True)
        (out / item.wnid / item.name).write_bytes(item.data)
    (out / "README.md").write_text(readme)
    return sum(len(i.data) for i in items)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _attribution(items: list[Item], originals: Path) -> str:
    photos = {p["file"]: p for p in json.loads((originals / "index.json").read_text())["photos"]}
    rows = []
    for name in sorted({i.photo for i in items}):
        p = photos[name]
        author = p.get("author") or p.get("copyright", "")
        licence = p.get("license", "") + (f" (metadata.json: {p['metadata_license']})"
                                          if p.get("metadata_license") else "")
        rows.append([name, p["package"], f"`/{p['source']}`", author, licence,
                     str(sum(i.photo == name for i in items))])
    return _md_table(["photo", "Debian package", "file", "author / copyright", "licence",
                      "files here"], rows)


def _expected_counts(items: list[Item]) -> str:
    kinds = [i.kind for i in items]
    n, conflict = len(items), 2 * kinds.count("cross-synset-duplicate")
    rejected = kinds.count("truncated") + kinds.count("too-small") + conflict
    dups = kinds.count("exact-duplicate") + kinds.count("near-duplicate")
    return (f"{n} inputs = {n - rejected - dups} accepted + {rejected} rejected (truncated, "
            f"too small, and both copies of the label conflict) + {dups} duplicates (exact, "
            f"near), with the defaults and near-duplicate removal on; without near-duplicate "
            f"removal, {n - rejected - dups + 1} accepted and 1 duplicate.")


README = """# The bundled sample

{n} real photographs in ImageNet layout (`<wnid>/<wnid>_<n>.JPEG`), {mb:.2f} MB, built by
`synshard demo`. Generated by `scripts/make_sample.py` (seed {seed}) from the Debian wallpaper
photographs that `scripts/photos.py` extracts; do not edit by hand: change the script, rerun it
(`.venv/bin/python scripts/make_sample.py`) and commit the result. This README is generated too.
`tests/unit/test_sample.py` checks the invariants below.

## Classes (ILSVRC-2012 wnids; glosses from WordNet 3.0)

{classes}

Regular files are crops (55-100% of the largest box of their aspect, 400-640 px on the longer side,
aspect 4:3-16:9, one in eight portrait, JPEG quality 80-92) that contain the labelled subject,
and any two of them are at least {min_distance} bits apart in the 64-bit DCT phash, so the only
duplicates are the intended ones below.

## Special files: what the build must do with each

{specials}

Expected accounting: {counts}

## Provenance and licences

Photographs from Debian 12 (bookworm) packages `{debs}`, unpacked with `dpkg -x`.
mate-backgrounds: `/usr/share/doc/mate-backgrounds/copyright` gives each photograph's copyright
holder and the licence GPL-2+. plasma-workspace-wallpapers: `/usr/share/doc/plasma-workspace-wallpapers/copyright`
says `Files: *  Copyright: 2014 KDE Visual Design Group  License: GPL-2+`; each wallpaper's
`metadata.json` names its author and the licence LGPLv3. The GPL-2 and LGPL-3 texts are in
`/usr/share/common-licenses/` on Debian. These images are distributed under those licences (not
the project's Apache-2.0); the crops are modifications made by `scripts/make_sample.py`.

{attribution}
"""


def render_readme(items: list[Item], originals: Path, seed: int) -> str:
    specials = [i for i in items if i.kind != "regular"]
    classes = _md_table(["wnid", "lemma", "gloss", "files"], [
        [w, lemma, gloss, str(sum(i.wnid == w for i in items))]
        for w, (lemma, gloss) in SYNSETS.items()])
    table = _md_table(["file", "case", "expected outcome"], [
        [f"`{i.wnid}/{i.name}`", i.kind, i.expect] for i in specials])
    debs = [unquote(d.removesuffix(".deb")) for d in
            json.loads((originals / "index.json").read_text())["debs"]]
    return README.format(
        n=len(items), mb=sum(len(i.data) for i in items) / 1e6, seed=seed, classes=classes,
        min_distance=MIN_DISTANCE, specials=table, counts=_expected_counts(items),
        debs="`, `".join(debs), attribution=_attribution(items, originals))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    originals = ensure_originals()
    items = build_items(originals, args.seed)
    total = sum(len(i.data) for i in items)
    if total > BUDGET_BYTES:
        raise SystemExit(f"make_sample: {total} bytes, over the {BUDGET_BYTES} budget")
    write_sample(args.out, items, render_readme(items, originals, args.seed))
    for item in items:
        if item.kind != "regular":
            log(f"{item.kind:>22}: {item.wnid}/{item.name}")
    log(f"wrote {len(items)} files, {total / 1e6:.2f} MB, to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
