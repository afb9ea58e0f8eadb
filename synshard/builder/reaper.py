"""Ties an embedded Ray to its driver: when the driver dies (even by `kill -9`), its Ray goes too.

Ray fate-shares its GCS and raylet with the driver (Linux parent-death signal), but the processes
the raylet starts (the dashboard and runtime-env agents, workers) outlive a killed driver, re-parented
to init. `start(roots)` runs this module as a small watcher process in its own session: it keeps the
set of Ray's processes (the roots and all their descendants, each with its start time, so a reused
pid is never touched) up to date while the driver lives (every 0.5 s while it grows, backing off to
every 3 s while it does not), and when its stdin pipe from the driver
reaches end-of-file without the word "stop" (the driver died), it terminates every one of them
(SIGTERM, then SIGKILL). Linux only (/proc); elsewhere `start` returns None and nothing watches.

    python -m synshard.builder.reaper PID[:START_TIME] [PID[:START_TIME] ...]
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.5
# A tree that stops growing is scanned less and less often, up to this interval: Ray starts its
# processes at start-up, and a scan of /proc costs 3-5 ms on a busy machine (at a steady 0.5 s,
# 7.7 CPU-s of a 100,000-photo build lasting 14 minutes under load ~15).
MAX_POLL_S = 3.0
GRACE_S = 3.0


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def processes() -> dict[int, tuple[int, int]]:
    """Every live process: pid -> (parent pid, start time)."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                table[int(entry.name)] = stat
    return table


def tree(roots: dict[int, int], table: dict[int, tuple[int, int]]) -> dict[int, int]:
    """`roots` (pid -> start time) still alive, plus all their live descendants in `table`."""
    found = {pid: start for pid, start in roots.items()
             if pid in table and table[pid][1] == start}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, start) in table.items():
            if pid not in found and ppid in found:
                found[pid] = start
                grew = True
    return found


def _kill(known: dict[int, int], sig: int) -> dict[int, int]:
    """Send `sig` to each known process still alive (same start time); returns those."""
    alive = tree(known, processes())
    for pid in alive:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    return alive


def watch(roots: dict[int, int | None]) -> None:
    """`roots`: pid -> start time (None: whatever process has that pid now)."""
    table = processes()
    known = tree({pid: table[pid][1] if start is None else start for pid, start in roots.items()
                  if pid in table}, table)
    data = b""
    interval = POLL_S
    while True:
        ready, _, _ = select.select([sys.stdin.buffer], [], [], interval)
        if ready:
            chunk = os.read(sys.stdin.fileno(), 64)
            if chunk:
                data += chunk
                continue
            break  # end of file: the driver has closed the pipe or died
        before = len(known)
        known.update(tree(known, processes()))
        interval = POLL_S if len(known) > before else min(MAX_POLL_S, interval * 1.5)
    if b"stop" in data:
        return
    known.update(tree(known, processes()))
    alive = _kill(known, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = tree(alive, processes())
    _kill(alive, signal.SIGKILL)


def start(roots: list[int]) -> subprocess.Popen | None:
    """The watcher for these Ray processes; `stop(watcher)` when Ray was shut down normally."""
    if not sys.platform.startswith("linux") or not roots:
        return None
    # The tree as the driver sees it now, passed on: the watcher's own first look comes later,
    # when a driver killed at once may have taken the raylet along, re-parenting its agents.
    table = processes()
    known = tree({pid: table[pid][1] for pid in roots if pid in table}, table)
    args = [f"{pid}:{start}" for pid, start in sorted(known.items())] or [str(p) for p in roots]
    return subprocess.Popen([sys.executable, "-m", "synshard.builder.reaper", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def stop(watcher: subprocess.Popen | None) -> None:
    if watcher is None:
        return
    try:
        watcher.stdin.write(b"stop")  # type: ignore[union-attr]
        watcher.stdin.close()  # type: ignore[union-attr]
    except OSError:
        pass
    watcher.wait()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the driver's to handle
    watch({int(pid): int(start) if start else None
           for pid, _, start in (arg.partition(":") for arg in sys.argv[1:])})
