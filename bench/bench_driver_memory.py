"""Where the driver's memory goes: build N small distinct JPEGs, peak RSS and a tracemalloc census.

    .venv/bin/python bench/bench_driver_memory.py --count 20000 [--synsets 100] [--trace]

Generates once into bench/out/small-<N>/ (ignored): --synsets ILSVRC synset folders of 96x72 JPEGs,
each distinct (a random colour field), then:
  default  `synshard build ... --resize shorter:64` under `/usr/bin/time -v`: the driver's peak RSS
           (Ray's processes are separate), and that over the image count.
  --phases the RSS split (below) after each phase, without tracemalloc's own overhead.
  --trace  the same build in this process with tracemalloc on (1 frame): after the read phase,
           after decide and after assembly, the Python heap by source line (top 8), Arrow's own
           pool (now and peak: tracemalloc does not see it) and the RSS split from /proc
           (anonymous, file-backed, shared memory: Ray's object store pages the driver touched).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


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


def command(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "synshard.cli", "build", str(src), "--out", str(out),
            "--resize", "shorter:64", "--no-progress", "--name", "mem", "--overwrite"]


def peak_rss(src: Path, out: Path) -> None:
    t0 = time.perf_counter()
    run = subprocess.run(["/usr/bin/time", "-v", *command(src, out)], capture_output=True,
                         text=True)
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        sys.exit(run.stderr[-3000:])
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    print(run.stdout.strip())
    print(f"driver peak RSS {kb / 1024:.0f} MiB  wall {wall:.1f}s")
    return kb


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


def trace(src: Path, out: Path, count: int, python_heap: bool) -> None:
    import synshard
    from synshard.builder import pipeline

    originals = {n: getattr(pipeline, n) for n in ("_stage", "decide", "_assemble")}

    def wrap(name, label):
        def inner(*args, **kwargs):
            result = originals[name](*args, **kwargs)
            census(label, None, count)
            return result
        return inner

    pipeline._stage = wrap("_stage", "after read+transform+stage (metadata gathered)")
    pipeline.decide = wrap("decide", "after decide")
    pipeline._assemble = wrap("_assemble", "after assembly planning and tasks")
    if python_heap:
        tracemalloc.start(1)
    synshard.build([str(src)], str(out), resize="shorter:64", progress=False, overwrite=True,
                   name="mem", log=lambda m: None)
    census("after commit", None, count)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--synsets", type=int, default=100)
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--phases", action="store_true", help="--trace without tracemalloc (RSS only)")
    args = ap.parse_args()
    src = generate(ROOT / "bench" / "out" / f"small-{args.count}", args.count, args.synsets)
    out = ROOT / "bench" / "out" / f"small-{args.count}-release"
    if args.trace or args.phases:
        shutil.rmtree(out.with_name(out.name + "-trace"), ignore_errors=True)
        trace(src, out.with_name(out.name + "-trace"), args.count, python_heap=args.trace)
    else:
        peak_rss(src, out)


if __name__ == "__main__":
    main()
