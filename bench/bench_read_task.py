"""Benchmark: where a read task's CPU goes besides the kernel, in one warm process, no Ray.

    .venv/bin/python bench/bench_read_task.py [--tasks 16] [--source bench/out/build/src]

Runs the build's own `run_task` (synshard/builder/stages.py) on the first read tasks of a folder
source (default: the ImageNet folder bench/bench_build.py lays out), with the same options as
bench/bench_build.py's build (shorter:256, quality 90). The first task is run once untimed (imports,
WordNet, first-call set-up); the next --tasks are timed by CPU seconds of this process, split into
  read     read_candidates: listing slice -> file reads -> candidate batches
  kernel   transform_batch (what bench/bench_build.py's side-by-side kernel runs)
  stage    stage_batch: staged Arrow IPC files written per synset, metadata rows
  journal  the task's metadata Parquet file (its commit point)
  other    the rest of run_task (synset filter, concatenation, casts)
each also as a share of the kernel. No profiler runs (its overhead would inflate the small parts).
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import synshard.builder.stages as stages
import synshard.builder.staging as staging_module
from synshard.builder.inputs import prepare
from synshard.builder.nopandas import without_pandas
from synshard.builder.staging import Staging
from synshard.config import build_config

ROOT = Path(__file__).resolve().parents[1]
CPU: dict[str, float] = {"read": 0.0, "kernel": 0.0, "stage": 0.0, "journal": 0.0}


def _timed(fn: Callable[..., Any], part: str) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            CPU[part] += time.process_time() - t
    return timed


def _timed_iter(fn: Callable[..., Iterator[Any]], part: str) -> Callable[..., Iterator[Any]]:
    """A generator function whose own CPU (not its consumer's) counts towards `part`."""
    def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
        items = fn(*args, **kwargs)
        while True:
            t = time.process_time()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                CPU[part] += time.process_time() - t
            yield item
    return timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=16, help="read tasks timed (default %(default)s)")
    ap.add_argument("--source", default=str(ROOT / "bench" / "out" / "build" / "src"),
                    help="a folder source (default: bench/bench_build.py's layout)")
    ap.add_argument("--work", default=str(ROOT / "bench" / "out" / "read_task"))
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    cfg = build_config({"sources": [args.source], "out": args.work, "resize": "shorter:256",
                        "quality": 90, "progress": False})
    inputs = prepare(cfg)
    if len(inputs.tasks) < args.tasks + 1:
        raise SystemExit(f"{args.source}: {len(inputs.tasks)} read tasks, {args.tasks + 1} needed")
    staging = Staging.for_build(cfg.out, {}, inputs.fingerprint, cfg.files_per_task)
    without_pandas()  # as on a Ray worker (raysession.read_on_worker)
    sum(stages.run_task(0, inputs.tasks[0], cfg, staging))  # warm-up, not timed
    stages.read_candidates = _timed_iter(stages.read_candidates, "read")  # type: ignore[assignment]
    stages.transform_batch = _timed(stages.transform_batch, "kernel")
    staging_module.stage_batch = _timed(staging_module.stage_batch, "stage")
    staging_module.Staging.write_task_meta = _timed(  # type: ignore[method-assign]
        staging_module.Staging.write_task_meta, "journal")
    t = time.process_time()
    rows = sum(sum(stages.run_task(i, inputs.tasks[i], cfg, staging))
               for i in range(1, args.tasks + 1))
    total = time.process_time() - t
    parts = {**CPU, "other": total - sum(CPU.values())}
    kernel = CPU["kernel"]
    print(f"{rows} inputs in {args.tasks} read tasks: run_task {total:.2f} CPU-s, "
          f"{total / kernel - 1:+.1%} over the kernel")
    for part, cpu in parts.items():
        print(f"  {part:8s} {cpu:7.3f} CPU-s  {cpu / kernel:6.1%} of the kernel  "
              f"{cpu / rows * 1e6:7.1f} us/input")
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
