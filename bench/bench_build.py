"""Benchmark: the whole `synshard build` on all cores against the same kernel in N plain processes.

    .venv/bin/python bench/bench_build.py [--count 2400] [--synsets 40] [--processes N]
    .venv/bin/python bench/bench_build.py --count 12000 --rounds 5   # median of 5 alternations
    .venv/bin/python bench/bench_build.py --demo 3     # the fixed cost of `make demo`'s build

ImageNet-sized photographic JPEGs (scripts/photos.py: crops of real photos, ~500x375, q75-95) are
laid out as an ImageNet folder of --synsets classes (hard links, no copies). In one run it measures
  ceiling     images/s of the kernel, `transform_batch` (batches of 64, the same options) on the
              same photos (held in shared memory), in N plain processes side by side (N = the
              cores Ray gets) that take the next batch from a shared counter: the most an N-core
              machine can do. Measured before and after the build; the mean of the two is the
              ceiling (both are printed: the machine is shared and noisy)
  build       images/s of `synshard build` on an embedded Ray with all cores, run as a user runs
              it (`python -m synshard.cli build`, a fresh process each build): the read+
              transform+stage phase (from build.json) and the whole command, from the process's
              start to its end (imports, Ray's start-up and shutdown included)
and prints build / ceiling for both; the goals are at least 0.9 for the phase, 0.8 for the whole
command. Also printed: the one-core CPU rate of the kernel (img/CPU-s), the load average, and the
whole machine's idle, iowait and steal core-seconds during the build (/proc/stat); `--timeline`
adds the build's busy cores second by second (where its idle core-seconds are). `--rounds R`
alternates R builds with R + 1 kernel runs and prints the median ratios: these machines' speed
drifts by tens of percent from one minute to the next (the one-core rate of the same kernel
varied 535-757 img/CPU-s between three runs in a row), so a ratio is only as good as the kernel
runs beside its build.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import pyarrow as pa  # noqa: E402

import photos  # noqa: E402
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

    opts = TransformOptions(resize=ResizeSpec("shorter", 256), quality=90)
    shm = shared_memory.SharedMemory(name=blobs_name)
    try:
        results.put(_kernel_loop(shm.buf, bounds, counter, barrier, opts))
    finally:
        shm.close()


def _kernel_loop(blobs: memoryview, bounds: list[int], counter: Any, barrier: Any,
                 opts: TransformOptions) -> tuple[float, float, float]:
    """(start, end, CPU seconds) of one kernel process's batches (see `_kernel_worker`)."""
    transform_batch(_kernel_batch(blobs, bounds, 0, 1), opts)  # first-call set-up, untimed
    barrier.wait()
    t, cpu = time.perf_counter(), time.process_time()
    count = len(bounds) - 1
    while True:
        with counter.get_lock():
            start = counter.value
            counter.value = start + KERNEL_BATCH
        if start >= count:
            break
        transform_batch(_kernel_batch(blobs, bounds, start, min(count, start + KERNEL_BATCH)), opts)
    return t, time.perf_counter(), time.process_time() - cpu


def _kernel_batch(blobs: memoryview, bounds: list[int], start: int, stop: int) -> pa.Table:
    chunk = [bytes(blobs[bounds[i]:bounds[i + 1]]) for i in range(start, stop)]
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


