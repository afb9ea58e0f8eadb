"""Benchmark: assembly's CPU cost per image, on a real staging area, in this process.

    .venv/bin/python bench/bench_assembly.py SOURCE [--resize shorter:64] [--profile 25] [--sort cumulative]

Builds SOURCE (an ImageNet folder, e.g. `.cache/scale/view-100000` or bench_build.py's
`bench/out/build/src`) into a temporary release, all in this process (no Ray), and runs the assembly of every synset in this
process (the `_assemble(..., here=True)` path: the same `run_job` a Ray task runs) under the CPU
clock, optionally under cProfile. Prints assembly CPU microseconds per image (independent of the
machine's load, unlike wall-clock figures) split into user and kernel (system) time, the wall
seconds, and with --profile the top
functions by own time. The jobs are journalled, so the rest of the build commits as usual.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import synshard  # noqa: E402
from synshard.builder import pipeline  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("--resize", default="shorter:64")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="print the N functions with the most own CPU time (cProfile on the CPU clock)")
    ap.add_argument("--sort", default="tottime", choices=("tottime", "cumulative"),
                    help="the profile's order: own time, or with what the function calls")
    args = ap.parse_args()
    original = pipeline._assemble
    seen: dict = {}

    def measured(decisions, cfg, staging, base, here=False, workers=None):  # all here
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        t, cpu, times = time.perf_counter(), time.process_time(), os.times()
        if profiler:
            profiler.enable()
        result = original(decisions, cfg, staging, base, here=True)
        if profiler:
            profiler.disable()
        after = os.times()
        seen.update(cpu=time.process_time() - cpu, wall=time.perf_counter() - t,
                    user=after.user - times.user, system=after.system - times.system,
                    images=decisions.kept.num_rows, profiler=profiler,
                    synsets=len(set(decisions.kept["synset"].to_pylist())))
        return result

    pipeline._assemble = measured
    pipeline.in_process = lambda cfg, inputs: True  # no Ray: its start-up fails at load ~20
    pipeline.PLAN_ALONE_S = None  # nor in the background
    out = Path(tempfile.mkdtemp(prefix="bench-assembly-"))
    try:
        synshard.build([args.source], str(out / "release"), resize=args.resize,
                       progress=False, log=lambda m: None)
        n = seen["images"]
        print(f"assembly of {n} images in {seen['synsets']} synsets, in one process: "
              f"{seen['cpu']:.2f} CPU-s, {seen['wall']:.2f} s wall; "
              f"{seen['cpu'] / n * 1e6:.0f} CPU-us per image "
              f"({seen['user'] / n * 1e6:.0f} user, {seen['system'] / n * 1e6:.0f} in the kernel: "
              "page-cache writes, page faults)")
        if args.profile:
            text = io.StringIO()
            pstats.Stats(seen["profiler"], stream=text).sort_stats(args.sort).print_stats(
                args.profile)
            print(text.getvalue())
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
