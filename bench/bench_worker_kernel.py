"""Benchmark: the build's kernel in a Ray worker against the same kernel in this process.

    .venv/bin/python bench/bench_worker_kernel.py [--count 1536] [--rounds 3]

bench/bench_build.py's one-core kernel (`transform_rate`: transform_batch in batches of 64,
shorter:256, quality 90, the photos read into memory first, CPU seconds of the process) on the
same --count photos of scripts/photos.py's cache, alternating: here, then in a task on a
one-CPU embedded Ray. Prints the Ray worker's CPU per image as a ratio to this process's each
round and their median: what a Ray worker adds to a running read task's kernel (its background
threads count in its process CPU).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_build  # noqa: E402
import photos  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1536, help="photos (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default %(default)s)")
    ap.add_argument("--photos", default=photos.DEFAULT_ROOT, metavar="ROOT",
                    help="scripts/photos.py's root: made there once, reused (default %(default)s)")
    args = ap.parse_args()
    paths = photos.photo_paths(args.count, args.photos)
    # the worker imports bench_build and photos as this process does
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "bench"), str(ROOT / "scripts"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        in_worker = ray.remote(num_cpus=1)(bench_build.transform_rate)
        ratios = []
        for r in range(args.rounds):
            here = bench_build.transform_rate(paths)
            there = ray.get(in_worker.remote(paths))
            ratios.append(here / there)  # CPU per image, worker / here
            print(f"round {r + 1}: here {here:.1f} img/CPU-s, Ray worker {there:.1f} img/CPU-s: "
                  f"worker CPU per image {ratios[-1]:.3f}x", flush=True)
    finally:
        ray.shutdown()
    print(f"median over {args.rounds} rounds: a Ray worker's kernel costs "
          f"{statistics.median(ratios):.3f}x the CPU per image of this process's")


if __name__ == "__main__":
    main()
