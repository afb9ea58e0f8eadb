#!/usr/bin/env python3
"""Real photographs for benchmarks and tests, from Debian wallpaper packages.

    .venv/bin/python scripts/photos.py [--count N] [--root DIR] [--seed S]

Synthetic images (noise, gradients) decode, resize and compress nothing like photographs, so the
benchmarks and the phash study use real ones. Debian ships freely licensed photographs as desktop
wallpapers; this script (idempotent, every step skipped when its output is already there):

1. downloads the packages with `apt-get download` into `.cache/debs/` (no root needed for that;
   `apt-get update` runs once, as root, only when apt does not know a package yet),
2. unpacks them with `dpkg -x` into `.cache/wallpapers/<package>/`,
3. writes `<root>/originals/`: each distinct photograph once, plus `index.json` (source file,
   size, copyright and licence from the package). Packages ship one photo at several resolutions
   (MATE's Elephants at 1920, 3840 and 5640 px; each Plasma wallpaper's 400 px `screenshot`):
   files whose aspect ratios agree within 1% and whose 16x16 greyscale thumbnails differ by less
   than 6/255 on average are one photograph, and the largest file is kept (measured on the
   bookworm packages: copies differ by at most 3.2, distinct photographs by at least 19.4),
4. writes `<root>/imagenet-like/<index>.jpg`: `count` ImageNet-sized JPEGs (shorter side 375,
   longer side 500-640, one in ten portrait, quality uniform in 75-95), random crops at random
   scales of the originals, seeded and deterministic for a given Pillow build, with
   `manifest.json` (source photo, crop box, size, quality, sha256 of every file) written last.

Importable (`sys.path.insert(0, "scripts"); import photos`): `ensure_photos(root=".cache/photos",
count=600) -> Path` (the imagenet-like folder, holding at least `count` files), `photo_paths(count)
-> list[Path]` (exactly `count`) and `ensure_originals(root) -> Path`. Relative roots are taken
from the repository root; a file lock makes concurrent callers wait instead of racing.
Packages: mate-backgrounds and plasma-workspace-wallpapers. ukui-wallpapers (checked, bookworm)
ships renders and illustrations only, no photographs, so it is not downloaded.
"""
from __future__ import annotations

import argparse
import fcntl
import fnmatch
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageStat

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
DEFAULT_ROOT = ".cache/photos"
DEFAULT_COUNT = 600
DEFAULT_SEED = 20120  # ILSVRC-2012
GENERATOR_VERSION = 1  # bump when the crop/encode recipe changes: forces a rebuild

_MATE = "usr/share/backgrounds/mate/"
_PLASMA_PHOTOS = (
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
)
# The wallpapers that are photographs (checked by eye, bookworm versions); the rest of these
# packages are renders, paintings and illustrations. Patterns are relative to the unpacked package.
PHOTOGRAPHS: dict[str, tuple[str, ...]] = {
    "mate-backgrounds": (_MATE + "nature/*", _MATE + "abstract/Elephants*"),
    "plasma-workspace-wallpapers": tuple(
        f"usr/share/wallpapers/{name}/contents/*" for name in _PLASMA_PHOTOS
    ),
}
RASTER_SUFFIXES = {".jpg", ".jpeg", ".png"}
SHORT_SIDE, MAX_LONG_SIDE = 375, 640
PORTRAIT_FRACTION = 0.1


def log(message: str) -> None:
    print(f"photos: {message}", flush=True)


def _resolve(root: str | Path) -> Path:
    path = Path(root)
    return path if path.is_absolute() else REPO / path


# ---------------------------------------------------------------- 1-2: download and unpack

def _apt_candidate(package: str) -> str | None:
    """The version apt would download, or None when apt does not know the package."""
    out = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True).stdout
    match = re.search(r"Candidate:\s*(\S+)", out)
    return None if match is None or match.group(1) == "(none)" else match.group(1)


def _apt_update_once(state: dict[str, bool]) -> None:
    if state.get("updated"):
        return
    state["updated"] = True
    if os.geteuid() != 0:
        log("apt does not know a package and this is not root: run `sudo apt-get update` first")
        return
    log("running apt-get update (once)")
    subprocess.run(["apt-get", "update", "-qq"], check=False)


