"""Benchmark: an incremental rebuild that adds 1% new images, against a full rebuild.

    .venv/bin/python bench/bench_incremental.py [--count 2400] [--new-percent 1]

The base release is built from (100 - p)% of ImageNet-sized photos (scripts/photos.py); then, in
one run, (a) `synshard build NEW --base BASE` and (b) a full `synshard build OLD NEW`. It prints
both wall times (embedded Ray start-up included, the same in both), the read+transform+stage and
assemble phases from build.json, the images each one transformed, and the ratios.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

import photos  # noqa: E402
import synshard  # noqa: E402
from bench_build import layout  # noqa: E402


def timed_build(sources: list[Path], out: Path, **opts) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    result = synshard.build([str(s) for s in sources], str(out), progress=False,
                            log=lambda m: None, **opts)
    wall = time.perf_counter() - t
    stats = json.loads((out / "build.json").read_text())["stats"]
    return wall, {"inputs": result.accounting["inputs"], **stats["timings_s"],
                  **stats.get("assembly", {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2400)
    ap.add_argument("--synsets", type=int, default=40)
    ap.add_argument("--new-percent", type=float, default=1.0)
    ap.add_argument("--work", default=str(ROOT / "bench" / "out" / "incremental"))
    args = ap.parse_args()
    work = Path(args.work)
    paths = photos.photo_paths(args.count)
    n_new = max(1, round(args.count * args.new_percent / 100))
    old = layout(paths[:-n_new], args.synsets, work / "old")
    new = layout(paths[-n_new:], args.synsets, work / "new")
    base = work / "base"
    timed_build([old], base)
    inc_wall, inc = timed_build([new], work / "incremental", base=str(base))
    full_wall, full = timed_build([old, new], work / "full")
    print(f"images: base {args.count - n_new}, new {n_new} ({args.new_percent}%)")
    for name, wall, st in (("incremental", inc_wall, inc), ("full", full_wall, full)):
        print(f"{name:12s} wall {wall:6.1f} s  inputs {st['inputs']:5d}  read+transform+stage "
              f"{st['read+transform+stage']:5.1f} s  assemble {st['assemble']:5.1f} s  "
              f"synsets reused {st.get('synsets_reused', 0)} written {st.get('synsets_written', 0)}")
    print(f"ratio incremental/full: wall {inc_wall / full_wall:.3f}, "
          f"read+transform+stage {inc['read+transform+stage'] / full['read+transform+stage']:.3f}")


if __name__ == "__main__":
    main()
