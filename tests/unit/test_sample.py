"""Invariants of the bundled sample (data/sample/) and of the photo scripts' pure parts.

The sample is committed and `synshard demo` builds it, so nobody should be able to break it
silently: these tests read the files themselves (bytes, headers, pixels), not the generator's
notes, and fail when a special case disappears, a file grows, or a new duplicate sneaks in.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import itertools
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
BUDGET_BYTES = 3_000_000
WNIDS = {"n02165456", "n09332890", "n09428293", "n11939491"}
NAME = re.compile(r"^(n\d{8})_\d+\.JPEG$")


def _load_script(name: str):
    """scripts/ is not a package: import a script from it (make_sample imports photos so)."""
    scripts = str(REPO / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    return importlib.import_module(name)


def _phash_fn():
    """The build's own phash when the package is importable; else the generator's copy of it."""
    try:
        from synshard.transforms.phash import phash_image
    except ImportError:
        return _load_script("make_sample").phash
    return phash_image


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    """`<wnid>/<name>` -> bytes, for every file under the synset folders."""
    found = {f"{p.parent.name}/{p.name}": p.read_bytes()
             for p in sorted(SAMPLE.glob("*/*")) if p.is_file()}
    assert found, f"no sample files under {SAMPLE}"
    return found


def _open(data: bytes) -> Image.Image | None:
    """Decoded image with EXIF orientation applied, or None when the bytes do not decode."""
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except OSError:
        return None
    return ImageOps.exif_transpose(im)


def _with(files: dict[str, bytes], check) -> list[str]:
    return [name for name, data in files.items() if check(data)]


# ---------------------------------------------------------------- layout and budget

def test_imagenet_layout_and_names(files):
    assert {name.split("/")[0] for name in files} == WNIDS
    for name in files:
        folder, base = name.split("/")
        match = NAME.match(base)
        assert match and match.group(1) == folder, name
    top_level = sorted(p.name for p in SAMPLE.iterdir() if p.is_file())
    assert top_level == ["README.md"]


def test_wnids_are_ilsvrc2012_classes():
    classes = REPO / "synsets" / "data" / "ilsvrc2012.txt"
    if not classes.exists():
        pytest.skip("synsets/data/ilsvrc2012.txt not there yet")
    assert WNIDS <= set(re.findall(r"n\d{8}", classes.read_text()))


def test_size_budget_and_count(files):
    total = sum(len(d) for d in files.values()) + (SAMPLE / "README.md").stat().st_size
    assert total <= BUDGET_BYTES
    assert 30 <= len(files) <= 60
    assert all(sum(n.startswith(w) for n in files) >= 5 for w in WNIDS)


def test_regular_images_are_imagenet_sized(files):
    sizes = [im.size for im in map(_open, files.values()) if im is not None and min(im.size) >= 32]
    assert len(sizes) >= len(files) - 3
    for w, h in sizes:
        assert 400 <= max(w, h) <= 640 and min(w, h) >= 250, (w, h)


# ---------------------------------------------------------------- each special case

def test_exact_duplicate_within_one_synset(files):
    by_hash = defaultdict(list)
    for name, data in files.items():
        by_hash[hashlib.sha256(data).hexdigest()].append(name.split("/")[0])
    assert any(len(wnids) > len(set(wnids)) for wnids in by_hash.values())


def test_cross_synset_duplicate(files):
    by_hash = defaultdict(set)
    for name, data in files.items():
        by_hash[hashlib.sha256(data).hexdigest()].add(name.split("/")[0])
    assert sum(len(wnids) > 1 for wnids in by_hash.values()) == 1


def test_one_truncated_jpeg(files):
    broken = _with(files, lambda d: _open(d) is None)
    assert len(broken) == 1
    data = files[broken[0]]
    assert data[:2] == b"\xff\xd8" and not data.rstrip(b"\0").endswith(b"\xff\xd9")
    assert Image.open(io.BytesIO(data)).size[0] > 32  # the header parses, the pixels do not


def test_cmyk_jpeg(files):
    cmyk = _with(files, lambda d: (im := _open(d)) is not None and im.mode == "CMYK")
    assert len(cmyk) == 1 and Image.open(io.BytesIO(files[cmyk[0]])).format == "JPEG"


def test_palette_png_with_transparency_named_jpeg(files):
    def is_palette_png(data: bytes) -> bool:
        im = Image.open(io.BytesIO(data))
        return im.format == "PNG" and im.mode == "P" and "transparency" in im.info

    names = _with(files, is_palette_png)
    assert len(names) == 1 and names[0].endswith(".JPEG")
    alpha = Image.open(io.BytesIO(files[names[0]])).convert("RGBA").getchannel("A")
    assert alpha.getextrema() == (0, 255)  # really transparent somewhere, opaque elsewhere


def test_exif_rotated_landscape_pixels_display_portrait(files):
    def rotated(data: bytes) -> bool:
        im = Image.open(io.BytesIO(data))
        return im.getexif().get(0x0112) == 6 and im.width > im.height

    names = _with(files, rotated)
    assert len(names) == 1
    shown = _open(files[names[0]])
    assert shown is not None and shown.height > shown.width


def test_gps_exif(files):
    def has_gps(data: bytes) -> bool:
        gps = Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)
        return {1, 2, 3, 4} <= set(gps)

    assert len(_with(files, has_gps)) == 1


def test_tiny_image(files):
    tiny = _with(files, lambda d: (im := _open(d)) is not None and min(im.size) < 32)
    assert len(tiny) == 1


def test_only_the_intended_near_duplicate(files):
    """Exactly one pair of different files within 10 phash bits, in one synset; others >= 16."""
    phash = _phash_fn()
    hashes = {}
    for name, data in files.items():
        im = _open(data)
        if im is not None and min(im.size) >= 32:
            hashes[name] = (phash(im.convert("RGBA").convert("RGB")), hashlib.sha256(data).digest())
    close, distances = [], []
    for (a, (ha, sa)), (b, (hb, sb)) in itertools.combinations(sorted(hashes.items()), 2):
        if sa != sb:
            d = bin(ha ^ hb).count("1")
            distances.append(d)
            close += [(a, b)] if d <= 10 else []
    assert len(close) == 1 and close[0][0].split("/")[0] == close[0][1].split("/")[0]
    assert sorted(distances)[1] >= 16


def test_readme_lists_every_special_file_and_the_licences(files):
    readme = (SAMPLE / "README.md").read_text()
    special = {name for name, data in files.items()
               if _open(data) is None or min(_open(data).size) < 32
               or Image.open(io.BytesIO(data)).mode in ("CMYK", "P")
               or Image.open(io.BytesIO(data)).getexif()}
    assert len(special) == 6
    for name in special:
        assert f"`{name}`" in readme, name
    for needle in ("GPL-2+", "LGPLv3", "mate-backgrounds", "plasma-workspace-wallpapers"):
        assert needle in readme
    assert f"{len(files)} inputs = " in readme


# ---------------------------------------------------------------- scripts/photos.py, pure parts

def test_crop_box_fits_the_photo_and_never_upscales():
    photos = _load_script("photos")
    rng = random.Random(0)
    for _ in range(500):
        photo = (rng.randint(700, 6000), rng.randint(700, 4000))  # originals: >= 1050 px
        out = photos.output_size(rng)
        x0, y0, x1, y1 = photos.crop_box(rng, photo, out)
        assert 0 <= x0 < x1 <= photo[0] and 0 <= y0 < y1 <= photo[1]
        assert x1 - x0 >= out[0] - 1 and y1 - y0 >= out[1] - 1
        assert min(out) == 375 and max(out) <= 640
        assert abs((x1 - x0) / (y1 - y0) - out[0] / out[1]) < 0.02


def test_plan_crops_is_deterministic_and_uses_every_photo():
    photos = _load_script("photos")
    listing = [{"file": f"p{i}.jpg", "width": 2560, "height": 1600} for i in range(7)]
    plan = photos.plan_crops(listing, 50, seed=3)
    assert plan == photos.plan_crops(list(reversed(listing)), 50, seed=3)
    assert plan != photos.plan_crops(listing, 50, seed=4)
    assert plan[:20] == photos.plan_crops(listing, 20, seed=3)  # smaller sets are prefixes
    assert {c.source for c in plan} == {p["file"] for p in listing}
    assert all(75 <= c.quality <= 95 for c in plan)


def test_same_photo_at_two_resolutions_is_one_photo():
    photos = _load_script("photos")
    big = Image.effect_mandelbrot((1600, 1000), (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB")
    other = big.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # mandelbrot: symmetric top-bottom

    def cand(im: Image.Image, rel: str):
        thumb = im.convert("L").resize((16, 16), Image.Resampling.BOX)
        return photos.Candidate("pkg", Path(rel), rel, im.size, thumb)

    a, b = cand(big, "a"), cand(big.resize((400, 250), Image.Resampling.LANCZOS), "b")
    c = cand(other, "c")
    assert photos.same_photo(a, b) and not photos.same_photo(a, c)
    groups = photos.group_duplicates([b, c, a])
    assert sorted(len(g) for g in groups) == [1, 2]
    assert next(g for g in groups if len(g) == 2)[0] is a  # the largest copy is kept
