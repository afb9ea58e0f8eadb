"""Ray started beside the driver's own work: `raysession.ray_session` entered in a thread of its own.

Ray's start-up takes seconds (GCS, raylet, agents, prestarted workers: 5-10 s on a busy 2-core
machine), so the build does not wait for it doing nothing: it plans, takes its lock and runs its
first read tasks (in forked readers: synshard/builder/forkreads.py) while Ray comes up
(synshard/builder/pipeline.py). The session lives in
one thread from start to shutdown, because Ray ties its GCS and raylet to the thread that started
them (Linux parent-death signal): a starter thread that ended would take them down with it.

    with BackgroundRay(cfg, delay=0.5) as background:   # Ray starts after 0.5 s, or on demand
        ...
        background.hold()          # from now on Ray starts only on demand (start, wait)
        background.before_start(fn)  # fn() while Ray cannot begin to start (if it has not)
        background.cancel()        # True: Ray never began to start (a build without Ray)
        cluster = background.wait()   # the session's description, once Ray is up
        background.release()       # shut Ray down in the background; leaving the block waits
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, TypeVar

from synshard.config import BuildConfig

T = TypeVar("T")


class BackgroundRay:
    """A Ray session for `cfg` that begins after `delay` seconds (None: only on demand)."""

    def __init__(self, cfg: BuildConfig, delay: float | None) -> None:
        self._cfg, self._delay = cfg, delay
        self._go, self._up, self._done = threading.Event(), threading.Event(), threading.Event()
        self._lock = threading.Lock()
        # "waiting" (-> "held") -> "starting" -> ("up" | "failed"), or -> "cancelled"
        self._state = "waiting"
        self._cluster: dict[str, Any] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="synshard-ray", daemon=True)
        self._thread.start()

    def __enter__(self) -> "BackgroundRay":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _run(self) -> None:
        timed_out = not self._go.wait(self._delay)
        with self._lock:
            held = timed_out and self._state == "held"
            if not held and not self._begin():
                return
        if held:  # the delay passed after `hold`: only on demand now
            self._go.wait()
            with self._lock:
                if not self._begin():
                    return
        t = time.perf_counter()
        try:
            from synshard.builder.raysession import ray_session  # imports Ray (about a second)

            with ray_session(self._cfg) as cluster:
                self._cluster = {**cluster, "start_s": round(time.perf_counter() - t, 3)}
                self._state = "up"
                self._up.set()
                self._done.wait()
        except BaseException as exc:  # handed to the thread that waits for Ray
            self._error, self._state = exc, "failed"
        finally:
            self._up.set()

    def _begin(self) -> bool:
        """Under the lock: "starting" unless cancelled (then False)."""
        if self._state == "cancelled":
            return False
        self._state = "starting"
        return True

    def hold(self) -> bool:
        """Start Ray only on demand from now on (`start`, `wait`), if it has not begun to."""
        with self._lock:
            if self._state == "waiting":
                self._state = "held"
            return self._state == "held"

    def before_start(self, fn: Callable[[], T]) -> T | None:
        """`fn()` if Ray has not begun to start, run while it cannot begin (under the lock: the
        session's thread, its delay passed, waits for it); else None. For work that must
        precede Ray in this process (forking: synshard/builder/forkreads.py)."""
        with self._lock:
            if self._state not in ("waiting", "held"):
                return None
            return fn()

    def start(self) -> None:
        """Start Ray now, if it has not begun to."""
        self._go.set()

    def started(self) -> bool:
        """Ray has begun to start (or is up, or failed to)."""
        return self._state not in ("waiting", "held", "cancelled")

    def up(self) -> bool:
        """Ray is up (started and not failed): tasks may be submitted."""
        return self._state == "up"

    def ready(self) -> bool:
        """Ray is up, or failed to start (then `wait` raises why)."""
        return self._up.is_set()

    def cancel(self) -> bool:
        """Never start Ray, if it has not begun to start; True when so."""
        with self._lock:
            if self._state not in ("waiting", "held", "cancelled"):
                return False
            self._state = "cancelled"
        self._go.set()
        self._thread.join()
        return True

    def wait(self) -> dict[str, Any]:
        """Start Ray now if it has not begun; once it is up, the session's description (with
        `start_s`, the seconds its start-up took)."""
        self.start()
        self._up.wait()
        if self._error is not None:
            raise self._error
        return self._cluster

    def release(self) -> None:
        """Let the session end (Ray shuts down in its thread) without waiting for it."""
        self._done.set()
        self._go.set()

    def close(self) -> None:
        """End the session and wait until Ray has shut down (a cancelled one returns at once)."""
        with self._lock:
            if self._state in ("waiting", "held"):
                self._state = "cancelled"
        self.release()
        self._thread.join()
