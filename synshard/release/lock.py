"""The build lock: one writer per release path at a time, and no lock a crash can leave stuck.

A lease file `<release>/_staging/build.lock` (JSON: owner token, host, pid, purpose, fingerprint,
expiry time) is created exclusively by the build (or `gc`) that writes the release, renewed by a
heartbeat thread every `ttl/4` seconds and deleted on exit. A second writer finds it and is refused
with a message naming the holder. A lease is free again when

- its expiry has passed (the holder stopped renewing: killed, preempted, partitioned), or
- its holder ran on this very machine (same host name and boot id) and that process is gone
  (checked by pid and process start time, so a reused pid does not count): a `kill -9` then the
  same command again resumes at once instead of waiting out the lease.

Every change is a compare-and-swap on the lease's content hash (md5, which is also the ETag S3
gives a single PUT), so of two writers that find the same stale lease only one takes it over:
- local disk: create with O_EXCL; take-over and delete under `fcntl.flock` on a guard file (the
  kernel drops it when a process dies, so the guard itself cannot get stuck);
- S3 (s3fs): conditional PUTs, `If-None-Match: *` to create and `If-Match: <etag>` to renew or take
  over (AWS S3 and moto honour both). Delete re-reads and compares first: best effort, the window
  is one round trip, and the worst case is a lease that must expire;
- other fsspec stores: exists-then-write, then read back to confirm (best effort, documented).

Expiry compares the holder's wall clock with ours: keep `ttl` far above the clock skew between
machines (the default, 120 s, is).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

from synshard.release.lockstore import LockStore, store_for
from synshard.shards.layout import join
from synshard.shards.release import release_fs
from synshard.errors import SynshardError

LOCK_RELPATH = "_staging/build.lock"
DEFAULT_TTL = 120.0


class LockHeld(SynshardError):
    """Another live build (or gc) holds the release's lock."""


class LockLost(SynshardError):
    """Our lease was taken over (we stopped renewing it in time): do not commit."""


@dataclass(frozen=True)
class Lease:
    """What a lock file says: who holds it, for what, until when (epoch seconds)."""

    owner: str
    host: str
    boot_id: str
    pid: int
    pid_start: str
    purpose: str
    fingerprint: str
    acquired: float
    expires: float

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Lease | None":
        """None for a lock file that is not ours to read (garbage counts as stale)."""
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError):
            return None

    def describe(self, now: float) -> str:
        return (f"{self.purpose} by pid {self.pid} on {self.host}, started "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.acquired))}, "
                f"lease expires in {max(0, int(self.expires - now))} s")


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is absent)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _holder_dead(lease: Lease) -> bool:
    """True only when we can tell for sure: same machine, same boot, process gone or replaced."""
    if lease.host != socket.gethostname() or not lease.boot_id or lease.boot_id != _boot_id():
        return False
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return bool(lease.pid_start) and _pid_start(lease.pid) != lease.pid_start


def is_stale(lease: Lease | None, now: float) -> bool:
    """A lease nobody is renewing any more (or an unreadable lock file)."""
    return lease is None or lease.expires <= now or _holder_dead(lease)


class BuildLock:
    """A renewed lease on a release path; use as a context manager around the whole build."""

    def __init__(self, uri: str, storage_options: dict[str, Any] | None = None, *,
                 purpose: str = "build", fingerprint: str = "", ttl: float = DEFAULT_TTL,
                 heartbeat: bool = True, clock: Callable[[], float] = time.time) -> None:
        fs, root = release_fs(uri, storage_options)
        self.uri, self.path, self.ttl, self.clock = uri, join(root, LOCK_RELPATH), ttl, clock
        self.store: LockStore = store_for(fs, self.path)
        self.purpose, self.fingerprint, self.heartbeat = purpose, fingerprint, heartbeat
        self.owner = uuid.uuid4().hex
        self._token: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()
        self.lost = False

    def _lease(self, acquired: float | None = None) -> Lease:
        now = self.clock()
        pid = os.getpid()
        return Lease(self.owner, socket.gethostname(), _boot_id(), pid, _pid_start(pid),
                     self.purpose, self.fingerprint, acquired or now, now + self.ttl)

    def acquire(self) -> "BuildLock":
        """Take the lease or raise LockHeld naming its live holder."""
        data = self._lease().to_bytes()
        token = self.store.create(data)
        if token is None:
            current = self.store.read()
            now = self.clock()
            lease = Lease.from_bytes(current[0]) if current else None
            if current is not None and not is_stale(lease, now):
                assert lease is not None
                raise LockHeld(f"another {lease.describe(now)} is writing to {self.uri}; "
                               "refusing to start a second one (a dead holder's lease frees "
                               "itself when it expires)")
            token = (self.store.replace(data, current[1]) if current is not None
                     else self.store.create(data))
            if token is None:
                raise LockHeld(f"another build took the lock on {self.uri} at the same moment")
        self._token = token
        if self.heartbeat:
            self._thread = threading.Thread(target=self._beat, name="synshard-lock", daemon=True)
            self._thread.start()
        return self

    def renew(self) -> None:
        """Push the expiry forward; LockLost when someone else holds the lease now."""
        with self._mutex:
            if self._token is None:
                raise LockLost(f"the lock on {self.uri} is not held")
            current = self.store.read()
            lease = Lease.from_bytes(current[0]) if current else None
            acquired = lease.acquired if lease and lease.owner == self.owner else None
            token = self.store.replace(self._lease(acquired).to_bytes(), self._token)
            if token is None:
                self.lost, self._token = True, None
                raise LockLost(f"the lock on {self.uri} was taken over by another build; "
                               "this build must not commit")
            self._token = token

    @contextlib.contextmanager
    def no_renewal(self) -> Iterator[None]:
        """No renewal runs inside this block (the heartbeat waits). For a fork: a child must not
        inherit a lock store's open, flock'ed file mid-renewal (it would hold the flock until it
        exits)."""
        with self._mutex:
            yield

    def ensure_held(self) -> None:
        """Call right before the commit: renews, so a lost lease stops the commit."""
        self.renew()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                self.renew()
            except LockLost:
                return
            except OSError:
                continue  # a transient store error: the next beat tries again, well before expiry

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._mutex:
            if self._token is not None:
                self.store.delete(self._token)
                self._token = None

    def __enter__(self) -> "BuildLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def read_lease(uri: str, storage_options: dict[str, Any] | None = None) -> Lease | None:
    """The current lease on a release path (None when there is no lock file)."""
    fs, root = release_fs(uri, storage_options)
    current = store_for(fs, join(root, LOCK_RELPATH)).read()
    return Lease.from_bytes(current[0]) if current else None


@contextlib.contextmanager
def build_lock(uri: str, storage_options: dict[str, Any] | None = None,
               **kwargs: Any) -> Iterator[BuildLock]:
    """`with build_lock(cfg.out, cfg.storage_options, fingerprint=fp) as lock: ...`"""
    lock = BuildLock(uri, storage_options, **kwargs).acquire()
    try:
        yield lock
    finally:
        lock.release()
