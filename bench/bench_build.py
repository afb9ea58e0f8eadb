"""Benchmark: the whole `synshard build` on all cores against the same kernel in N plain processes.

    .venv/bin/python bench/bench_build.py [--count 2400] [--synsets 40] [--processes N]
    .venv/bin/python bench/bench_build.py --count 12000 --rounds 5   # median of 5 alternations
    .venv/bin/python bench/bench_build.py --demo 3     # the fixed cost of `make demo`'s build

ImageNet-sized photographic JPEGs (scripts/photos.py: crops of real photos, ~500x375, q75-95) are
laid out as an ImageNet folder of --synsets classes (hard links, no copies). In one run it measures
  ceiling     images/s of the kernel, `transform_batch` (batches of 64, the same options) on the
              same photos (held in shared memory), in N plain processes side by side (N = the
              cores the build gets) that take the next batch from a shared counter: the most an N-core
              machine can do. Measured before and after the build; the mean of the two is the
              ceiling (both are printed: the machine is shared and noisy)
  build       images/s of `synshard build` with all cores (a local build: forked workers, no
              Ray; `-- --embedded-ray always` for the embedded Ray), run as a user runs
              it (`python -m synshard.cli build`, a fresh process each build): the read+
              transform+stage phase (from build.json) and the whole command, from the process's
              start to its end (imports, Ray's start-up and shutdown where it starts, included)
and prints build / ceiling for both; the goals are at least 0.9 for the phase, 0.8 for the whole
command. Also printed: the one-core CPU rate of the kernel (img/CPU-s), the load average, and the
whole machine's idle, iowait and steal core-seconds during the build (/proc/stat); `--timeline`
adds the build's busy cores second by second (where its idle core-seconds are). `--rounds R`
alternates R builds with R + 1 kernel runs and prints the median ratios: these machines' speed
drifts by tens of percent from one minute to the next (the one-core rate of the same kernel
varied 535-757 img/CPU-s between three runs in a row), so a ratio is only as good as the kernel
runs beside its build. Part of that drift was glibc's malloc: a plain process gave its image
buffers back to the kernel after every image, or not, by its history (34-105 page faults an image
between two side-by-side runs); `transform_batch` now keeps them (transforms/heap.py) in every
process that runs it, these kernels included, and the kernel's CPU for 12,000 photos came out at
19.0-21.9 CPU-s in 6 runs, against 20.2-28.8 before (docs/scale.md, session 16).
"""
from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import pyarrow as pa  # noqa: E402

import photos  # noqa: E402
from tree_cpu import BUILD_MODULE, TreeCPU, system_cpu  # noqa: E402
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


KERNEL_OPTIONS = TransformOptions(resize=ResizeSpec("shorter", 256), quality=90)  # the build's


def transform_rate(paths: list[Path], batch: int = 64) -> float:
    """Images per CPU-second of the transform stage on this process (one core)."""
    blobs = [p.read_bytes() for p in paths]
    cpu = 0.0
    for start in range(0, len(blobs), batch):
        table = _kernel_table(blobs[start:start + batch])
        t = time.process_time()
        transform_batch(table, KERNEL_OPTIONS)
        cpu += time.process_time() - t
    return len(blobs) / cpu


KERNEL_BATCH = 64


def _kernel_worker(blobs_name: str, bounds: list[int], counter: Any, barrier: Any,
                   results: Any) -> None:
    """One plain process: wait for the others, then take the next batch of `KERNEL_BATCH` photos
    from the shared `counter` and transform it, until none is left, as the build's workers take
    the next task. (With a fixed share each, one process finished 5-10% before the other in two
    runs on 20,000 photos; taking batches, the ceiling came out 1-2.5% higher, alternating.)
    The photos are read once by the parent into shared memory (`blobs_name`, photo i at
    bounds[i]:bounds[i + 1])."""
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(name=blobs_name)
    try:
        results.put(_kernel_loop(shm.buf, bounds, counter, barrier))
    finally:
        shm.close()


