"""Benchmark: the streaming loader against three baselines, one process each, in one run.

Job: ImageNet-sized photographs (scripts/photos.py) built into a release (shorter side 256, JPEG
q90), then read as training samples: decode (draft), random resized crop 224, flip, as uint8 HxWx3.
Prints images/s (median of --repeats passes) for
  loader     synshard.shards.ShardDataset over the release (shuffled, mixed)
  floor      (a) the release's own image bytes, already in memory, same decode + transforms
  per-file   (b) an ImageFolder-style reader: open each original file, same decode + transforms
  webdataset (c) the `webdataset` library over the same tars (shuffle 1000), same decode + transforms
and the ratios loader/floor (goal >= 0.9) and loader/per-file (goal >= 1.5).

    .venv/bin/python scripts/photos.py --count 600 && .venv/bin/python bench/bench_loader.py
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SYNSETS = sorted(p.name for p in (ROOT / "data" / "sample").iterdir() if p.is_dir())


def imagenet_layout(photos: Path, out: Path, count: int) -> list[Path]:
    """Copy the photos into `<synset>/<file>` folders (round robin over real wnids); copies, as
    folder sources refuse links (untrusted input)."""
    files = sorted(photos.glob("*.jpg"))[:count]
    copies = []
    for i, f in enumerate(files):
        d = out / SYNSETS[i % len(SYNSETS)]
        d.mkdir(parents=True, exist_ok=True)
        link = d / f"{d.name}_{f.name}"
        if not link.exists():
            shutil.copyfile(f, link)
        copies.append(link)
    return copies


def timed(fn, repeats: int) -> float:
    """Median images/s over `repeats` passes of `fn` (which returns how many it produced)."""
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", default=str(ROOT / ".cache/photos/imagenet-like"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--count", type=int, default=600)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--work", default=None, help="folder for the layout and release (default: temp)")
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import synshard
    from synshard.shards import ShardDataset
    from synshard.shards.augment import AugmentOptions, augment
    from synshard.shards.release import open_release
    from synshard.shards.webdataset import iter_webdataset_shard

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-loader-"))
    files = imagenet_layout(Path(args.photos), work / "imagenet", args.count)
    rel = work / "release"
    if not (rel / "manifest.json").exists():
        synshard.build([str(work / "imagenet")], str(rel), progress=False, log=lambda s: None)
    release = open_release(str(rel))
    shards = release.shards(split="train", format="webdataset")
    paths = [str(rel / e.path) for e in shards]
    blobs = [s["jpg"] for p in paths for s in iter_webdataset_shard(release.fs, p)]
    opts = AugmentOptions(image_size=args.size, mode="train")
    rng = np.random.default_rng(0)
    print(f"{len(files)} photos -> {len(blobs)} train samples in {len(shards)} shards; "
          f"1 process each, image_size {args.size}", file=sys.stderr)  # fmt: skip

    def loader() -> int:
        return sum(1 for _ in ShardDataset(str(rel), "train", image_size=args.size))

    def floor() -> int:
        for b in blobs:
            augment(b, None, opts, rng)
        return len(blobs)

    originals = files[:]
    random.Random(0).shuffle(originals)
    originals = originals[: len(blobs)]

    def per_file() -> int:
        for f in originals:
            with open(f, "rb") as fh:
                augment(fh.read(), None, opts, rng)
        return len(originals)

    def webdataset() -> int:
        import webdataset as wds

        pipe = wds.WebDataset(paths, shardshuffle=False, empty_check=False).shuffle(1000)
        return sum(1 for s in pipe.map(lambda s: augment(s["jpg"], None, opts, rng)))

    rates = {name: timed(fn, args.repeats) for name, fn in
             (("floor", floor), ("loader", loader), ("per-file", per_file), ("webdataset", webdataset))}  # fmt: skip
    for name, rate in rates.items():
        print(f"{name:11s} {rate:8.1f} img/s")
    print(f"loader/floor      {rates['loader'] / rates['floor']:.2f}  (goal >= 0.9)")
    print(f"loader/per-file   {rates['loader'] / rates['per-file']:.2f}  (goal >= 1.5)")
    print(f"loader/webdataset {rates['loader'] / rates['webdataset']:.2f}")


if __name__ == "__main__":
    main()
