"""Benchmark: the whole `synshard build` on all cores against the transform stage on one core.

    .venv/bin/python bench/bench_build.py [--count 2400] [--synsets 40]

ImageNet-sized photographic JPEGs (scripts/photos.py: crops of real photos, ~500x375, q75-95) are
laid out as an ImageNet folder of --synsets classes (hard links, no copies). In one run it measures
  transform   images per CPU-second of transform_batch alone on one core (the per-core rate)
  build       images/s of `synshard build` on an embedded Ray with all cores: the read+transform+
              stage phase (from build.json) and the whole command, Ray start-up included
and prints build / (cores x transform); the goal is at least 0.8 for the build phase.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import pyarrow as pa  # noqa: E402

import photos  # noqa: E402
import synshard  # noqa: E402
from synshard.transforms.options import ResizeSpec, TransformOptions  # noqa: E402
from synshard.transforms.process import transform_batch  # noqa: E402
from synshard.transforms.schema import CANDIDATE_SCHEMA  # noqa: E402


def layout(paths: list[Path], synsets: int, dest: Path) -> Path:
    """An ImageNet folder of hard links: photo i goes to ILSVRC-2012 class i % synsets."""
    from synshard.synsets.subsets import load_subset

    wnids = load_subset("ilsvrc2012")[:synsets]
    if dest.exists():
        shutil.rmtree(dest)
    for i, p in enumerate(paths):
        folder = dest / wnids[i % synsets]
        folder.mkdir(parents=True, exist_ok=True)
        os.link(p, folder / f"{folder.name}_{i}.JPEG")
    return dest


def transform_rate(paths: list[Path], batch: int = 64) -> float:
    """Images per CPU-second of the transform stage on this process (one core)."""
    opts = TransformOptions(resize=ResizeSpec("shorter", 256), quality=90)
    blobs = [p.read_bytes() for p in paths]
    cpu = 0.0
    for start in range(0, len(blobs), batch):
        chunk = blobs[start:start + batch]
        table = pa.table({"source": [str(i) for i in range(len(chunk))],
                          "synset": ["n01440764"] * len(chunk), "data": chunk},
                         ).select(["source", "synset", "data"])
        table = _candidates(table)
        t = time.process_time()
        transform_batch(table, opts)
        cpu += time.process_time() - t
    return len(blobs) / cpu


def _candidates(table: pa.Table) -> pa.Table:
    cols = {f.name: table[f.name] if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
            for f in CANDIDATE_SCHEMA}
    return pa.table(cols, schema=CANDIDATE_SCHEMA)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2400)
    ap.add_argument("--synsets", type=int, default=40)
    ap.add_argument("--work", default=str(ROOT / "bench" / "out" / "build"))
    args = ap.parse_args()
    paths = photos.photo_paths(args.count)
    work = Path(args.work)
    source = layout(paths, args.synsets, work / "src")
    cores = os.cpu_count() or 1
    per_core = transform_rate(paths[::4])  # a quarter of the same photos, spread over all
    out = work / "release"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    result = synshard.build([str(source)], str(out), resize="shorter:256", quality=90,
                            progress=False, log=lambda m: None)
    whole = args.count / (time.perf_counter() - t)
    stats = json.loads((out / "build.json").read_text())["stats"]
    phase = stats["images_per_s"]
    print(f"images {args.count} in {args.synsets} synsets, cores {cores}")
    print(f"transform stage, one core:      {per_core:8.1f} img/CPU-s")
    print(f"build read+transform+stage:     {phase:8.1f} img/s  "
          f"ratio to cores x transform {phase / (cores * per_core):.2f} (goal >= 0.8)")
    print(f"whole build incl. Ray start-up: {whole:8.1f} img/s  "
          f"ratio {whole / (cores * per_core):.2f}")
    print("phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in stats["timings_s"].items()))
    print(f"accounting: {result.accounting}")
    assert result.accounting["inputs"] == args.count
    assert result.accounting["accepted"] > 0.9 * args.count, "most inputs should be accepted"


if __name__ == "__main__":
    main()
