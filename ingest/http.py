"""The HTTP fetcher: URL-list rows in, CANDIDATE_SCHEMA rows out, every URL accounted for.

Client: aiohttp. It streams bodies (so the size cap aborts a 2 GB response after `max_bytes`),
takes a pluggable resolver (so the SSRF guard filters the addresses actually connected to, see
`netguard`), and runs thousands of requests on one asyncio loop per worker, in a thread of its own
(`ingest/fetchstream.py`) so that a read task streams its URLs while it transforms what has
arrived. Redirects are followed by hand, so the guard and robots.txt are checked on every hop
before connecting. The modules: one request of one URL is `attempt`; a run over a list of URLs
(caps, robots.txt, retries, deadlines) is `fetchrun`; the streaming of a read task's rows is
`fetchstream`; this module is the worker's `Fetcher`, which keeps the loop, the session and the
caches across runs.

Statistics: `fetch_batch` returns the table with a `FetchStats` JSON document in its schema
metadata under `STATS_METADATA_KEY`; read it with `FetchStats.from_table`. `Fetcher` (a callable
class for Ray's `map_batches`) also keeps a running total in `Fetcher.stats` and its robots.txt
cache across batches.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import threading
import weakref
from typing import Callable

import aiohttp
import pyarrow as pa
from yarl import URL

from .attempt import Watch, new_session, watch_tick
from .candidates import fetched_candidates
from .fetch_options import STATS_METADATA_KEY, FetchOptions, FetchStats
from .fetchrun import DEFERRED, Run, UrlState
from .fetchstream import FetchStream, LoopThread, Result
from .netguard import Guard
from .robots import RobotsCache


class Job:
    """A run started on the worker's loop thread (`Fetcher.start_run`), as its caller sees it:
    the future of its counters, `cut` to end every URL still unfinished as DEFERRED, and `later`:
    URL index -> (seconds of its deadline used, timeouts) for each DEFERRED URL (set before the
    URL's `done` call)."""

    def __init__(self, loop: LoopThread) -> None:
        self.loop = loop
        self.future: "concurrent.futures.Future[FetchStats] | None" = None
        self.tasks: list[asyncio.Future[None]] = []
        self.later: dict[int, tuple[float, int]] = {}
        self.cutting = False

    def cut(self) -> None:
        """From any thread: hand every URL of the run that is not done yet to a later run."""
        self.loop.loop.call_soon_threadsafe(self._cut)

    def _cut(self) -> None:
        self.cutting = True
        for task in self.tasks:
            if not task.done():
                task.cancel()


class HostRate:
    """Spaces requests to one host `1 / rps` seconds apart (state kept across batches; a host
    whose next slot has passed is forgotten once `size` hosts are kept: it waits for nothing;
    the size doubles when more than half of them are still owed a wait)."""

    def __init__(self, rps: float | None, size: int = 4096) -> None:
        self.interval = 0.0 if rps is None else 1.0 / rps
        self.size = size
        self._next: dict[str, float] = {}

    def delay(self, host: str, now: float) -> float:
        """Reserve the next slot for `host`; return how long to wait for it."""
        if not self.interval:
            return 0.0
        if len(self._next) >= self.size:
            self._next = {h: t for h, t in self._next.items() if t > now}
            self.size = max(self.size, 2 * len(self._next))  # all still owed: prune less often
        start = max(now, self._next.get(host, now))
        self._next[host] = start + self.interval
        return start - now


class Fetcher:
    """A fetching worker: options, SSRF guard, robots.txt cache and rate state across runs.

    For Ray: `ds.map_batches(Fetcher, fn_constructor_kwargs={"opts": opts},
    batch_format="pyarrow", concurrency=N)`; each call fetches one batch. A read task streams its
    URLs instead (`stream`): fetching runs ahead on the worker's event-loop thread while the
    caller transforms what has arrived. `stats` is the running total of this worker.
    """

    def __init__(self, opts: FetchOptions, seed: int | None = None) -> None:
        self.opts = opts
        self.guard = Guard(opts.allow_private_network, opts.allowed_networks)
        self.robots = RobotsCache(opts.robots_ttl)
        self.rate = HostRate(opts.rps_per_host)
        self.rng = random.Random(seed)
        self.stats = FetchStats()
        self._stats_lock = threading.Lock()  # runs of several threads add to `stats`
        self._origins: dict[tuple[str, str, int | None], str] = {}
        # One event loop (in a thread of its own) and one HTTP session for all runs of this
        # worker: kept-alive connections are reused instead of reopened per batch (see `close`).
        self._loop: LoopThread | None = None
        self._session: aiohttp.ClientSession | None = None
        self.watch: Watch | None = None  # the time limits of the loop's requests in flight
        self._finalizer: weakref.finalize | None = None

    def add_stats(self, run: FetchStats) -> None:
        """Add a finished run's counts to this worker's running total (any thread)."""
        with self._stats_lock:
            self.stats = self.stats.merge(run)

    def origin(self, url: URL) -> str:
        """`scheme://host:port` of `url` (cached: one string per origin, not one per URL)."""
        key = (url.scheme, url.raw_host or "", url.explicit_port)
        origin = self._origins.get(key)
        if origin is None:
            if len(self._origins) >= 4096:  # bounded: a crawl meets millions of hosts
                self._origins.clear()
            origin = self._origins[key] = str(url.origin())
        return origin

    def _running(self) -> tuple["LoopThread", aiohttp.ClientSession]:
        if self._loop is None or not self._loop.alive():
            self._loop = LoopThread()
            self._session = None
        if self._session is None:
            self._session = self._loop.call(self._open())
            # Closed with the Fetcher, or at interpreter exit if it is still alive then (a
            # worker's Fetcher lives as long as its process): no "unclosed session" warnings.
            self._finalizer = weakref.finalize(self, _shut, self._loop, self._session)
        return self._loop, self._session

    async def _open(self) -> aiohttp.ClientSession:
        self.watch = Watch(asyncio.get_running_loop(), watch_tick(self.opts))
        return new_session(self.opts, self.guard)

    def close(self) -> None:
        """Close the kept HTTP session and its loop (also done when the Fetcher is collected,
        and at exit)."""
        loop, self._loop, self._session = self._loop, None, None
        if self._finalizer is not None:
            self._finalizer()  # closes the session, stops the loop; runs once
        elif loop is not None:
            loop.stop()

    def __call__(self, urls: pa.Table) -> pa.Table:
        return self.fetch_batch(urls)

    def fetch_batch(self, urls: pa.Table) -> pa.Table:
        """One CANDIDATE_SCHEMA row per input row, same order; `FetchStats` in the metadata."""
        stream = self.stream(urls, max(urls.num_rows, 1))
        tables = list(stream)
        table = tables[0] if tables else fetched_candidates(urls, [], [], [], FetchStats())
        return table.replace_schema_metadata({STATS_METADATA_KEY: stream.stats.to_json()})

    def stream(self, urls: pa.Table, rows: int, idle: Callable[[], None] | None = None,
               defer: bool = False) -> "FetchStream":
        """Fetch every row of `urls`, yielding CANDIDATE_SCHEMA tables of `rows` input rows in
        order, each as soon as its URLs are done while the rest are fetched. A URL given twice is
        fetched once. `stats` of the returned stream is set once it is exhausted; `idle` and
        `defer` (slow URLs handed to a later run): see `FetchStream`."""
        return FetchStream(self, urls, rows, idle,
                           defer_after=self.opts.defer_after if defer else None)

    def start_run(self, urls: list[str], done: Callable[[int, Result], None],
                  spent: list[tuple[float, int]] | None = None, defer: bool = False,
                  patient: bool = False) -> Job:
        """Fetch `urls` on the worker's loop thread, calling `done(i, result)` there as URL `i`
        ends; the job's future's result is the run's request counters. `spent`: per URL, the
        seconds of its deadline and the timeouts it used in earlier runs. `defer`: a timeout
        ends a URL as DEFERRED (see `Job`) instead of being retried in this run; `patient`: a
        run of deferred URLs (see `fetchrun.Run`)."""
        loop, session = self._running()
        job = Job(loop)
        job.future = loop.submit(self._run(session, urls, done, spent, job, defer, patient))
        return job

    async def _run(self, session: aiohttp.ClientSession, urls: list[str],
                   done: Callable[[int, Result], None], spent: list[tuple[float, int]] | None,
                   job: Job, defer: bool, patient: bool) -> FetchStats:
        run = Run(self, session, len(urls), defer, patient)
        loop = asyncio.get_running_loop()

        async def one(i: int, url: str, state: UrlState) -> None:
            try:
                result = await run.fetch_one(url, state)
            except asyncio.CancelledError:
                if not job.cutting:
                    raise
                result = (None, DEFERRED)
            if result[1] == DEFERRED:
                job.later[i] = (state.spent_by(loop.time(), self.opts.deadline), state.timeouts)
            done(i, result)

        states = [UrlState(*spent[i]) if spent else UrlState() for i in range(len(urls))]
        job.tasks = [asyncio.ensure_future(one(i, url, states[i])) for i, url in enumerate(urls)]
        await asyncio.gather(*job.tasks)
        return run.stats


def _shut(loop: LoopThread, session: aiohttp.ClientSession) -> None:
    with contextlib.suppress(Exception):
        if loop.alive():
            loop.call(session.close())
        loop.stop()


def fetch_batch(urls: pa.Table, opts: FetchOptions) -> pa.Table:
    """Fetch a URL-list batch (see `read_url_list`) into CANDIDATE_SCHEMA rows, one per input row.

    A one-off `Fetcher`: robots.txt is cached within this batch only; keep a `Fetcher` (as the Ray
    stage does) to cache it across batches. Statistics: `FetchStats.from_table(result)`.
    """
    fetcher = Fetcher(opts)
    try:
        return fetcher.fetch_batch(urls)
    finally:
        fetcher.close()


__all__ = ["FetchOptions", "FetchStats", "FetchStream", "Fetcher", "HostRate", "fetch_batch"]