def download_debs(debs: Path, packages: tuple[str, ...]) -> list[Path]:
    """`apt-get download` each package not yet in `debs`; returns the .deb files present."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise SystemExit("photos: needs apt-get and dpkg (a Debian or Ubuntu machine)")
    debs.mkdir(parents=True, exist_ok=True)
    state: dict[str, bool] = {}
    found = []
    for package in packages:
        have = sorted(debs.glob(f"{package}_*.deb"))
        if not have:
            if _apt_candidate(package) is None:
                _apt_update_once(state)
            if _apt_candidate(package) is None:
                log(f"{package}: not available from apt, skipped")
                continue
            log(f"{package}: apt-get download into {debs}")
            # As root, apt hands the download to user _apt, who cannot write into our cache.
            sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
            subprocess.run(["apt-get", "download", "-q", *sandbox, package], cwd=debs, check=True)
            have = sorted(debs.glob(f"{package}_*.deb"))
        else:
            log(f"{package}: have {have[-1].name}")
        found.extend(have[-1:])
    return found


def unpack_debs(debs: list[Path], wallpapers: Path) -> dict[str, Path]:
    """`dpkg -x` each .deb into `wallpapers/<package>/` once (a stamp names the .deb unpacked)."""
    unpacked = {}
    for deb in debs:
        package = deb.name.split("_")[0]
        target = wallpapers / package
        stamp = target / ".unpacked"
        if not (stamp.exists() and stamp.read_text() == deb.name):
            log(f"{package}: dpkg -x {deb.name} -> {target}")
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)
            stamp.write_text(deb.name)
        unpacked[package] = target
    return unpacked


# ---------------------------------------------------------------- 3: distinct originals

@dataclass
class Candidate:
    package: str
    path: Path  # real file (symlinks resolved)
    rel: str  # path inside the package
    size: tuple[int, int]
    thumb: Image.Image  # 16x16 greyscale


def _candidates(unpacked: dict[str, Path]) -> list[Candidate]:
    """Every photograph file of the selected wallpapers, symlinks resolved, each real file once."""
    seen: set[Path] = set()
    found = []
    for package, top in sorted((p, t.resolve()) for p, t in unpacked.items()):
        for pattern in PHOTOGRAPHS.get(package, ()):
            for path in _expand(top, pattern):
                real = path.resolve()
                if real in seen or real.suffix.lower() not in RASTER_SUFFIXES or not real.is_file():
                    continue
                seen.add(real)
                found.append(_candidate(package, top, real))
    return found


def _expand(top: Path, pattern: str) -> list[Path]:
    """Files matching `pattern`, and every file below matching folders, sorted."""
    found = []
    for path in sorted(top.glob(pattern)):
        found.extend(sorted(path.rglob("*")) if path.is_dir() else [path])
    return found


def _candidate(package: str, top: Path, real: Path) -> Candidate:
    with Image.open(real) as im:
        size = im.size
        im.draft("RGB", (64, 64))  # JPEG: decode at 1/8 scale, enough for a 16x16 thumbnail
        thumb = im.convert("L").resize((16, 16), Image.Resampling.BOX)
    return Candidate(package, real, str(real.relative_to(top)), size, thumb)


def same_photo(a: Candidate, b: Candidate, max_mean_diff: float = 6.0) -> bool:
    """One photograph at two resolutions: same aspect (1%) and near-equal 16x16 thumbnails."""
    aspect_a, aspect_b = a.size[0] / a.size[1], b.size[0] / b.size[1]
    if abs(aspect_a / aspect_b - 1) > 0.01:
        return False
    diff = ImageStat.Stat(ImageChops.difference(a.thumb, b.thumb)).mean[0]
    return diff < max_mean_diff


def group_duplicates(cands: list[Candidate]) -> list[list[Candidate]]:
    """Groups of files that are one photograph, largest file first (quadratic: tens of files)."""
    groups: list[list[Candidate]] = []
    for cand in cands:
        for group in groups:
            if any(same_photo(cand, member) for member in group):
                group.append(cand)
                break
        else:
            groups.append([cand])
    for group in groups:
        group.sort(key=lambda c: (-c.size[0] * c.size[1], c.rel))
    return groups


def _photo_name(cand: Candidate) -> str:
    """`mate-nature-Aqua`, `mate-abstract-Elephants`, `plasma-BytheWater`: readable and stable."""
    if cand.package == "plasma-workspace-wallpapers":
        return "plasma-" + cand.rel.split("/")[3]
    stem = re.sub(r"_\d+x\d+$", "", Path(cand.rel).stem)
    return f"mate-{Path(cand.rel).parent.name}-{stem}"


def _copyright(top: Path, package: str, rel: str) -> dict[str, str]:
    """Copyright and licence of one file: the last matching DEP-5 paragraph (Debian's rule)."""
    text = (top / f"usr/share/doc/{package}/copyright").read_text(errors="replace")
    result: dict[str, str] = {}
    for para in text.split("\n\n"):
        fields = dict(re.findall(r"^(Files|Copyright|License):[ \t]*(.*(?:\n[ \t]+.*)*)", para, re.M))
        patterns = fields.get("Files", "").split()
        if any(p == "*" or fnmatch.fnmatch(rel, "*/" + p) for p in patterns):
            holders = " ".join(fields.get("Copyright", "").split()).rstrip("\u00b4 ")
            result = {"copyright": holders,
                      "license": fields.get("License", "").split("\n")[0].strip()}
    return result


def _plasma_metadata(top: Path, rel: str) -> dict[str, str]:
    """Plasma wallpapers name author and licence per wallpaper in metadata.json."""
    meta_path = top / "/".join(rel.split("/")[:4]) / "metadata.json"
    if not meta_path.exists():
        return {}
    plugin = json.loads(meta_path.read_text()).get("KPlugin", {})
    authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []))
    return {"author": authors, "metadata_license": plugin.get("License", "")}


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One writer at a time: engineers' benchmarks call this concurrently in one checkout."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_originals(root: str | Path = DEFAULT_ROOT) -> Path:
    """Download, unpack and deduplicate; returns `<root>/originals` (with `index.json`)."""
    with _locked(_resolve(root)):
        return _ensure_originals(_resolve(root))


