"""The HTTP fetcher: URL-list rows in, CANDIDATE_SCHEMA rows out, every URL accounted for.

Client: aiohttp. It streams bodies (so the size cap aborts a 2 GB response after `max_bytes`),
takes a pluggable resolver (so the SSRF guard filters the addresses actually connected to, see
`netguard`), and runs thousands of requests on one asyncio loop per worker, in a thread of its own
(`ingest/fetchstream.py`) so that a read task streams its URLs while it transforms what has
arrived. Redirects are followed by hand, so the guard and robots.txt are checked on every hop
before connecting.

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
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine, TypeVar

import aiohttp
import pyarrow as pa
from yarl import URL


from .candidates import fetched_candidates
from .fetch_options import STATS_METADATA_KEY, FetchOptions, FetchStats
from .fetchstream import FetchStream, LoopThread, Result
from .netguard import Guard, GuardedResolver
from .replies import Rejected, Transient, classify_error, head, parse_retry_after, sniff_image
from .robots import (
    ROBOTS_MAX_BYTES,
    RobotsCache,
    RobotsPolicy,
    policy_from_body,
    policy_from_failure,
    x_robots_reason,
)

REDIRECT_STATUSES = {301, 302, 303, 307, 308}
T = TypeVar("T")


@dataclass
class UrlState:
    """One URL's budget within a run: when its deadline falls (set by its first request) and the
    timeouts it has had."""

    deadline_at: float | None = None
    timeouts: int = 0
    first_try_done: bool = False


class Deadline(Rejected):
    """The URL's deadline passed (during a request, a backoff or the wait to retry a timeout)."""

    def __init__(self) -> None:
        super().__init__("deadline")


@dataclass(frozen=True)
class Reply:
    """One HTTP response: a redirect (`location` set) or a body."""

    status: int
    body: list[bytes] = field(default_factory=list)  # as it arrived, see `read_body`
    location: str | None = None


class HostRate:
    """Spaces requests to one host `1 / rps` seconds apart (state kept across batches)."""

    def __init__(self, rps: float | None) -> None:
        self.interval = 0.0 if rps is None else 1.0 / rps
        self._next: dict[str, float] = {}

    def delay(self, host: str, now: float) -> float:
        """Reserve the next slot for `host`; return how long to wait for it."""
        if not self.interval:
            return 0.0
        start = max(now, self._next.get(host, now))
        self._next[host] = start + self.interval
        return start - now


def request_timeout(opts: FetchOptions, total: float | None = None) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts for one attempt: `total` (default `total_timeout`) covers connecting,
    the headers and the whole body; `read_timeout` is the longest silence while reading;
    `connect_timeout` bounds opening a connection, TCP and TLS (`sock_connect`; `connect` would add
    a timer to every request for the wait for a pooled connection, which the fetcher's own
    semaphores keep at nothing)."""
    return aiohttp.ClientTimeout(
        total=opts.total_timeout if total is None else total,
        sock_connect=opts.connect_timeout,
        sock_read=opts.read_timeout,
    )


def new_session(opts: FetchOptions, guard: Guard) -> aiohttp.ClientSession:
    """The fetcher's HTTP client (call within the event loop that will use it)."""
    connector = aiohttp.TCPConnector(limit=opts.concurrency, resolver=GuardedResolver(guard))
    headers = {"User-Agent": opts.user_agent, "Accept": "image/*,*/*;q=0.8"}
    return aiohttp.ClientSession(
        connector=connector,
        timeout=request_timeout(opts),
        headers=headers,
        trust_env=False,  # no proxies from the environment: the guard sees the real peer
        cookie_jar=aiohttp.DummyCookieJar(),
    )


