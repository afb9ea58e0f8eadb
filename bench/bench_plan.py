"""Planning alone: the driver's memory for planning one source (a folder, a tar, a URL list).

    .venv/bin/python bench/bench_plan.py SOURCE [--warm SOURCE] [--files-per-task 256]

In this process: optionally plan a small warm-up source first (imports, Arrow's and the
allocator's first pages), then plan SOURCE with `synshard.builder.inputs`'s own entry point
(`plan_inputs`: the same tasks and fingerprint a build gets) and print the RSS before, the peak
during planning (/proc/self/clear_refs then VmHWM), the RSS after (tasks held; the pool and C heap released, as a build does), Arrow's pool peak,
the task count, the fingerprint and a digest of the tasks' contents (to check that a change to
planning keeps both). `--bare` skips the warm-up.
"""
from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss() -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon in KiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon"):
            out[key] = int(value.split()[0])
    return out


def plan(source: str, files_per_task: int) -> tuple[list, str]:
    from synshard.builder.inputs import plan_inputs
    from synshard.config import BuildConfig

    cfg = BuildConfig(sources=(source,), out="/nonexistent", files_per_task=files_per_task)
    return plan_inputs(cfg)


def tasks_digest(tasks: list) -> str:
    """sha256 over each task's contents: a URL task's list, start and rows (as Python values,
    whatever form the task holds them in), a files or tar task pickled."""
    h = hashlib.sha256()
    for task in tasks:
        if hasattr(task, "urls"):
            h.update(repr((task.uri, task.start, task.retry, task.urls.to_pydict())).encode())
        else:
            h.update(pickle.dumps(task, protocol=5))
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("--warm", help="a small source planned first (default: none)")
    ap.add_argument("--files-per-task", type=int, default=256)
    args = ap.parse_args()
    import pyarrow as pa

    from synshard.builder.decide.memory import release

    if args.warm:
        plan(args.warm, args.files_per_task)
        release()
    before = rss()
    Path("/proc/self/clear_refs").write_text("5")
    pool_before = pa.default_memory_pool().max_memory()
    t = time.perf_counter()
    tasks, fingerprint = plan(args.source, args.files_per_task)
    wall = time.perf_counter() - t
    during = rss()
    release()  # as `inputs.prepare` does after planning
    after = rss()
    mib = 1024
    print(f"planned {args.source}: {len(tasks):,} tasks in {wall:.1f} s")
    print(f"  RSS before {before['VmRSS'] // mib} MiB, peak during {during['VmHWM'] // mib} MiB "
          f"(+{(during['VmHWM'] - before['VmRSS']) // mib}), after {after['VmRSS'] // mib} MiB "
          f"(+{(after['VmRSS'] - before['VmRSS']) // mib}; tasks held); arrow pool peak "
          f"{pa.default_memory_pool().max_memory() / 2**20:.0f} MiB (was {pool_before / 2**20:.0f})")
    print(f"  fingerprint {fingerprint}")
    print(f"  tasks digest {tasks_digest(tasks)}")


if __name__ == "__main__":
    main()