class TreeCPU:
    """CPU seconds of this process and every process descended from it (Ray's), from /proc.

    A thread samples /proc every `interval` seconds, so a descendant that lives less than that
    may be missed in part (Ray's processes live the whole build). A scan costs this process
    ~3-6 ms of CPU (about 1% of a core at 0.5 s: 10 CPU-s of a 14-minute build under load): the
    sampling thread's own CPU (`sampler`) is left out of this process's (`own`). Linux only."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.seen, self.kinds = interval, {}, {}
        self.driver_pid: int | None = None  # the build's process, once started
        self.lock = threading.Lock()  # one scan at a time (the thread's, or a `final_scan`)
        self.busy: list[tuple[float, float]] = []  # (time, CPU-s of the whole tree so far)
        self.history: list[tuple[float, dict]] = []  # (time, CPU-s of every process)
        self.tick = os.sysconf("SC_CLK_TCK")
        self.sampler = 0.0  # CPU seconds of the sampling thread itself
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "TreeCPU":
        self.cpu0 = time.process_time()
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()
        self.own = time.process_time() - self.cpu0 - self.sampler

    def total(self) -> float:
        return self.own + sum(self.seen.values())

    def by_kind(self, start: float | None = None, end: float | None = None
                ) -> dict[str, tuple[int, float]]:
        """The driver and Ray's processes grouped by what they are: kind -> (processes, CPU
        seconds), over the whole run or between `start` and `end` (perf_counter times)."""
        first = self._at(start) if start is not None else {}
        last = self._at(end) if end is not None else {**self.seen, ("bench", 0): self.own}
        out: dict[str, tuple[int, float]] = {}
        for key, cpu in last.items():
            if cpu - first.get(key, 0.0) <= 0 and start is not None:
                continue
            kind = "this benchmark" if key == ("bench", 0) else self.kinds.get(key, "other")
            n, total = out.get(kind, (0, 0.0))
            out[kind] = (n + 1, total + cpu - first.get(key, 0.0))
        return dict(sorted(out.items(), key=lambda kv: -kv[1][1]))

    def _at(self, when: float) -> dict:
        """Every process's CPU seconds at the last sample before `when`."""
        before = [snap for t, snap in self.history if t <= when]
        return before[-1] if before else {}

    def _window(self, start: float, end: float) -> tuple[float, float]:
        """(seconds, CPU-s of the tree) between the first and last samples in [start, end]."""
        inside = [(t, c) for t, c in self.busy if start <= t <= end]
        if len(inside) < 2:
            return 0.0, 0.0
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return t1 - t0, c1 - c0

    def idle(self, cores: int, start: float, end: float) -> float:
        """Core-seconds no process of the tree used between `start` and `end` (perf_counter)."""
        seconds, cpu = self._window(start, end)
        return max(0.0, cores * seconds - cpu)

    def per_second(self, start: float, end: float) -> list[float]:
        """Cores the tree kept busy in each second from `start` to `end` (nan: under 2 samples)."""
        windows = [self._window(start + k, start + k + 1.0) for k in range(math.ceil(end - start))]
        return [cpu / seconds if seconds > 0 else float("nan") for seconds, cpu in windows]

    def _run(self) -> None:
        while not self.stop.is_set():
            self.scan()
            self.stop.wait(self.interval)

    def final_scan(self) -> None:
        """One more scan, for the driver's last CPU: call it once the driver has exited but is
        not reaped yet (its /proc entry still holds its final CPU time)."""
        self.scan()

    def scan(self) -> None:
        with self.lock:
            self._scan()

    def _scan(self) -> None:
        me = os.getpid()
        scan = time.thread_time()
        table = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1]
                except OSError:
                    continue
                f = fields.split()
                table[int(entry.name)] = (int(f[1]), int(f[19]),
                                          (int(f[11]) + int(f[12])) / self.tick)
        family, grew = {me}, True
        while grew:
            grew = False
            for pid, (ppid, _, _) in table.items():
                if pid not in family and ppid in family:
                    family.add(pid)
                    grew = True
        for pid in family - {me}:
            _, start, cpu = table[pid]
            self.seen[(pid, start)] = cpu
            if pid == self.driver_pid:  # (a scan between fork and exec saw the bench's argv)
                self.kinds[(pid, start)] = "driver"
            elif (pid, start) not in self.kinds or self.kinds[(pid, start)] == "ray worker (idle)":
                self.kinds[(pid, start)] = _kind(pid, table[pid][0], self.driver_pid)
        self.sampler += time.thread_time() - scan
        own = time.process_time() - self.cpu0 - self.sampler
        now = time.perf_counter()
        self.busy.append((now, own + sum(self.seen.values())))
        self.history.append((now, {**self.seen, ("bench", 0): own}))


def _system_cpu() -> dict[str, float]:
    """The whole machine's idle, iowait and steal core-seconds so far (/proc/stat; {} elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    return {name: int(fields[at]) / tick for name, at in (("idle", 3), ("iowait", 4), ("steal", 7))}


BUILD_MODULE = "synshard.cli"  # the build runs as `python -m synshard.cli build ...`


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
            cpu.final_scan()
        code = proc.wait()
        if code:
            output.seek(0)
            raise SystemExit(f"bench_build: the build failed (exit {code}):\n"
                             f"{output.read().strip()[-2000:]}")
    return json.loads((out / "manifest.json").read_text())["accounting"]


def _kind(pid: int, ppid: int, driver: int | None = None) -> str:
    """What a process of the build's tree is, from its command line (and its parent: the
    `driver`'s pid, when known)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    if BUILD_MODULE.encode() in argv:
        if driver is not None:
            return "forked reader" if ppid == driver else "driver"
        try:
            parent = Path(f"/proc/{ppid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            parent = []
        # a fork of the driver: the build's readers (forkreads.py)
        return "forked reader" if parent == argv else "driver"
    line = b" ".join(argv).decode(errors="replace")
    for name in ("gcs_server", "raylet"):
        if argv[0].decode(errors="replace").endswith(name):
            return name
    # the stand-in first: its arguments name the agent's script
    for needle, kind in (("synshard/builder/agentstub.py", "agent stand-in"),
                         ("dashboard/agent.py", "dashboard agent"),
                         ("runtime_env/agent", "runtime-env agent"),
                         ("dashboard/dashboard.py", "dashboard API server"),
                         ("log_monitor", "log monitor"), ("monitor.py", "autoscaler monitor"),
                         ("ray::DashboardAgent", "dashboard agent"),
                         ("ray::RuntimeEnvAgent", "runtime-env agent"),
                         ("synshard.builder.reaper", "reaper"), ("ray::IDLE", "ray worker (idle)"),
                         ("ray::", "ray worker"), ("default_worker.py", "ray worker (idle)")):
        if needle in line:
            return kind
    return line[:40] or "other"


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
                    help="plain processes for the ceiling (default: the cores, as Ray gets)")
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
    print(f"images {args.count} in {args.synsets} synsets, {n} processes / Ray CPUs; "
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
    system = _system_cpu()
    t = time.perf_counter()
    with TreeCPU() as cpu:
        accounting = run_build(source, out, n, args.build_args, cpu)
    end = time.perf_counter()
    system = {k: v - system.get(k, 0.0) for k, v in _system_cpu().items()}
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
    print(f"whole build incl. Ray start-up:  {whole:8.1f} img/s  "
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