class Run:
    """One run of the fetcher over a list of URLs (a read task's, or a batch's) on the worker's
    event loop: the concurrency caps, the robots.txt loads in progress and the request counters.

    Per request the bookkeeping is kept to what politeness and the budgets need: one aiohttp timer
    per attempt (its total is cut to the URL's deadline when that falls first), two semaphores
    acquired directly, and cached guard, origin and robots.txt look-ups."""

    def __init__(self, fetcher: "Fetcher", session: aiohttp.ClientSession, urls: int) -> None:
        self.fetcher = fetcher
        self.opts = fetcher.opts
        self.session = session
        self.loop = asyncio.get_running_loop()
        self.timeout = request_timeout(self.opts)  # an attempt's, unless its deadline is nearer
        self.stats = FetchStats()
        self.all_slots = asyncio.Semaphore(self.opts.concurrency)
        self.host_slots: dict[str, asyncio.Semaphore] = {}
        self.robots_loads: dict[str, asyncio.Task[RobotsPolicy]] = {}
        self.first_tries_left = urls
        self.first_tries_done = asyncio.Event()  # every URL of the run has had its first try
        if urls <= 0:
            self.first_tries_done.set()

    async def fetch_one(self, text: str) -> Result:
        """(body chunks, None) for an image, else (None, reason)."""
        state = UrlState()
        try:
            try:
                url = URL(text)
            except (ValueError, TypeError):
                return None, "bad url"
            reply = await self.follow(url, image=True, state=state)
        except Rejected as exc:
            return None, exc.reason
        finally:
            self.first_try_done(state)
        if sniff_image(head(reply.body)) is None:
            return None, "not an image"
        return reply.body, None

    def first_try_done(self, state: UrlState) -> None:
        """Count a URL's first try (once); the last one releases the deferred timeout retries."""
        if state.first_try_done:
            return
        state.first_try_done = True
        self.first_tries_left -= 1
        if self.first_tries_left <= 0:
            self.first_tries_done.set()

    async def follow(self, url: URL, image: bool, state: UrlState | None = None) -> Reply:
        """Request `url`, following redirects by hand: guard and robots.txt on every hop."""
        for _ in range(self.opts.max_redirects + 1):
            reason = self.fetcher.guard.url_reason(url)
            if reason:
                raise Rejected(reason)
            if image and self.opts.respect_robots_txt:
                policy = self.fetcher.robots.get(self.fetcher.origin(url))
                if policy is None or not policy.allows(str(url), self.opts.robots_agent):
                    await self.check_robots(url)  # loads the policy, or says why not
            reply = await self.retrying(url, image, state)
            if reply.location is None:
                return reply
            try:
                url = url.join(URL(reply.location)).with_fragment(None)
            except (ValueError, TypeError):
                raise Rejected("bad redirect") from None
        raise Rejected("too many redirects")

    async def check_robots(self, url: URL) -> None:
        origin = self.fetcher.origin(url)
        policy = self.fetcher.robots.get(origin)
        if policy is None:
            load = self.robots_loads.get(origin)
            if load is None:
                load = self.robots_loads[origin] = asyncio.ensure_future(self.load_robots(origin))
            policy = await asyncio.shield(load)  # a URL's deadline must not cancel the shared load
        if policy.unreachable:
            raise Rejected("robots.txt unreachable")
        if not policy.allows(str(url), self.opts.robots_agent):
            raise Rejected("robots.txt disallows")

    async def load_robots(self, origin: str) -> RobotsPolicy:
        """Fetch and cache `origin`'s robots.txt (once per origin and worker)."""
        try:
            reply = await self.follow(URL(origin + "/robots.txt"), image=False)
        except Rejected as exc:
            if exc.reason.startswith("blocked:"):
                raise  # the host itself is refused: every URL on it gets this reason
            policy = policy_from_failure(exc.reason)
        else:
            policy = policy_from_body(b"".join(reply.body))
        self.fetcher.robots.put(origin, policy)
        return policy

    async def retrying(self, url: URL, image: bool, state: UrlState | None = None) -> Reply:
        """One hop, retried on transient failures with capped exponential backoff and jitter.

        A timeout is retried at most `timeout_retries` times and, for an image URL, only after
        every URL of the run has had its first try: later, not in place. No wait outlasts the
        URL's deadline: one that would is the URL's end ("deadline")."""
        for attempt in range(self.opts.retries + 1):
            try:
                return await self.attempt(url, image, state)
            except Transient as exc:
                if attempt == self.opts.retries:
                    raise Rejected(exc.reason) from None
                if exc.reason == "timeout" and state is not None:
                    if state.timeouts >= self.opts.timeout_retries:
                        raise Rejected(exc.reason) from None
                    state.timeouts += 1
                    self.stats.retries += 1
                    self.first_try_done(state)
                    await self.until_deadline(self.first_tries_done.wait(), state)
                    continue
                self.stats.retries += 1
                delay = self.backoff(attempt, exc.retry_after)
                if state is not None and state.deadline_at is not None \
                        and self.loop.time() + delay >= state.deadline_at:
                    raise Deadline() from None
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def until_deadline(self, wait: Coroutine[Any, Any, T], state: UrlState) -> T:
        if state.deadline_at is None:
            return await wait
        try:
            return await asyncio.wait_for(wait, state.deadline_at - self.loop.time())
        except TimeoutError:
            raise Deadline() from None

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.opts.retry_after_max)
        ceiling = min(self.opts.backoff_max, self.opts.backoff_base * 2**attempt)
        return self.fetcher.rng.uniform(ceiling / 2, ceiling)  # "equal jitter"

    async def attempt(self, url: URL, image: bool, state: UrlState | None = None) -> Reply:
        """One request within the caps and its timeouts; client errors become reasons.

        Holds a per-host slot (after the host's rate delay), then a global one. The URL's deadline
        starts with its first request (waiting for a slot before that does not count); when it
        falls before `total_timeout` would, it is the request's total timeout."""
        host = url.host or ""
        host_slot = self.host_slots.get(host)
        if host_slot is None:
            host_slot = self.host_slots[host] = asyncio.Semaphore(self.opts.per_host)
        async with host_slot:
            delay = self.fetcher.rate.delay(host, time.monotonic())
            if delay > 0:
                await asyncio.sleep(delay)
            async with self.all_slots:
                timeout = self.timeout
                if state is not None:
                    now = self.loop.time()
                    if state.deadline_at is None:
                        state.deadline_at = now + self.opts.deadline
                    left = state.deadline_at - now
                    if left <= 0:
                        raise Deadline()
                    if left < self.opts.total_timeout:
                        timeout = request_timeout(self.opts, left)
                self.stats.requests += 1
                self.stats.robots_requests += 0 if image else 1
                try:
                    async with self.session.get(url, allow_redirects=False,
                                                timeout=timeout) as resp:
                        return await self.reply(resp, image)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    if (isinstance(exc, asyncio.TimeoutError) and state is not None
                            and state.deadline_at is not None
                            and self.loop.time() >= state.deadline_at):
                        raise Deadline() from None
                    raise classify_error(exc) from None

    async def reply(self, resp: aiohttp.ClientResponse, image: bool) -> Reply:
        """Judge a response from its status and headers, then read its body within the cap."""
        self.check_peer(resp)
        status = resp.status
        if status in REDIRECT_STATUSES and resp.headers.get("Location"):
            return Reply(status, location=resp.headers["Location"])
        if status == 429 or (500 <= status < 600 and status != 501):
            raise Transient(f"http {status}", parse_retry_after(resp.headers.get("Retry-After")))
        if not 200 <= status < 300:
            raise Rejected(f"http {status}")
        if image and self.opts.respect_x_robots_tag:
            reason = x_robots_reason(resp.headers.getall("X-Robots-Tag", []), self.opts.robots_agent)
            if reason:
                raise Rejected(reason)
        limit = self.opts.max_bytes if image else ROBOTS_MAX_BYTES
        body = await read_body(resp, limit, truncate=not image)
        self.stats.bytes += sum(map(len, body))
        return Reply(status, body)

    def check_peer(self, resp: aiohttp.ClientResponse) -> None:
        """Belt and braces: the address actually connected to must pass the guard too."""
        transport = resp.connection.transport if resp.connection else None
        peer = transport.get_extra_info("peername") if transport else None
        reason = self.fetcher.guard.address_reason(peer[0]) if peer else None
        if reason:
            raise Rejected(reason)