def _ensure_originals(root: Path) -> Path:
    out = root / "originals"
    index_path = out / "index.json"
    if index_path.exists():
        index = json.loads(index_path.read_text())
        if all((out / p["file"]).exists() for p in index["photos"]):
            log(f"{len(index['photos'])} originals already in {out}")
            return out
    debs = download_debs(CACHE / "debs", tuple(PHOTOGRAPHS))
    unpacked = unpack_debs(debs, CACHE / "wallpapers")
    groups = group_duplicates(_candidates(unpacked))
    if not groups:
        raise SystemExit("photos: no photographs found: are the wallpaper packages available?")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    photos = [_write_original(group, unpacked, out) for group in groups]
    index = {"version": 1, "photos": photos,
             "debs": [deb.name for deb in debs],
             "dedup": "same aspect within 1% and mean |diff| of 16x16 grey thumbnails < 6/255"}
    index_path.write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n")
    n_files = sum(len(g) for g in groups)
    log(f"{n_files} photo files -> {len(photos)} distinct photographs in {out}")
    return out


def _write_original(group: list[Candidate], unpacked: dict[str, Path], out: Path) -> dict:
    keep = group[0]
    name = _photo_name(keep) + keep.path.suffix.lower()
    shutil.copyfile(keep.path, out / name)
    if len(group) > 1:
        log(f"{name}: kept {keep.size[0]}x{keep.size[1]}, dropped copies "
            + ", ".join(f"{c.size[0]}x{c.size[1]}" for c in group[1:]))
    top = unpacked[keep.package]
    entry = {"file": name, "package": keep.package, "source": keep.rel,
             "width": keep.size[0], "height": keep.size[1],
             "duplicates": [c.rel for c in group[1:]]}
    entry.update(_copyright(top, keep.package, keep.rel))
    entry.update(_plasma_metadata(top, keep.rel) if keep.package.startswith("plasma") else {})
    return entry


# ---------------------------------------------------------------- 4: ImageNet-like crops

@dataclass(frozen=True)
class Crop:
    """One output image: which original, which box (source pixels), output size and quality."""
    index: int
    source: str
    box: tuple[int, int, int, int]
    size: tuple[int, int]
    quality: int


def output_size(rng: random.Random) -> tuple[int, int]:
    """ImageNet's typical shape: shorter side 375, aspect 4:3-16:9 (longer capped at 640)."""
    longer = min(round(SHORT_SIDE * rng.uniform(4 / 3, 16 / 9)), MAX_LONG_SIDE)
    if rng.random() < PORTRAIT_FRACTION:
        return SHORT_SIDE, longer
    return longer, SHORT_SIDE


def crop_box(rng: random.Random, photo: tuple[int, int], out: tuple[int, int]) -> tuple[int, ...]:
    """A random box of the output's aspect, 30-100% of the largest such box; no upscaling
    unless the photo is smaller than the output (the originals are all >= 1050 px)."""
    pw, ph = photo
    fit = min(pw / out[0], ph / out[1])  # largest box of the output's aspect: out * fit
    low = min(1.0, max(0.3, 1.0 / fit))  # a box smaller than the output would need upscaling
    scale = fit * rng.uniform(low, 1.0)
    bw, bh = min(pw, round(out[0] * scale)), min(ph, round(out[1] * scale))
    x0, y0 = rng.randint(0, pw - bw), rng.randint(0, ph - bh)
    return x0, y0, x0 + bw, y0 + bh


