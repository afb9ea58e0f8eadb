"""A read task's URLs fetched as one continuous stream, handed on in order, batch by batch.

The fetcher's event loop runs in a thread of its own (`LoopThread`, one per worker, kept across
tasks with its HTTP session). `FetchStream` starts every URL of the task on it at once (in flight
bounded by the fetcher's semaphores, not by batches), and yields the task's rows `rows` at a time,
in input order, as soon as all URLs of those rows are done: the caller transforms batch k while
batch k+1 is being fetched, and the concurrency never drains between batches. Memory is that of
the task's bodies, as when the task was fetched in one piece; a body is dropped once handed on.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import Counter
from typing import Any, Callable, Coroutine, Iterator, Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from .candidates import column_or_nulls, fetched_candidates
from .fetch_options import FetchStats

T = TypeVar("T")
Result = tuple[list[bytes] | None, str | None]  # (body chunks, None) or (None, reason)
DEFERRED = "deferred"  # a result's reason: the URL ends here, to be fetched again by a later run


class LoopThread:
    """An asyncio event loop running in a daemon thread; coroutines are submitted to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="synshard-fetch",
                                       daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive() and not self.loop.is_closed()

    def submit(self, coro: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.submit(coro).result()

    def stop(self) -> None:
        """Stop the loop and its thread, cancelling what still runs on it."""
        if not self.alive():
            return
        self.call(_cancel_others())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


async def _cancel_others() -> None:
    me = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not me]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


class Job(Protocol):
    """What `Starter.start_run` returns: see `fetchrun.Job`."""

    future: "concurrent.futures.Future[FetchStats] | None"
    later: dict[int, tuple[float, int]]

    def cut(self) -> None: ...


class Starter(Protocol):
    stats: FetchStats

    def add_stats(self, run: FetchStats) -> None: ...

    def start_run(self, urls: list[str], done: Callable[[int, Result], None],
                  spent: list[tuple[float, int]] | None = None, defer: bool = False,
                  patient: bool = False) -> Job: ...


# Seconds with no URL of the run ending before a waiting consumer counts as idle (see
# `FetchStream`); a fetch in flow ends URLs every few milliseconds, even on a loaded machine.
PATIENCE_S = 2.0
POLL_S = 0.25  # how often a waiting consumer looks at the run's quiet time

SPENT_COLUMNS = ("_spent_s", "_timeouts")  # a deferred row's deadline seconds and timeouts used