async def read_body(resp: aiohttp.ClientResponse, limit: int, truncate: bool) -> list[bytes]:
    """The body as the chunks it arrived in (no copy: the batch's Arrow column is their one
    copy), refused (or, for robots.txt, cut) as soon as it passes `limit` bytes; a declared
    Content-Length past the cap is refused before reading."""
    if not truncate and (resp.content_length or 0) > limit:
        raise Rejected("too large")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk, end_of_http_chunk = await resp.content.readchunk()
        if not chunk:
            if end_of_http_chunk:
                continue
            return chunks
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            if truncate:
                return [b"".join(chunks)[:limit]]
            resp.close()
            raise Rejected("too large")


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
        self._origins: dict[tuple[str, str, int | None], str] = {}
        # One event loop (in a thread of its own) and one HTTP session for all runs of this
        # worker: kept-alive connections are reused instead of reopened per batch (see `close`).
        self._loop: LoopThread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._finalizer: weakref.finalize | None = None

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

    def stream(self, urls: pa.Table, rows: int, idle: Callable[[], None] | None = None
               ) -> "FetchStream":
        """Fetch every row of `urls`, yielding CANDIDATE_SCHEMA tables of `rows` input rows in
        order, each as soon as its URLs are done while the rest are fetched. A URL given twice is
        fetched once. `stats` of the returned stream is set once it is exhausted; `idle`: see
        `FetchStream`."""
        return FetchStream(self, urls, rows, idle)

    def start_run(self, urls: list[str], done: Callable[[int, Result], None]
                  ) -> "concurrent.futures.Future[FetchStats]":
        """Fetch `urls` on the worker's loop thread, calling `done(i, result)` there as URL `i`
        ends; the future's result is the run's request counters."""
        loop, session = self._running()
        return loop.submit(self._run(session, urls, done))

    async def _run(self, session: aiohttp.ClientSession, urls: list[str],
                   done: Callable[[int, Result], None]) -> FetchStats:
        run = Run(self, session, len(urls))

        async def one(i: int, url: str) -> None:
            done(i, await run.fetch_one(url))

        await asyncio.gather(*(one(i, url) for i, url in enumerate(urls)))
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
