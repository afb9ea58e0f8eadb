"""`synshard build` as a subprocess under `/usr/bin/time -v`, with a /proc sampler beside it.

    from timed_build import timed_build
    r = timed_build(["/data/src", "--out", str(out), "--resize", "shorter:64"], out)

The one helper the benchmarks share (bench_scale.py, bench_driver_memory.py): it runs
`python -m synshard.cli build ARGS` under `/usr/bin/time -v` while a sampler thread reads /proc
every `interval` seconds, and returns the run's figures:

- `driver_peak`: VmHWM of the `synshard build` process itself (/usr/bin/time's maximum RSS can be
  a descendant's: a Ray worker's), and `driver_peak_before_assembly`, its peak until the first
  synset's shards were journalled (`_staging/*/_shards` exists);
- `worker_peak` / `worker_peak_anon`: the largest worker's (Ray's, titled `ray::...`, or a local
  build's, forked from the driver: the driver's command line) VmHWM
  and anonymous RSS; `staging_peak`: the staging folder's largest size seen;
- `cpu_s`: CPU seconds of the whole process tree (each process's last sample, so short-lived
  processes are undercounted), `wall_s`, and build.json's `timings` and the manifest's accounting.

With `trajectory` (a path), every sample is also appended to that file as one line (seconds
since start, the driver's RSS and VmHWM in MiB, whether assembly had started), flushed, so a
long run's memory can be followed, or read after it was stopped. With `interval_peaks`, the
sampler resets the driver's VmHWM after each sample (/proc/PID/clear_refs), so each line's `hwm`
is the driver's peak since the previous sample (the phase of the peak to within a second, even
where an earlier phase peaked higher); `driver_peak` is still the largest, but /usr/bin/time's
maximum RSS is then only the last interval's.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO


def _status(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _children(pid: int) -> list[int]:
    """Children of every thread of `pid` (an embedded Ray is started from a background thread,
    so its processes are not the main thread's children)."""
    found = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return found


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_bytes(path: Path) -> int:
    total = 0
    for top, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


class Sampler(threading.Thread):
    """Once an `interval`: the driver's VmHWM, each Ray worker's VmHWM/RssAnon, the staging size."""

    def __init__(self, time_pid: int, release: Path, interval: float = 1.0,
                 trajectory: IO[str] | None = None, interval_peaks: bool = False) -> None:
        super().__init__(daemon=True)
        self.interval_peaks = interval_peaks
        self.time_pid, self.release, self.interval = time_pid, release, interval
        self.trajectory = trajectory
        self.t0 = time.perf_counter()
        self.driver = 0
        self.before_assembly = 0  # the driver's peak until the first synset is assembled
        self.assembling = False
        self.workers: dict[int, dict[str, int]] = {}
        self.staging = 0
        self.cpu: dict[int, float] = {}  # CPU seconds of every process of the tree, last seen
        self.stop = threading.Event()

    def run(self) -> None:
        ticks = 0
        while not self.stop.is_set():
            self.sample(staging=ticks % 3 == 0)
            ticks += 1
            self.stop.wait(self.interval)

    def sample(self, staging: bool) -> None:
        kids = _children(self.time_pid)
        if not kids:
            return
        driver = kids[0]
        try:
            status = _status(driver)
            self.driver = max(self.driver, status["VmHWM"])
            if self.interval_peaks:
                with open(f"/proc/{driver}/clear_refs", "w") as f:
                    f.write("5")  # VmHWM from the current RSS again
        except (OSError, KeyError):
            return
        if not self.assembling:  # read, gather and decide: no synset's shards journalled yet
            self.assembling = any((self.release / "_staging").glob("*/_shards"))
            if not self.assembling:
                self.before_assembly = self.driver
        if self.trajectory is not None:
            mib = 1024 * 1024
            self.trajectory.write(f"{time.perf_counter() - self.t0:.0f} rss "
                                  f"{status.get('VmRSS', 0) / mib:.0f} hwm "
                                  f"{(status['VmHWM'] if self.interval_peaks else self.driver) / mib:.0f}"
                                  f" assembling {int(self.assembling)}\n")
            self.trajectory.flush()
        tree = [driver, *_descendants(driver)]
        for pid in tree:
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), _cpu_seconds(pid))
        own = _cmdline(driver)
        for pid in tree[1:]:
            line = _cmdline(pid)  # a Ray worker, or a worker forked from the driver (its command)
            if not (line.startswith("ray::") or line == own):
                continue
            try:
                st = _status(pid)
            except (OSError, KeyError):
                continue
            seen = self.workers.setdefault(pid, {"VmHWM": 0, "RssAnon": 0})
            seen["VmHWM"] = max(seen["VmHWM"], st.get("VmHWM", 0))
            seen["RssAnon"] = max(seen["RssAnon"], st.get("RssAnon", 0))
        if staging and (self.release / "_staging").exists():
            self.staging = max(self.staging, tree_bytes(self.release / "_staging"))


def timed_build(args: list[str], release: Path, interval: float = 1.0,
                trajectory: Path | None = None, env: dict[str, str] | None = None,
                interval_peaks: bool = False) -> dict:
    """Run `synshard build ARGS` (its output folder is `release`); the figures (module doc).

    Exits with the build's last stderr lines when it fails."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "synshard.cli", "build", *args]
    log = open(trajectory, "a") if trajectory is not None else None
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    sampler = Sampler(proc.pid, release, interval, log, interval_peaks)
    sampler.start()
    try:
        stdout, stderr = proc.communicate()
    finally:
        wall = time.perf_counter() - t0
        sampler.stop.set()
        sampler.join()
        if log is not None:
            log.close()
    if proc.returncode != 0:
        sys.exit(f"build into {release} failed ({proc.returncode}):\n{stderr[-3000:]}")
    tv = dict(re.findall(r"^\s*([^:\n]+): (.+)$", stderr, re.M))
    stats = json.loads((release / "build.json").read_text())
    manifest = json.loads((release / "manifest.json").read_text())
    workers = sampler.workers.values()
    return {
        "wall_s": wall, "cpu_s": sum(sampler.cpu.values()), "stdout": stdout,
        "timings": stats["stats"]["timings_s"], "accounting": manifest["accounting"],
        "driver_peak": sampler.driver, "driver_peak_before_assembly": sampler.before_assembly,
        "time_v_max_rss": int(tv.get("Maximum resident set size (kbytes)", 0)) * 1024,
        "worker_peak": max((w["VmHWM"] for w in workers), default=0),
        "worker_peak_anon": max((w["RssAnon"] for w in workers), default=0),
        "workers_seen": len(sampler.workers), "staging_peak": sampler.staging,
        "release_bytes": tree_bytes(release),
    }
