"""No orphans: after `kill -9` of the driver alone, the embedded Ray it started does not stay running.

The driver is killed by pid (not its process group, which Ray's processes share and which would
hide the point); every process descended from it just before the kill (GCS, raylet, agents,
workers, the watcher of synshard/builder/reaper.py) must be gone afterwards. Without the watcher,
Ray's agents and idle workers outlive the driver, re-parented to init.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from synshard.builder.reaper import processes, tree
from test_resume import _command, _make_source, _reap_ray

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def _descendants(pid: int) -> dict[int, int]:
    table = processes()
    return {p: s for p, s in tree({pid: table[pid][1]}, table).items() if p != pid}


def _watched(pid: int) -> bool:
    """The driver `pid` has started Ray and Ray's watcher (synshard/builder/reaper.py)."""
    try:
        family = _descendants(pid)
    except KeyError:  # the driver has just ended
        return False
    for p in family:
        try:
            if b"synshard.builder.reaper" in Path(f"/proc/{p}/cmdline").read_bytes():
                return True
        except OSError:
            pass
    return False


def test_kill_nine_of_the_driver_leaves_no_ray_process(tmp_path):
    src = _make_source(tmp_path / "src")
    out = tmp_path / "out"
    ray_tmp = Path(tempfile.mkdtemp(prefix="ro", dir="/tmp"))  # short: socket paths
    proc = subprocess.Popen(_command(src, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "RAY_TMPDIR": str(ray_tmp)})
    try:
        # Ray starts beside the driver's first read tasks: kill once it is up (its watcher runs)
        while proc.poll() is None and not _watched(proc.pid):
            time.sleep(0.02)
        assert proc.poll() is None, "the build ended before its embedded Ray was up"
        started = _descendants(proc.pid)
        names = {Path(f"/proc/{p}/comm").read_text().strip() for p in started
                 if Path(f"/proc/{p}/comm").exists()}
        assert {"raylet", "gcs_server"} <= names, names
        assert len(started) >= 5, names
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        left = started
        for _ in range(300):  # a liveness bound, not a timing claim: Ray's agents would stay
            left = tree(left, processes())
            if not left:
                break
            time.sleep(0.1)
        leftover = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in left
                    if Path(f"/proc/{p}/cmdline").exists()}
        assert not left, f"still running after the driver was killed: {leftover}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _reap_ray(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
