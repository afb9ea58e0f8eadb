"""The CPU of a build's process tree, sampled from /proc (bench/bench_build.py's `TreeCPU`):
each process by kind (the driver, its forked readers, Ray's workers, raylet, ...), the tree's
busy cores second by second, and the whole machine's idle, iowait and steal. Linux only."""
from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any

BUILD_MODULE = "synshard.cli"  # the build runs as `python -m synshard.cli build ...`


class TreeCPU:
    """CPU seconds of this process and every process descended from it (Ray's), from /proc.

    A thread samples /proc every `interval` seconds, so a descendant that lives less than that
    may be missed in part (Ray's processes live the whole build). A scan costs this process
    ~3-6 ms of CPU (about 1% of a core at 0.5 s: 10 CPU-s of a 14-minute build under load): the
    sampling thread's own CPU (`sampler`) is left out of this process's (`own`). Linux only."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.seen, self.kinds = interval, {}, {}
        self.driver_pid: int | None = None  # the build's process, once started
        self.lock = threading.Lock()  # one scan at a time (the thread's, or the caller's last)
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


def system_cpu() -> dict[str, float]:
    """The whole machine's idle, iowait and steal core-seconds so far (/proc/stat; {} elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    return {name: int(fields[at]) / tick for name, at in (("idle", 3), ("iowait", 4), ("steal", 7))}


def _kind(pid: int, ppid: int, driver: int | None) -> str:
    """What a process of the build's tree is, from its command line (and whether its parent is
    the `driver`: a fork of it is one of the build's readers, forkreads.py)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    if BUILD_MODULE.encode() in argv:
        return "forked reader" if ppid == driver else "driver"
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