def _kernel_loop(blobs: memoryview, bounds: list[int], counter: Any, barrier: Any
                 ) -> tuple[float, float, float]:
    """(start, end, CPU seconds) of one kernel process's batches (see `_kernel_worker`)."""
    transform_batch(_kernel_batch(blobs, bounds, 0, 1), KERNEL_OPTIONS)  # set-up, untimed
    barrier.wait()
    t, cpu = time.perf_counter(), time.process_time()
    count = len(bounds) - 1
    while True:
        with counter.get_lock():
            start = counter.value
            counter.value = start + KERNEL_BATCH
        if start >= count:
            break
        batch = _kernel_batch(blobs, bounds, start, min(count, start + KERNEL_BATCH))
        transform_batch(batch, KERNEL_OPTIONS)
    return t, time.perf_counter(), time.process_time() - cpu


def _kernel_batch(blobs: memoryview, bounds: list[int], start: int, stop: int) -> pa.Table:
    return _kernel_table([bytes(blobs[bounds[i]:bounds[i + 1]]) for i in range(start, stop)])


def _kernel_table(chunk: list[bytes]) -> pa.Table:
    """Photos as a candidate batch (CANDIDATE_SCHEMA), as a read task hands it to the kernel."""
    return _candidates(pa.table({"source": [str(i) for i in range(len(chunk))],
                                 "synset": ["n01440764"] * len(chunk), "data": chunk}))


def side_by_side_rate(paths: list[Path], processes: int) -> tuple[float, float]:
    """(images/s, CPU seconds) of the kernel on `paths` in `processes` plain processes started
    together.

    The photos are read into shared memory once; the processes take batches of them from one
    shared counter. The clock runs from the common start (a barrier, after imports) to the last
    process's end."""
    from multiprocessing import shared_memory

    sizes = [p.stat().st_size for p in paths]
    bounds = [0, *itertools.accumulate(sizes)]
    shm = shared_memory.SharedMemory(create=True, size=max(1, bounds[-1]))
    try:
        for p, a, size in zip(paths, bounds, sizes):
            with p.open("rb") as f:
                f.readinto(shm.buf[a:a + size])
        ctx = mp.get_context("spawn")
        counter, barrier, results = ctx.Value("l", 0), ctx.Barrier(processes), ctx.Queue()
        procs = [ctx.Process(target=_kernel_worker,
                             args=(shm.name, bounds, counter, barrier, results))
                 for _ in range(processes)]
        for proc in procs:
            proc.start()
        spans = [results.get() for _ in procs]
        for proc in procs:
            proc.join()
    finally:
        shm.unlink()
        shm.close()
    wall = max(e for _, e, _ in spans) - min(s for s, _, _ in spans)
    return len(paths) / wall, sum(c for _, _, c in spans)


def run_build(source: Path, out: Path, processes: int, extra: list[str],
              cpu: "TreeCPU | None" = None) -> dict[str, int]:
    """`synshard build` as a user runs it, in a fresh process (its imports, Ray's start, the
    readers forked before Ray: a build in this process would find Ray imported from its second
    round on, and fork none); returns the manifest's accounting. With `cpu`, the process is
    named to it as the driver, and scanned once more after it exits, before it is reaped."""
    cmd = [sys.executable, "-m", BUILD_MODULE, "build", str(source), "--out", str(out),
           "--resize", "shorter:256", "--quality", "90", "--num-cpus", str(processes),
           "--no-progress", *extra]
    with tempfile.TemporaryFile("w+") as output:  # a file, not a pipe: nothing waits on a reader
        proc = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT, text=True)
        if cpu is not None:
            cpu.driver_pid = proc.pid
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            cpu.scan()  # its final CPU, while its /proc entry is still there
        code = proc.wait()
        if code:
            output.seek(0)
            raise SystemExit(f"bench_build: the build failed (exit {code}):\n"
                             f"{output.read().strip()[-2000:]}")
    return json.loads((out / "manifest.json").read_text())["accounting"]


def _candidates(table: pa.Table) -> pa.Table:
    cols = {f.name: table[f.name] if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
            for f in CANDIDATE_SCHEMA}
    return pa.table(cols, schema=CANDIDATE_SCHEMA)


