"""The build lock on a local disk: one holder, clear refusal, no lock a crash can leave stuck."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from synshard.release.lock import LOCK_RELPATH, BuildLock, Lease, LockHeld, LockLost, build_lock, read_lease

HOLD_SCRIPT = """
import sys, time
from synshard.release.lock import BuildLock
lock = BuildLock(sys.argv[1], ttl=3600, heartbeat=False, fingerprint="f00").acquire()
print("held", flush=True)
time.sleep(3600)
"""


def _holder(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, str(out)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_is_refused_with_a_clear_message(tmp_path):
    out = tmp_path / "rel"
    with build_lock(str(out), fingerprint="abc", heartbeat=False):
        with pytest.raises(LockHeld) as info:
            BuildLock(str(out)).acquire()
        message = str(info.value)
        assert f"pid {os.getpid()}" in message and str(out) in message
        assert "refusing to start a second one" in message
    assert not (out / LOCK_RELPATH).exists()
    with build_lock(str(out), heartbeat=False):  # free again after release
        assert read_lease(str(out)).fingerprint == ""


def test_expired_lease_is_taken_over_and_the_old_holder_cannot_commit(tmp_path):
    out = str(tmp_path / "rel")
    old = BuildLock(out, ttl=10, heartbeat=False).acquire()
    later = lambda: time.time() + 11  # noqa: E731  (the old holder stopped renewing 11 s ago)
    new = BuildLock(out, ttl=10, heartbeat=False, clock=later).acquire()
    assert read_lease(out).owner == new.owner
    with pytest.raises(LockLost):
        old.ensure_held()
    old.release()  # must not delete the new holder's lease
    assert read_lease(out).owner == new.owner
    new.release()
    assert read_lease(out) is None


def test_live_holder_in_another_process_is_respected(tmp_path):
    out = tmp_path / "rel"
    proc = _holder(out)
    try:
        with pytest.raises(LockHeld, match=f"pid {proc.pid}"):
            BuildLock(str(out), heartbeat=False).acquire()
    finally:
        proc.kill()
        proc.wait()


def test_killed_holder_on_this_machine_frees_the_lock_at_once(tmp_path):
    out = tmp_path / "rel"
    proc = _holder(out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lease = read_lease(str(out))
    assert lease.pid == proc.pid and lease.expires > time.time() + 3000  # not expired
    with build_lock(str(out), heartbeat=False) as lock:
        assert read_lease(str(out)).owner == lock.owner


def test_dead_pid_on_another_host_waits_for_expiry(tmp_path):
    out = tmp_path / "rel"
    path = out / LOCK_RELPATH
    path.parent.mkdir(parents=True)
    lease = Lease("x" * 32, "some-other-host", "boot", 999_999, "1", "build", "", time.time(),
                  time.time() + 600)
    path.write_bytes(lease.to_bytes())
    with pytest.raises(LockHeld, match="some-other-host"):
        BuildLock(str(out), heartbeat=False).acquire()
    path.write_bytes(dataclasses.replace(lease, expires=time.time() - 1).to_bytes())
    BuildLock(str(out), heartbeat=False).acquire().release()


def test_garbage_lock_file_counts_as_stale(tmp_path):
    path = tmp_path / "rel" / LOCK_RELPATH
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00not json")
    with build_lock(str(tmp_path / "rel"), heartbeat=False) as lock:
        assert json.loads(path.read_bytes())["owner"] == lock.owner


def test_heartbeat_keeps_a_short_lease_alive(tmp_path):
    out = str(tmp_path / "rel")
    with build_lock(out, ttl=0.4) as lock:
        time.sleep(1.2)  # three lease lengths: without renewal it would have expired
        lease = read_lease(out)
        assert lease.owner == lock.owner and lease.expires > time.time()
        with pytest.raises(LockHeld):
            BuildLock(out, heartbeat=False).acquire()
        lock.ensure_held()


def test_racing_takeovers_of_a_stale_lease_have_one_winner(tmp_path):
    out = str(tmp_path / "rel")
    BuildLock(out, ttl=1, heartbeat=False).acquire()  # abandoned, never released
    later = lambda: time.time() + 5  # noqa: E731
    winners, refused, barrier = [], [], threading.Barrier(8)

    def contend() -> None:
        lock = BuildLock(out, ttl=60, heartbeat=False, clock=later)
        barrier.wait()
        try:
            winners.append(lock.acquire())
        except LockHeld:
            refused.append(lock)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(refused) == 7
    assert read_lease(out).owner == winners[0].owner