def plan_crops(photos: list[dict], count: int, seed: int) -> list[Crop]:
    """Every crop's parameters, from the seed alone: round-robin over the photos, shuffled."""
    rng = random.Random(seed)
    order = sorted(photos, key=lambda p: p["file"])
    rng.shuffle(order)
    crops = []
    for index in range(count):
        photo = order[index % len(order)]
        out = output_size(rng)
        box = crop_box(rng, (photo["width"], photo["height"]), out)
        crops.append(Crop(index, photo["file"], box, out, rng.randint(75, 95)))
    return crops


def render_crops(originals: Path, crops: list[Crop], out: Path) -> list[dict]:
    """Decode each original once, write its crops; returns manifest entries in index order."""
    entries: dict[int, dict] = {}
    for source in sorted({c.source for c in crops}):
        with Image.open(originals / source) as im:
            im.load()
            photo = im if im.mode in ("RGB", "L") else im.convert("RGB")
            for crop in (c for c in crops if c.source == source):
                small = photo.resize(crop.size, Image.Resampling.LANCZOS, box=crop.box)
                name = f"{crop.index}.jpg"
                small.save(out / name, "JPEG", quality=crop.quality)
                data = (out / name).read_bytes()
                entries[crop.index] = {
                    "file": name, "source": f"originals/{source}", "box": list(crop.box),
                    "width": crop.size[0], "height": crop.size[1], "quality": crop.quality,
                    "mode": small.mode, "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
    return [entries[i] for i in sorted(entries)]


def _existing(manifest_path: Path, params: dict) -> list[dict]:
    """Entries of a set made with these parameters whose files are all intact; else []."""
    if not manifest_path.exists():
        return []
    manifest = json.loads(manifest_path.read_text())
    if {k: manifest.get(k) for k in params} != params:
        return []
    folder = manifest_path.parent
    files = [(folder / e["file"], e["bytes"]) for e in manifest["images"]]
    intact = all(path.is_file() and path.stat().st_size == size for path, size in files)
    return manifest["images"] if intact else []


def originals_key(photos: list[dict]) -> str:
    """What the crops depend on (files and sizes), not the attribution text beside them."""
    listing = json.dumps([(p["file"], p["width"], p["height"]) for p in photos])
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def ensure_photos(root: str | Path = DEFAULT_ROOT, count: int = DEFAULT_COUNT,
                  seed: int = DEFAULT_SEED) -> Path:
    """Originals plus at least `count` ImageNet-like JPEGs; returns `<root>/imagenet-like`.

    Crop i does not depend on `count`: a set of 600 holds the set of 100 as `0.jpg`..`99.jpg`,
    so asking for fewer than are there changes nothing and asking for more appends.
    Use `photo_paths(count)` for exactly `count` files.
    """
    with _locked(_resolve(root)):
        return _ensure_crops(_resolve(root), count, seed)


def _ensure_crops(root: Path, count: int, seed: int) -> Path:
    originals = _ensure_originals(root)
    photos = json.loads((originals / "index.json").read_text())["photos"]
    out = root / "imagenet-like"
    params = {"version": GENERATOR_VERSION, "seed": seed, "originals": originals_key(photos)}
    manifest_path = out / "manifest.json"
    have = _existing(manifest_path, params)
    if len(have) >= count:
        log(f"{len(have)} imagenet-like JPEGs already in {out} (asked for {count})")
        return out
    if not have:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
    crops = plan_crops(photos, count, seed)[len(have):]  # a larger set extends a smaller one
    log(f"writing {len(crops)} imagenet-like JPEGs from {len(photos)} photographs to {out}")
    images = have + render_crops(originals, crops, out)
    manifest = dict(params, count=len(images), generator="scripts/photos.py", images=images)
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")  # written last: commit point
    total = sum(e["bytes"] for e in images)
    log(f"done: {len(images)} files, {total / 1e6:.1f} MB, mean {total / len(images) / 1e3:.0f} KB")
    return out


def photo_paths(count: int = DEFAULT_COUNT, root: str | Path = DEFAULT_ROOT) -> list[Path]:
    """Exactly `count` imagenet-like JPEGs (`0.jpg` ... in order), made first if need be."""
    out = ensure_photos(root, count)
    return [out / f"{i}.jpg" for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="imagenet-like JPEGs")
    parser.add_argument("--root", default=DEFAULT_ROOT, help="output folder (repo-relative)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be >= 0")
    print(ensure_photos(args.root, args.count, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