def demo_fixed_cost(runs: int, work: Path) -> None:
    """`make demo`'s build (cli.run_demo's options) `runs` times, each in a fresh process as the
    CLI runs it: its seconds, and the part of them outside read+transform+stage (the fixed
    cost: the process's start and imports, Ray when it starts, assembly, commit, exit)."""
    from synshard.sample import sample_path

    out = work / "demo"
    for _ in range(runs):
        shutil.rmtree(out, ignore_errors=True)
        load = os.getloadavg()[0]
        t = time.perf_counter()
        accounting = run_build(sample_path(), out, os.cpu_count() or 1,
                               ["--val-fraction", "0.2", "--shard-size", "4MiB", "--overwrite"])
        whole = time.perf_counter() - t
        timings = json.loads((out / "build.json").read_text())["stats"]["timings_s"]
        print(f"demo build of {accounting['inputs']} inputs: {whole:.2f} s, of which "
              f"{whole - timings['read+transform+stage']:.2f} s outside read+transform+stage "
              f"(load average {load:.1f}); phases: "
              + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2400)
    ap.add_argument("--synsets", type=int, default=40)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                    help="plain processes for the ceiling (default: the cores, as the build gets)")
    ap.add_argument("--work", default=str(ROOT / "bench" / "out" / "build"))
    ap.add_argument("--photos", default=photos.DEFAULT_ROOT, metavar="ROOT",
                    help="scripts/photos.py's root: made there once, reused (e.g. a shared "
                         "cache folder; default %(default)s)")
    ap.add_argument("--ceiling-count", type=int, default=24000, metavar="N",
                    help="the side-by-side kernel runs on at most N of the photos, evenly "
                         "spread (its rate, not its count, is compared; they are held in "
                         "shared memory meanwhile; default %(default)s)")
    ap.add_argument("--timeline", action="store_true",
                    help="also print the build's busy cores second by second (its CPU tree)")
    ap.add_argument("--demo", type=int, metavar="RUNS",
                    help="only time `make demo`'s build RUNS times (its fixed cost)")
    ap.add_argument("--rounds", type=int, default=1, metavar="R",
                    help="R builds, each between two kernel runs (kernel, build, kernel, build, "
                         "..., kernel: a kernel run is the ceiling of the builds on both sides "
                         "of it), then the median ratios: the machine's speed drifts by tens "
                         "of percent between minutes, so one round's ratio says little")
    ap.add_argument("build_args", nargs="*",
                    help="more `synshard build` flags, after `--` (e.g. -- --format webdataset)")
    args = ap.parse_args()
    if args.demo:
        return demo_fixed_cost(args.demo, Path(args.work))
    paths = photos.photo_paths(args.count, args.photos)
    sample = paths[::-(-len(paths) // args.ceiling_count)] if args.ceiling_count > 0 else paths
    work = Path(args.work)
    source = layout(paths, args.synsets, work / "src")
    n = args.processes
    load = os.getloadavg()
    per_core = transform_rate(paths[::8])  # an eighth of the same photos, spread over all
    print(f"images {args.count} in {args.synsets} synsets, {n} processes / build CPUs; "
          f"load average at start {load[0]:.1f} {load[1]:.1f}")
    print(f"kernel, one core:                {per_core:8.1f} img/CPU-s")
    kernel = side_by_side_rate(sample, n)
    ratios = []
    for r in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"--- round {r} of {args.rounds}")
        ratios.append(one_round(args, source, sample, n, kernel))
        kernel = ratios[-1][2]  # this round's kernel after: the next round's before
    if args.rounds > 1:
        phases, wholes = [p for p, _, _ in ratios], [w for _, w, _ in ratios]
        print(f"over {args.rounds} rounds: read+transform+stage ratio median "
              f"{statistics.median(phases):.2f} ({min(phases):.2f}-{max(phases):.2f}; goal >= "
              f"0.9), whole build ratio median {statistics.median(wholes):.2f} "
              f"({min(wholes):.2f}-{max(wholes):.2f}; goal >= 0.8)")


def one_round(args: argparse.Namespace, source: Path, sample: list[Path], n: int,
              before_kernel: tuple[float, float]) -> tuple[float, float, tuple[float, float]]:
    """One build between two kernel runs on `sample` (`before_kernel` measured already): prints
    its figures, returns (phase ratio, whole ratio, the kernel run after it)."""
    before, kernel_cpu = before_kernel
    sampled = len(sample)
    out = Path(args.work) / "release"
    shutil.rmtree(out, ignore_errors=True)
    system = system_cpu()
    t = time.perf_counter()
    with TreeCPU() as cpu:
        accounting = run_build(source, out, n, args.build_args, cpu)
    end = time.perf_counter()
    system = {k: v - system.get(k, 0.0) for k, v in system_cpu().items()}
    whole = args.count / (end - t)
    after_kernel = side_by_side_rate(sample, n)
    after, kernel_cpu_after = after_kernel
    ceiling = (before + after) / 2
    stats = json.loads((out / "build.json").read_text())["stats"]
    phase = stats["images_per_s"]
    print(f"load average after the build {os.getloadavg()[0]:.1f}")
    print(f"kernel, {n} processes side by side: {ceiling:8.1f} img/s  (before the build "
          f"{before:.1f}, after {after:.1f}; on {sampled} of the photos)")
    print(f"build read+transform+stage:      {phase:8.1f} img/s  "
          f"ratio to the side-by-side kernel {phase / ceiling:.2f} (goal >= 0.9)")
    print(f"whole build, start to exit:      {whole:8.1f} img/s  "
          f"ratio {whole / ceiling:.2f} (goal >= 0.8)")
    scale = args.count / sampled  # the kernel's CPU-s for all the photos, from its sample
    driver = cpu.by_kind().get("driver", (0, 0.0))[1]
    kernel_all = (kernel_cpu + kernel_cpu_after) / 2 * scale
    print(f"CPU seconds, the same {args.count} photos: kernel {kernel_cpu * scale:.1f} (after "
          f"the build {kernel_cpu_after * scale:.1f}"
          + (f"; from its {sampled} photos" if scale != 1 else "")
          + f"), whole build {cpu.total():.1f} (the driver {driver:.1f}, the rest "
          f"{cpu.total() - driver:.1f}; not counted: this benchmark's /proc sampler "
          f"{cpu.sampler:.1f}): kernel / build {kernel_all / cpu.total():.2f} "
          f"(less dependent on the load than the rates, not independent of it)")
    print("phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in stats["timings_s"].items()))
    timings = stats["timings_s"]
    # (approximate: the CLI's start and imports, ~0.4 s, come before prepare and are not known
    # here, so this window starts that much early: within a sample or so)
    phase_start = t + timings["prepare"]
    phase_end = phase_start + timings["read+transform+stage"]
    for name, span in (("whole build", ()), ("read+transform+stage", (phase_start, phase_end))):
        print(f"CPU-s by process, {name}: " + ", ".join(
            f"{kind} {secs:.1f}" + (f" ({count})" if count > 1 else "")
            for kind, (count, secs) in cpu.by_kind(*span).items()))
    print(f"idle core-seconds (of {n}): read+transform+stage "
          f"{cpu.idle(n, phase_start, phase_end):.1f} of {n * timings['read+transform+stage']:.1f}"
          f", whole build {cpu.idle(n, t, end):.1f} of {n * (end - t):.1f} "
          f"(other sessions' load shows as busy elsewhere, not here)")
    if system:
        print(f"the whole machine during the build (/proc/stat, core-s): idle {system['idle']:.1f}, "
              f"iowait {system['iowait']:.1f}, steal {system['steal']:.1f} (the hypervisor's)")
    if args.timeline:
        print("cores busy, second by second from the build's start: "
              + " ".join(f"{c:.1f}" for c in cpu.per_second(t, end)))
    print(f"accounting: {accounting}")
    assert accounting["inputs"] == args.count
    # near copies grow with the count (crops of two dozen photos: 17% at 100,000), rejects do not
    assert accounting["rejected"] < 0.1 * args.count, "most inputs should be readable"
    return phase / ceiling, whole / ceiling, after_kernel


if __name__ == "__main__":
    main()
