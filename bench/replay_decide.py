"""decide on a real build's gathered metadata: each step's time and its own peak RSS.

    .venv/bin/python bench/bench_driver_memory.py --count 1000000 --source DIR --phases \
        --save-gathered gathered-1M.parquet          # once: the table a real build gathered
    .venv/bin/python bench/replay_decide.py gathered-1M.parquet [--near-radius 6|none] [--trace]
    .venv/bin/python bench/replay_decide.py STAGING_DIR   # a copy of a build's staging folder
        # (its _tasks/ journal, e.g. copied while a bench_scale build ran): the gather too, as
        # the build runs it (Staging.gather_metas), with its own peak
    .venv/bin/memray run --native -o decide.bin bench/replay_decide.py gathered-1M.parquet

The same measurement as `bench/bench_decide.py` (its `Steps`: the peak-RSS counter reset at each
step) on rows a build made rather than simulated ones: the scale benchmark's crops are 24 photos
cut a million ways, so near pairs (and the conflicts table) are far denser than the simulation's.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_decide import Steps, Tracer, _rss, arrow_bytes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table", help="a gathered table (bench_driver_memory.py --save-gathered), "
                                  "or a staging folder whose _tasks/ holds a build's journal")
    ap.add_argument("--near-radius", default="6", help="phash radius, or none")
    ap.add_argument("--chunk-rows", type=int, default=0,
                    help="re-chunk the table into chunks of this many rows, as the build's gather "
                         "holds it (16384 at 1M: 64 tasks of 256 rows a chunk); default: as read")
    ap.add_argument("--trace", action="store_true",
                    help="attribute the peak: Arrow vs NumPy bytes and the stack at the peak")
    args = ap.parse_args()
    from synshard.builder.decide.steps import decide
    from synshard.config import BuildConfig
    from synshard.transforms.options import DedupOptions

    pa.array([1])  # pyarrow's one-time imports, before the baseline
    if Path(args.table).is_dir():
        meta = _gather(Path(args.table))
    else:
        meta = pq.read_table(args.table)
    if args.chunk_rows:
        meta = pa.Table.from_batches(meta.to_batches(max_chunksize=args.chunk_rows),
                                     meta.schema)  # (slices: the dictionaries stay shared)
    held = _rss()["VmRSS"]
    Path("/proc/self/clear_refs").write_text("5")
    radius = None if args.near_radius == "none" else int(args.near_radius)
    cfg = BuildConfig(out="/tmp/unused", sources=("/data",), dedup=DedupOptions(near_radius=radius))
    steps = Steps()
    tracer = Tracer() if args.trace else None
    w, c = time.perf_counter(), time.process_time()
    decisions = decide(meta, cfg)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    steps.restore()
    if tracer is not None:
        tracer.report()
    mib = 1 << 20
    print(f"load average {os.getloadavg()[0]:.1f}; {meta.num_rows:,} rows, "
          f"{arrow_bytes() / mib:,.0f} MiB in Arrow with the decisions; "
          f"RSS with the table {held / mib:,.0f} MiB")
    print(f"{'step':<22}{'wall s':>9}{'CPU s':>9}{'RSS after MiB':>15}{'peak in it MiB':>16}")
    for name, sw, sc, rss, top, *_ in steps.rows:
        inner = f"{top / mib:16,.0f}" if top else f"{'(in its caller)':>16}"
        print(f"{name:<22}{sw:9.1f}{sc:9.1f}{rss / mib:15,.0f}{inner}")
    print(f"{'decide (total)':<22}{wall:9.1f}{cpu:9.1f}   peak {steps.overall_peak() / mib:,.0f} MiB")
    print(f"accounting {decisions.accounting}; conflicts {decisions.conflicts.num_rows:,} rows "
          f"({decisions.conflicts.nbytes / mib:,.0f} MiB), duplicates "
          f"{decisions.duplicates.num_rows:,}, kept {decisions.kept.nbytes / mib:,.0f} MiB")


def _gather(folder: Path) -> pa.Table:
    """The gathered table of a staging folder's journal, gathered as the build does; prints the
    gather's own figures."""
    from fsspec.implementations.local import LocalFileSystem

    from synshard.builder.staging import Staging

    folder = folder.resolve()
    count = len(list((folder / "_tasks").glob("task-*.parquet")))
    store = Staging(LocalFileSystem(), str(folder.parent), str(folder))
    before = _rss()["VmRSS"]
    Path("/proc/self/clear_refs").write_text("5")
    w, c = time.perf_counter(), time.process_time()
    meta = store.gather_metas(count)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    mib = 1 << 20
    rss = _rss()
    print(f"gather of {count:,} task files: {meta.num_rows:,} rows, {meta.nbytes / mib:,.0f} MiB "
          f"of values; RSS {before / mib:,.0f} -> {rss['VmRSS'] / mib:,.0f} MiB (peak in it "
          f"{rss['VmHWM'] / mib:,.0f}); {wall:.1f} s, {cpu:.1f} CPU-s")
    for name in meta.column_names:
        print(f"   {name:<14}{meta[name].nbytes / mib:8.1f} MiB")
    return meta


if __name__ == "__main__":
    main()
