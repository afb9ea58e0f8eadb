"""The read tasks the driver runs itself, in threads, before or instead of an embedded Ray.

(On Linux a build with no cluster is a local build, run by forked worker processes and no Ray;
beside a starting Ray, reader processes forked before it run the read tasks: both in
synshard/builder/forkreads.py. This module's threads are the rest: a process that has imported
Ray, other systems.)

An embedded Ray takes seconds to start (5-18 s on a 2-core machine, a core busy meanwhile) and its
workers' first tasks pay their imports, so the driver reads while it starts, and a read stage that
turns out short (a 3,000-URL crawl: 12 tasks) is done here without Ray at all, a thread per local
CPU (decode, resize, encode and hashing release the GIL). synshard/builder/pipeline.py decides
when Ray is held; the same `run_task` runs either way, so the release is the same byte for byte.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from synshard.builder.raystart import BackgroundRay
from synshard.transforms.neardup import local_cpus as machine_cpus
from synshard.builder.stages import run_task
from synshard.builder.staging import Staging
from synshard.config import BuildConfig

# While Ray is held (pipeline.py), it starts only once what is left of the read stage would take
# this process more than RAY_PAYS_S (the last task's seconds x the tasks left / the threads; the
# first task, which pays this process's imports, is not used). An embedded Ray takes 5-18 s to
# start on a 2-core machine (a core busy meanwhile), its workers' first tasks pay their imports,
# and this process already reads on every local CPU, so Ray gains only on work well past its
# start-up (measured: at load ~20, a 3,000-URL crawl whose estimate passed 15 s started Ray and
# took 35-41 s instead of 17-18 s in-process).
RAY_PAYS_S = 30.0


def read_here(queue: list[int], tasks: list, cfg: BuildConfig, staging: Staging,
              bar: Callable[[int], None], background: BackgroundRay, feed: Any) -> int:
    """Run read tasks in this process until Ray is up (or the queue is empty, when Ray is not
    needed: see RAY_PAYS_S); starts Ray once the tasks left are worth it. Inputs settled.

    While Ray is held, one thread per local CPU runs tasks (decode, resize, encode and hashing
    release the GIL); beside a starting Ray only one does, as Ray's start-up has the others."""
    reads = _DriverReads(queue, tasks, cfg, staging, bar, background, feed)
    threads = [threading.Thread(target=reads.run, args=(k,), name=f"synshard-read-{k}",
                                daemon=True) for k in range(1, reads.threads)]
    for thread in threads:
        thread.start()
    reads.run(0)
    for thread in threads:
        thread.join()
    if reads.error is not None:
        raise reads.error
    return reads.rows


def local_cpus(cfg: BuildConfig) -> int:
    """The CPUs this process reads on: --num-cpus, else those it may run on (its affinity and
    cgroup quota: transforms/neardup.local_cpus)."""
    return cfg.num_cpus or machine_cpus()


class _DriverReads:
    """The read tasks this process runs itself, from the shared queue, in one or more threads."""

    def __init__(self, queue: list[int], tasks: list, cfg: BuildConfig, staging: Staging,
                 bar: Callable[[int], None], background: BackgroundRay, feed: Any) -> None:
        self.queue, self.tasks, self.cfg, self.staging = queue, tasks, cfg, staging
        self.bar, self.background, self.feed = bar, background, feed
        self.threads = local_cpus(cfg)
        self.lock = threading.Lock()
        self.rows, self.done = 0, 0
        self.error: BaseException | None = None
        # the other threads begin once the first task has yielded a batch: its fetcher (one per
        # process, shared: its request rate per host holds for all threads; the per-host connection
        # caps are per task's fetch run, as they are per Ray worker) and event loop are set up
        self.first = threading.Event()

    def run(self, k: int) -> None:
        if k:
            self.first.wait()
        try:
            while (i := self._next(k)) is not None:
                self._task(i)
        except BaseException as exc:  # re-raised in the thread that called _read_here
            with self.lock:
                self.error = self.error or exc
        finally:
            self.first.set()

    def _next(self, k: int) -> int | None:
        with self.lock:
            if self.error or not self.queue or self.background.ready() or \
                    (k and self.background.started()):
                return None
            return self.queue.pop()

    def _task(self, i: int) -> None:
        t = time.perf_counter()
        for rows in run_task(i, self.tasks[i], self.cfg, self.staging):
            self.first.set()
            with self.lock:
                self.rows += rows
                self.bar(rows)
                if self.background.up() and not self.feed.pending:
                    # Ray came up during this task: its workers start on the queue now, not
                    # once this task is done (up to a task's time of idle cores otherwise)
                    self.feed.fill(self.queue)
                elif self.queue and not self.background.started() and \
                        time.perf_counter() - t > RAY_PAYS_S:
                    self.background.start()  # one task alone outlasts Ray's start
        with self.lock:
            self.done += 1
            left_s = (time.perf_counter() - t) * len(self.queue) / self.threads
            if self.done > 1 and left_s > RAY_PAYS_S:
                self.background.start()
        self.first.set()
