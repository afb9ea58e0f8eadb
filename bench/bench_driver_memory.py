"""Where the driver's memory goes: build N small distinct JPEGs, peak RSS and a tracemalloc census.

    .venv/bin/python bench/bench_driver_memory.py --count 20000 [--synsets 100] [--trace]
        [--phases] [--source DIR]

Generates once into bench/out/small-<N>/ (ignored): --synsets ILSVRC synset folders of 96x72 JPEGs,
each distinct (a random colour field), then:
  default  `synshard build ... --resize shorter:64` under `/usr/bin/time -v`: the driver's peak RSS
           (Ray's processes are separate), and that over the image count.
  --phases the RSS split (below) after each phase, without tracemalloc's own overhead; and each
           segment's own peak: the peak-RSS counter is reset (/proc/self/clear_refs) at every seam
           (entry and exit of planning, the folder listing, the gather, each step of decide, the
           assembly, commit), so "peak in it" is the highest RSS between two seams.
  --trace  the same build in this process with tracemalloc on (1 frame): after the read phase,
           after decide and after assembly, the Python heap by source line (top 8), Arrow's own
           pool (now and peak: tracemalloc does not see it) and the RSS split from /proc
           (anonymous, file-backed, shared memory: Ray's object store pages the driver touched);
           also after planning the assembly jobs, after commit's tables and manifest, after
           the datasheet.
  --source DIR  build that folder (of --count images) instead of generating one.
  --memray FILE with --phases: memray's record of the driver's allocations (native frames too).
  --save-gathered FILE  also write the gathered metadata table (what decide reads) to this
           Parquet file: `bench/bench_decide.py`-style replays of decide on a real build's rows.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from timed_build import timed_build  # noqa: E402


def generate(dest: Path, count: int, synsets: int) -> Path:
    if dest.with_suffix(".done").exists():
        return dest
    from synshard.synsets.subsets import load_subset
    shutil.rmtree(dest, ignore_errors=True)
    rng = np.random.default_rng(0)
    wnids = load_subset("ilsvrc2012")[:synsets]
    for w in wnids:
        (dest / w).mkdir(parents=True)
    for i in range(count):
        field = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)
        image = Image.fromarray(field).resize((96, 72), Image.BILINEAR)
        w = wnids[i % synsets]
        image.save(dest / w / f"{w}_{i}.JPEG", "JPEG", quality=85)
    dest.with_suffix(".done").touch()
    return dest


def peak_rss(src: Path, out: Path, count: int) -> None:
    r = timed_build([str(src), "--out", str(out), "--resize", "shorter:64", "--no-progress",
                     "--name", "mem", "--overwrite"], out)
    mib = 1024 * 1024
    print(r["stdout"].strip())
    print(f"driver peak RSS {r['driver_peak'] / mib:.0f} MiB ({r['driver_peak'] / count:,.0f} "
          f"B/image; until the first synset was assembled "
          f"{r['driver_peak_before_assembly'] / mib:.0f} MiB)  wall {r['wall_s']:.1f}s")


def census(label: str, baseline: tracemalloc.Snapshot | None, count: int) -> None:
    import pyarrow as pa
    print(f"\n== {label}: arrow pool {pa.total_allocated_bytes() / 1e6:.1f} MB")
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        print(f"   python heap {current / 1e6:.1f} MB (peak {peak / 1e6:.1f} MB, "
              f"{current / count:.0f} B/image)")
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    rss = {k: int(status[k].split()[0]) // 1024 for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile",
                                                           "RssShmem") if k in status}
    print(f"   rss MiB {rss}; arrow pool peak {pa.default_memory_pool().max_memory() / 1e6:.1f} MB"
          f" ({pa.default_memory_pool().backend_name})")
    if not tracemalloc.is_tracing():
        return
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)])
    for stat in snap.statistics("lineno")[:8]:
        frame = stat.traceback[0]
        name = frame.filename.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
        print(f"  {stat.size / 1e6:8.1f} MB {stat.count:9d} blocks  {name}:{frame.lineno}")


# The seams a census is taken after: (module, name, label), in build order.
SEAMS = (
    ("pipeline", "_stage", "after read+transform+stage (metadata gathered)"),
    ("pipeline", "decide", "after decide"),
    ("pipeline", "synset_jobs", "after planning the assembly jobs"),
    ("pipeline", "_assemble", "after the assembly tasks (results consumed)"),
    ("commit", "commit_manifest", "after the side tables, build.json and manifest"),
    ("commit", "write_datasheet", "after the datasheet"),
)


# Finer seams for the segment peaks (--phases): entry and exit of each.
SEGMENT_SEAMS = (
    ("pipeline", "prepare"), ("sources", "walk_folder"), ("sources", "_plan_folder"),
    ("pipeline", "_metadata"), ("pipeline", "decide"),
    *(("steps", name) for name in ("plain", "_reject_rows", "assign_splits_batch",
                                   "_confidence_step", "_sha256_block", "exact_dedup",
                                   "near_dedup", "_classes_step", "_cap_step", "_kept_table",
                                   "_finish")),
    ("pipeline", "synset_jobs"), ("pipeline", "_assemble"), ("commit", "commit_manifest"),
    ("commit", "write_datasheet"),
)


class Segments:
    """Peak RSS between consecutive seams: at each seam, read VmHWM (the segment's peak since the
    last reset) and reset it to the current RSS. Prints one line per segment."""

    def __init__(self) -> None:
        self.last = "start"
        self.t = time.perf_counter()
        _clear_refs()

    def seam(self, label: str) -> None:
        import pyarrow as pa

        rss = _proc_status()
        now = time.perf_counter()
        print(f"  seg {self.last:>28} -> {label:<28} {now - self.t:7.1f} s  peak in it "
              f"{rss['VmHWM'] // 1024:6,} MiB  RSS at end {rss['VmRSS'] // 1024:6,} MiB  "
              f"anon {rss.get('RssAnon', 0) // 1024:6,}  arrow {pa.total_allocated_bytes() >> 20:5,} "
              f"MiB", flush=True)
        self.last, self.t = label, now
        _clear_refs()


def _proc_status() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon"):
            out[key] = int(value.split()[0])
    return out


def _clear_refs() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS from here on


def trace(src: Path, out: Path, count: int, python_heap: bool, save: Path | None = None) -> None:
    import synshard
    from synshard.builder import commit, pipeline
    from synshard.builder.decide import steps
    from synshard.ingest import sources

    modules = {"pipeline": pipeline, "commit": commit, "steps": steps, "sources": sources}

    def wrap(fn, label):
        def inner(*args, **kwargs):
            result = fn(*args, **kwargs)
            census(label, None, count)
            return result
        return inner

    segments = Segments() if not python_heap else None

    def seams(fn, name):
        def inner(*args, **kwargs):
            segments.seam(f"{name}(")
            try:
                return fn(*args, **kwargs)
            finally:
                segments.seam(f"){name}")
        return inner

    for module, name, label in SEAMS:
        setattr(modules[module], name, wrap(getattr(modules[module], name), label))
    if segments is not None:
        for module, name in SEGMENT_SEAMS:
            if hasattr(modules[module], name):
                setattr(modules[module], name, seams(getattr(modules[module], name), name))
    if save is not None:
        import pyarrow.parquet as pq

        gather = pipeline._metadata

        def saving(*args, **kwargs):
            meta = gather(*args, **kwargs)
            pq.write_table(meta, save)  # outside the gather's seams (its own segment)
            return meta

        pipeline._metadata = saving
    if python_heap:
        tracemalloc.start(1)
    synshard.build([str(src)], str(out), resize="shorter:64", progress=False, overwrite=True,
                   name="mem", log=lambda m: None)
    census("after the build (Ray shut down)", None, count)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--synsets", type=int, default=100)
    ap.add_argument("--source", help="build this ImageNet-layout folder of --count images "
                    "instead (e.g. bench_scale.py's .cache/scale/view-N)")
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--phases", action="store_true", help="--trace without tracemalloc (RSS only)")
    ap.add_argument("--save-gathered", metavar="FILE", help="with --trace/--phases: write the "
                    "gathered metadata table to this Parquet file")
    ap.add_argument("--memray", metavar="FILE", help="with --phases: also record the driver's "
                    "native and Python allocations with memray into FILE (then `memray stats "
                    "FILE`, `memray flamegraph FILE`)")
    args = ap.parse_args()
    if args.source:
        src = Path(args.source)
        out = ROOT / "bench" / "out" / f"mem-{src.name}-release"
    else:
        src = generate(ROOT / "bench" / "out" / f"small-{args.count}", args.count, args.synsets)
        out = ROOT / "bench" / "out" / f"small-{args.count}-release"
    if args.trace or args.phases:
        shutil.rmtree(out.with_name(out.name + "-trace"), ignore_errors=True)
        release = out.with_name(out.name + "-trace")
        save = Path(args.save_gathered) if args.save_gathered else None
        if args.memray:
            import memray

            with memray.Tracker(args.memray, native_traces=True):
                trace(src, release, args.count, python_heap=args.trace, save=save)
        else:
            trace(src, release, args.count, python_heap=args.trace, save=save)
    else:
        peak_rss(src, out, args.count)


if __name__ == "__main__":
    main()
