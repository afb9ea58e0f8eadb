"""The HTTP fetcher: URL-list rows in, CANDIDATE_SCHEMA rows out, every URL accounted for.

Client: aiohttp. It streams bodies (so the size cap aborts a 2 GB response after `max_bytes`),
takes a pluggable resolver (so the SSRF guard filters the addresses actually connected to, see
`netguard`), and runs thousands of requests on one asyncio loop per worker. Redirects are followed
by hand, so the guard and robots.txt are checked on every hop before connecting.

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
from collections import Counter
from dataclasses import dataclass
from typing import Any, AsyncIterator, Coroutine, TypeVar

import aiohttp
import pyarrow as pa
from yarl import URL


from .candidates import column_or_nulls, fetched_candidates
from .fetch_options import FetchOptions, FetchStats
from .netguard import Guard, GuardedResolver
from .replies import Rejected, Transient, classify_error, parse_retry_after, sniff_image
from .robots import (
    ROBOTS_MAX_BYTES,
    RobotsCache,
    RobotsPolicy,
    policy_from_body,
    policy_from_failure,
    x_robots_reason,
)

REDIRECT_STATUSES = {301, 302, 303, 307, 308}
CHUNK = 64 * 1024
T = TypeVar("T")


@dataclass
class UrlState:
    """One URL's budget within a batch: its deadline timer and the timeouts it has had."""

    timer: asyncio.Timeout
    timeouts: int = 0
    first_try_done: bool = False


@dataclass(frozen=True)
class Reply:
    """One HTTP response: a redirect (`location` set) or a body."""

    status: int
    body: bytes = b""
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


def new_session(opts: FetchOptions, guard: Guard) -> aiohttp.ClientSession:
    """The fetcher's HTTP client (call within the event loop that will use it)."""
    connector = aiohttp.TCPConnector(limit=opts.concurrency, resolver=GuardedResolver(guard))
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=opts.connect_timeout,
        sock_connect=opts.connect_timeout,
        sock_read=opts.read_timeout,
    )
    headers = {"User-Agent": opts.user_agent, "Accept": "image/*,*/*;q=0.8"}
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers=headers,
        trust_env=False,  # no proxies from the environment: the guard sees the real peer
        cookie_jar=aiohttp.DummyCookieJar(),
    )