class FetchStream:
    """Iterate for CANDIDATE_SCHEMA tables of `rows` input rows each, in order; then `stats`.

    `idle`, if given, is called (repeatedly, each call returning within about a second) while
    the consumer waits for its next batch and no URL of the run has ended for `patience`
    seconds: nothing left to transform but slow URLs to wait for. A Ray read task passes one
    that gives its CPU back meanwhile.

    `defer_after` (seconds), if given, makes slow URLs someone else's: a URL that times out ends
    as DEFERRED instead of being retried here, and once the consumer has waited with no URL
    ending for `defer_after` seconds, every URL not done yet is cut (DEFERRED too). A deferred
    URL's rows are left out of the tables; after the iteration `deferred` holds them (the input
    columns plus SPENT_COLUMNS, what a later stream over them carries on: its deadline's seconds
    and timeouts used), for a retry run at the end of the crawl. A stream over such rows is that
    retry run: patient (`fetchrun.Run`)."""

    def __init__(self, fetcher: Starter, urls: pa.Table, rows: int,
                 idle: Callable[[], None] | None = None, patience: float = PATIENCE_S,
                 defer_after: float | None = None) -> None:
        if rows < 1:
            raise ValueError(f"rows must be >= 1, not {rows}")
        self.fetcher, self.urls, self.rows = fetcher, urls, rows
        self.idle, self.patience, self.defer_after = idle, patience, defer_after
        self.stats = FetchStats()
        self.idle_calls = 0
        self.deferred: pa.Table = urls.schema.empty_table()

    def __iter__(self) -> Iterator[pa.Table]:
        urls, n, rows = self.urls, self.urls.num_rows, self.rows
        wanted = column_or_nulls(urls, "url", n).to_pylist()
        given = column_or_nulls(urls, "reason", n).to_pylist()
        reasons = [g or (None if u else "no url") for u, g in zip(wanted, given)]
        plan = _Plan(wanted, reasons, rows)
        job = None
        if plan.todo:
            spent = plan.spent(urls)  # rows deferred by earlier runs: a patient retry run
            job = self.fetcher.start_run(plan.todo, plan.done, spent,
                                         defer=self.defer_after is not None,
                                         patient=spent is not None)
        future = job.future if job is not None else None
        total, later = FetchStats(), []
        try:
            for b, start in enumerate(range(0, n, rows)):
                self._wait(plan, b, job)
                part = urls.slice(start, rows)
                table, stats, put_off = plan.candidates(b, part, wanted, reasons, start,
                                                        job.later if job else {})
                total = total.merge(stats)
                if put_off is not None:
                    later.append(put_off)
                yield table
            if future is not None:
                total = total.merge(future.result())
        finally:
            if future is not None and not future.done():
                future.cancel()  # the consumer gave up: stop fetching for it
        self.stats = total
        self.fetcher.add_stats(total)
        if later:
            self.deferred = pa.concat_tables(later)

    def _wait(self, plan: "_Plan", b: int, job: Job | None) -> None:
        """Until batch `b`'s URLs are done; while the run is quiet, idle, and cut the slow URLs
        if told to.

        Quiet means no URL of the run ended for a while since the consumer began to wait (the
        time it spent transforming does not count): it is left waiting for slow URLs. A
        consumer that merely waits for its next batch while URLs keep ending (a fetch in full
        flow, or a machine too busy to hand it on sooner) is not idle: lending its CPU then made
        Ray start another worker process (~1.5 CPU-s each) for another read task, and the
        pause task itself another, which slowed the crawl it meant to speed up."""
        future = job.future if job is not None else None
        if self.idle is None and self.defer_after is None:
            plan.wait(b, future)
            return
        cut, since = False, time.monotonic()
        while not plan.wait(b, future, POLL_S):
            quiet = plan.quiet_for(since)
            if (job is not None and not cut and self.defer_after is not None
                    and quiet >= self.defer_after):
                job.cut()
                cut = True
            elif self.idle is not None and quiet >= self.patience:
                self.idle_calls += 1
                self.idle()