class BatchRun:
    """One batch's asyncio state: the session, the concurrency caps and the request counters."""

    def __init__(self, fetcher: "Fetcher") -> None:
        self.fetcher = fetcher
        self.opts = fetcher.opts
        self.stats = FetchStats()
        self.session: aiohttp.ClientSession
        self.all_slots = asyncio.Semaphore(self.opts.concurrency)
        self.host_slots: dict[str, asyncio.Semaphore] = {}
        self.robots_loads: dict[str, asyncio.Task[RobotsPolicy]] = {}
        self.first_tries_left = 0
        self.first_tries_done = asyncio.Event()  # every URL of the batch has had its first try

    async def run(self, urls: list[str], session: aiohttp.ClientSession | None = None
                  ) -> list[tuple[bytes | None, str | None]]:
        """Fetch every URL concurrently; one (data, reason) per URL, same order.

        In `session` (kept open across batches), or in one opened and closed for this batch."""
        self.first_tries_left = len(urls)
        if not urls:
            self.first_tries_done.set()
        if session is not None:
            self.session = session
            return await asyncio.gather(*(self.fetch_one(url) for url in urls))
        async with new_session(self.opts, self.fetcher.guard) as self.session:
            return await asyncio.gather(*(self.fetch_one(url) for url in urls))

    async def fetch_one(self, text: str) -> tuple[bytes | None, str | None]:
        """(body, None) for an image, else (None, reason)."""
        state = None
        try:
            try:
                url = URL(text)
            except (ValueError, TypeError):
                return None, "bad url"
            async with asyncio.timeout(None) as timer:  # armed by the URL's first request
                state = UrlState(timer)
                reply = await self.follow(url, image=True, state=state)
        except Rejected as exc:
            return None, exc.reason
        except TimeoutError:
            return None, "deadline"
        finally:
            self.first_try_done(state)
        if sniff_image(reply.body) is None:
            return None, "not an image"
        return reply.body, None

    def first_try_done(self, state: UrlState | None) -> None:
        """Count a URL's first try (once); the last one releases the deferred timeout retries."""
        if state is not None and state.first_try_done:
            return
        if state is not None:
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
                await self.check_robots(url)
            reply = await self.retrying(url, image, state)
            if reply.location is None:
                return reply
            try:
                url = url.join(URL(reply.location)).with_fragment(None)
            except (ValueError, TypeError):
                raise Rejected("bad redirect") from None
        raise Rejected("too many redirects")

    async def check_robots(self, url: URL) -> None:
        origin = str(url.origin())
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
            policy = policy_from_body(reply.body)
        self.fetcher.robots.put(origin, policy)
        return policy

    async def retrying(self, url: URL, image: bool, state: UrlState | None = None) -> Reply:
        """One hop, retried on transient failures with capped exponential backoff and jitter.

        A timeout is retried at most `timeout_retries` times and, for an image URL, only after
        every URL of the batch has had its first try: later, not in place."""
        for attempt in range(self.opts.retries + 1):
            try:
                return await self.attempt(url, image, state)
            except Transient as exc:
                timed_out = exc.reason == "timeout" and state is not None
                if attempt == self.opts.retries or (timed_out and state is not None
                                                    and state.timeouts >= self.opts.timeout_retries):
                    raise Rejected(exc.reason) from None
                self.stats.retries += 1
                if timed_out and state is not None:  # (not narrowed through `timed_out`)
                    state.timeouts += 1
                    self.first_try_done(state)
                    await self.first_tries_done.wait()
                else:
                    await asyncio.sleep(self.backoff(attempt, exc.retry_after))
        raise AssertionError("unreachable")

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.opts.retry_after_max)
        ceiling = min(self.opts.backoff_max, self.opts.backoff_base * 2**attempt)
        return self.fetcher.rng.uniform(ceiling / 2, ceiling)  # "equal jitter"

    async def attempt(self, url: URL, image: bool, state: UrlState | None = None) -> Reply:
        """One request within the caps and the total timeout; client errors become reasons."""
        async with self.slot(url):
            if state is not None and state.timer.when() is None:
                state.timer.reschedule(asyncio.get_running_loop().time() + self.opts.deadline)
            self.stats.requests += 1
            self.stats.robots_requests += 0 if image else 1
            try:
                async with asyncio.timeout(self.opts.total_timeout):
                    async with self.session.get(url, allow_redirects=False) as resp:
                        return await self.reply(resp, image)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise classify_error(exc) from None

    @contextlib.asynccontextmanager
    async def slot(self, url: URL) -> AsyncIterator[None]:
        """Hold a per-host slot (after the host's rate delay), then a global one."""
        host = url.host or ""
        host_slot = self.host_slots.setdefault(host, asyncio.Semaphore(self.opts.per_host))
        async with host_slot:
            delay = self.fetcher.rate.delay(host, time.monotonic())
            if delay > 0:
                await asyncio.sleep(delay)
            async with self.all_slots:
                yield

    async def reply(self, resp: aiohttp.ClientResponse, image: bool) -> Reply:
        """Judge a response from its status and headers, then stream its body within the cap."""
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
        return Reply(status, await self.read_body(resp, limit, truncate=not image))

    def check_peer(self, resp: aiohttp.ClientResponse) -> None:
        """Belt and braces: the address actually connected to must pass the guard too."""
        transport = resp.connection.transport if resp.connection else None
        peer = transport.get_extra_info("peername") if transport else None
        reason = self.fetcher.guard.address_reason(peer[0]) if peer else None
        if reason:
            raise Rejected(reason)

    async def read_body(self, resp: aiohttp.ClientResponse, limit: int, truncate: bool) -> bytes:
        """The body, aborted (or, for robots.txt, cut) as soon as it passes `limit` bytes."""
        if not truncate and (resp.content_length or 0) > limit:
            raise Rejected("too large")
        chunks, size = [], 0
        async for chunk in resp.content.iter_chunked(CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            self.stats.bytes += len(chunk)
            if size > limit:
                if truncate:
                    return b"".join(chunks)[:limit]
                resp.close()
                raise Rejected("too large")
        return b"".join(chunks)  # one copy: bodies are large, the batch holds many


class Fetcher:
    """A fetching worker: options, SSRF guard, robots.txt cache and rate state across batches.

    For Ray: `ds.map_batches(Fetcher, fn_constructor_kwargs={"opts": opts},
    batch_format="pyarrow", concurrency=N)`; each call fetches one batch. `stats` is the running
    total of this worker.
    """

    def __init__(self, opts: FetchOptions, seed: int | None = None) -> None:
        self.opts = opts
        self.guard = Guard(opts.allow_private_network, opts.allowed_networks)
        self.robots = RobotsCache(opts.robots_ttl)
        self.rate = HostRate(opts.rps_per_host)
        self.rng = random.Random(seed)
        self.stats = FetchStats()
        # One event loop and HTTP session for all batches of this worker: kept-alive connections
        # are reused instead of reopened per batch (see `close`).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None

    def _fetch(self, run: "BatchRun", urls: list[str]) -> list[tuple[bytes | None, str | None]]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:  # called from async code: a fresh loop in a helper thread, a session per batch
            return _run_sync(run.run(urls))
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
            self._session = None
        if self._session is None:
            self._session = self._loop.run_until_complete(self._open())
        return self._loop.run_until_complete(run.run(urls, self._session))

    async def _open(self) -> aiohttp.ClientSession:
        return new_session(self.opts, self.guard)

    def close(self) -> None:
        """Close the kept HTTP session and its loop (also done when the Fetcher is collected)."""
        loop, session, self._loop, self._session = self._loop, self._session, None, None
        if loop is None or loop.is_closed():
            return
        if session is not None:
            loop.run_until_complete(session.close())
        loop.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __call__(self, urls: pa.Table) -> pa.Table:
        return self.fetch_batch(urls)

    def fetch_batch(self, urls: pa.Table) -> pa.Table:
        """One CANDIDATE_SCHEMA row per input row, same order; `FetchStats` in the metadata."""
        n = urls.num_rows
        wanted = column_or_nulls(urls, "url", n).to_pylist()
        given = column_or_nulls(urls, "reason", n).to_pylist()
        reasons = [g or (None if u else "no url") for u, g in zip(wanted, given)]
        fetchable = [u for u, r in zip(wanted, reasons) if r is None]
        todo = list(dict.fromkeys(fetchable))  # duplicates within the batch are fetched once
        run = BatchRun(self)
        results = dict(zip(todo, self._fetch(run, todo))) if todo else {}
        data = [None if r else results[u][0] for u, r in zip(wanted, reasons)]
        reasons = [r or results[u][1] for u, r in zip(wanted, reasons)]
        stats = run.stats
        stats.urls, stats.fetched = n, sum(d is not None for d in data)
        stats.duplicates = len(fetchable) - len(todo)
        stats.failures = dict(sorted(Counter(r for r in reasons if r).items()))
        self.stats = self.stats.merge(stats)
        return fetched_candidates(urls, wanted, data, reasons, stats)


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


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on a fresh loop (in a helper thread when this thread already runs one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


__all__ = ["FetchOptions", "FetchStats", "Fetcher", "HostRate", "fetch_batch"]