class _Plan:
    """Which unique URLs each batch of rows waits for, and their results as they arrive."""

    def __init__(self, wanted: list[Any], reasons: list[Any], rows: int) -> None:
        self.slot: dict[str, int] = {}  # URL -> index in `todo`
        self.first = [False] * len(wanted)  # the row is its URL's first in the list
        self.first_rows: list[int] = []  # index in `todo` -> its first row
        for i, (url, reason) in enumerate(zip(wanted, reasons)):
            if reason is None and url not in self.slot:
                self.slot[url] = len(self.slot)
                self.first[i] = True
                self.first_rows.append(i)
        self.todo = list(self.slot)
        batches = range(0, len(wanted), rows)
        self.waiters: list[list[int]] = [[] for _ in self.todo]  # URL -> batches waiting
        self.needs = [0] * len(batches)  # batch -> URLs not done yet
        self.frees: list[list[int]] = [[] for _ in batches]  # batch -> URLs last needed there
        last: dict[int, int] = {}
        for b, start in enumerate(batches):
            need = {self.slot[u] for u, r in zip(wanted[start:start + rows],
                                                  reasons[start:start + rows]) if r is None}
            self.needs[b] = len(need)
            for j in need:
                self.waiters[j].append(b)
                last[j] = b
        for j, b in last.items():
            self.frees[b].append(j)
        self.ready = [concurrent.futures.Future[None]() for _ in batches]
        for b, count in enumerate(self.needs):
            if count == 0:
                self.ready[b].set_result(None)
        self.results: list[Result | None] = [None] * len(self.todo)
        self.last_done = time.monotonic()

    def spent(self, urls: pa.Table) -> list[tuple[float, int]] | None:
        """Per URL to fetch, what a deferred row says it used before (None: a first run)."""
        if not all(c in urls.column_names for c in SPENT_COLUMNS):
            return None
        seconds, timeouts = (urls.column(c).to_pylist() for c in SPENT_COLUMNS)
        return [(float(seconds[i] or 0.0), int(timeouts[i] or 0)) for i in self.first_rows]

    def quiet_for(self, since: float = 0.0) -> float:
        """Seconds since a URL was last done (or since the plan was made), counted from `since`
        at the earliest (a `time.monotonic()`: when the consumer began to wait)."""
        return time.monotonic() - max(self.last_done, since)

    def done(self, j: int, result: Result) -> None:
        """URL `j` is done (called on the loop thread)."""
        self.results[j] = result
        self.last_done = time.monotonic()
        for b in self.waiters[j]:
            self.needs[b] -= 1
            if self.needs[b] == 0:
                self.ready[b].set_result(None)

    def wait(self, b: int, job: "concurrent.futures.Future[FetchStats] | None",
             timeout: float | None = None) -> bool:
        """Whether batch `b`'s URLs are done, waiting at most `timeout` seconds (None: until
        they are); the run's own failure (a bug) is raised here."""
        ready = self.ready[b]
        if not ready.done() and job is not None and (timeout is None or timeout > 0):
            either: list[concurrent.futures.Future[Any]] = [ready, job]
            concurrent.futures.wait(either, timeout, return_when=concurrent.futures.FIRST_COMPLETED)
        if ready.done():
            return True
        if job is not None and job.done():
            job.result()
            raise AssertionError("fetch run ended before every URL was done")
        if timeout is None:
            raise AssertionError("no fetch run for a batch that waits for URLs")
        return False

    def candidates(self, b: int, part: pa.Table, wanted: list[Any], reasons: list[Any],
                   start: int, later: dict[int, tuple[float, int]]
                   ) -> tuple[pa.Table, FetchStats, pa.Table | None]:
        """Batch `b`'s candidates and statistics, and its DEFERRED rows (None if none) with
        SPENT_COLUMNS from `later`."""
        stop = start + part.num_rows
        results: list[Result] = []
        for url, reason in zip(wanted[start:stop], reasons[start:stop]):
            result = self.results[self.slot[url]] if reason is None else (None, reason)
            assert result is not None
            results.append(result)
        for j in self.frees[b]:
            self.results[j] = None  # handed on: the table holds the bytes now
        kept = [r[1] != DEFERRED for r in results]
        put_off = None
        if not all(kept):
            mask = pa.array(kept, pa.bool_())
            put_off = part.filter(pc.invert(mask)).drop_columns(
                [c for c in SPENT_COLUMNS if c in part.column_names])
            used = [later[self.slot[u]] for u, k in zip(wanted[start:stop], kept) if not k]
            put_off = put_off.append_column(SPENT_COLUMNS[0], pa.array([u[0] for u in used],
                                                                       pa.float64()))
            put_off = put_off.append_column(SPENT_COLUMNS[1], pa.array([u[1] for u in used],
                                                                       pa.int64()))
            part = part.filter(mask)
            wanted = [u for u, k in zip(wanted[start:stop], kept) if k]
            reasons = [r for r, k in zip(reasons[start:stop], kept) if k]
            firsts = [f for f, k in zip(self.first[start:stop], kept) if k]
            results = [r for r, k in zip(results, kept) if k]
        else:
            wanted, reasons = wanted[start:stop], reasons[start:stop]
            firsts = self.first[start:stop]
        data = [r[0] for r in results]
        why = [r[1] for r in results]
        stats = FetchStats(
            urls=part.num_rows, fetched=sum(d is not None for d in data),
            duplicates=sum(r is None and not f for r, f in zip(reasons, firsts)),
            deferred=0 if put_off is None else put_off.num_rows,
            failures=dict(sorted(Counter(r for r in why if r).items())))
        return fetched_candidates(part, wanted, data, why, stats), stats, put_off
