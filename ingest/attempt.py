"""One attempt of one URL: the request, the SSRF guard on the peer, the status, the body cap.

The caller (`ingest/fetchrun.py`, the batch) decides when an attempt runs and with which timeout
(its slots, retries and the URL's deadline); this module sends one GET and turns what comes back
into a `Reply` or a reason: `Rejected` (final) or `Transient` (worth another attempt).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from .fetch_options import FetchOptions, FetchStats
from .netguard import Guard, GuardedResolver
from .replies import Rejected, Transient, classify_error, parse_retry_after
from .robots import ROBOTS_MAX_BYTES, x_robots_reason

REDIRECT_STATUSES = {301, 302, 303, 307, 308}


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


class Timing:
    """One request's limits as its `Watch` keeps them; a context manager around the request:
    the watch's cancel comes out of it as asyncio.TimeoutError (any other cancel, of a cut run
    or a stopping loop, as itself), as aiohttp's own timeouts and asyncio.timeout do."""

    __slots__ = ("watch", "task", "ends", "silence", "last", "cancelling", "expired")

    def __init__(self, watch: "Watch", task: "asyncio.Task[object]", ends: float,
                 silence: float | None, now: float) -> None:
        self.watch, self.task, self.ends, self.silence, self.last = watch, task, ends, silence, now
        self.cancelling = task.cancelling()  # a cancel already under way is not the watch's
        self.expired = False

    def due(self, now: float) -> bool:
        return now >= self.ends or (self.silence is not None and now - self.last >= self.silence)

    def __enter__(self) -> "Timing":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        self.watch.live.discard(self)
        if not self.expired:
            return
        # undo the watch's own cancel (also when it was swallowed on the way out)
        if self.task.uncancel() <= self.cancelling and kind is asyncio.CancelledError:
            raise asyncio.TimeoutError() from None


class Watch:
    """The time limits of the requests in flight on one event loop, kept by one sweep every
    `tick` seconds instead of aiohttp's timers. aiohttp schedules a timer per request for its
    total and, for `sock_read`, cancels and schedules another on every chunk it reads: ~20 us
    a URL, an eighth of the fetcher's CPU per URL (bench/bench_fetch.py). A request past its
    total, or silent (no headers yet, or no chunk) for longer than its `silence`, is cancelled
    by the sweep, at most `tick` late, and `request` raises asyncio.TimeoutError for it as
    aiohttp's own timeouts do."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float) -> None:
        self.loop, self.tick = loop, tick
        self.live: set[Timing] = set()
        self._sweeping: asyncio.TimerHandle | None = None

    def start(self, total: float, silence: float | None) -> Timing:
        """Watch the current task's request from now (use the result as a context manager
        around it): `total` seconds at most, silences of `silence` seconds at most (None: any),
        a silence ending whenever `Timing.last` is set to the loop's time."""
        task = asyncio.current_task()
        assert task is not None, "a request runs in a task"
        now = self.loop.time()
        timing = Timing(self, task, now + total, silence, now)
        self.live.add(timing)
        if self._sweeping is None:
            self._sweeping = self.loop.call_at(now + self.tick, self._sweep)
        return timing

    def _sweep(self) -> None:
        now = self.loop.time()
        for timing in [t for t in self.live if t.due(now)]:
            self.live.discard(timing)
            timing.expired = True
            timing.task.cancel()
        self._sweeping = self.loop.call_at(now + self.tick, self._sweep) if self.live else None


def watch_tick(opts: FetchOptions) -> float:
    """How often a `Watch` sweeps: an eighth of the shortest limit, between 10 ms and 1 s."""
    return min(1.0, max(0.01, min(opts.read_timeout, opts.total_timeout) / 8))


def new_session(opts: FetchOptions, guard: Guard) -> aiohttp.ClientSession:
    """The fetcher's HTTP client (call within the event loop that will use it)."""
    connector = aiohttp.TCPConnector(limit=opts.concurrency, resolver=GuardedResolver(guard))
    headers = {"User-Agent": opts.user_agent, "Accept": "image/*,*/*;q=0.8"}
    return aiohttp.ClientSession(
        connector=connector,
        # connecting is bounded by aiohttp (a timer only when a connection is opened); the
        # request's total and its silences by the fetcher's `Watch`
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=opts.connect_timeout),
        headers=headers,
        trust_env=False,  # no proxies from the environment: the guard sees the real peer
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def request(session: aiohttp.ClientSession, watch: Watch, url: URL, image: bool,
                  opts: FetchOptions, guard: Guard, limits: tuple[float, float | None],
                  stats: FetchStats) -> Reply:
    """GET `url` once (no redirects followed) within `limits`: (total seconds, longest silence
    or None), kept by `watch`. Client errors become `Transient` or `Rejected`; a limit passed
    is `asyncio.TimeoutError`, left to the caller, which knows whether the deadline fell."""
    with watch.start(*limits) as timing:
        try:
            async with session.get(url, allow_redirects=False) as resp:
                return await reply(resp, image, opts, guard, stats, timing)
        except aiohttp.ClientError as exc:
            raise classify_error(exc) from None


async def reply(resp: aiohttp.ClientResponse, image: bool, opts: FetchOptions, guard: Guard,
                stats: FetchStats, timing: Timing) -> Reply:
    """Judge a response from its status and headers, then read its body within the cap."""
    timing.last = timing.task.get_loop().time()  # the headers end a silence, as a chunk does
    check_peer(resp, guard)
    status = resp.status
    if status in REDIRECT_STATUSES and resp.headers.get("Location"):
        return Reply(status, location=resp.headers["Location"])
    if status == 429 or (500 <= status < 600 and status != 501):
        raise Transient(f"http {status}", parse_retry_after(resp.headers.get("Retry-After")))
    if not 200 <= status < 300:
        raise Rejected(f"http {status}")
    if image and opts.respect_x_robots_tag:
        reason = x_robots_reason(resp.headers.getall("X-Robots-Tag", []), opts.robots_agent)
        if reason:
            raise Rejected(reason)
    limit = opts.max_bytes if image else ROBOTS_MAX_BYTES
    body = await read_body(resp, limit, not image, timing)
    stats.bytes += sum(map(len, body))
    return Reply(status, body)


def check_peer(resp: aiohttp.ClientResponse, guard: Guard) -> None:
    """Belt and braces: the address actually connected to must pass the guard too."""
    transport = resp.connection.transport if resp.connection else None
    peer = transport.get_extra_info("peername") if transport else None
    reason = guard.address_reason(peer[0]) if peer else None
    if reason:
        raise Rejected(reason)


async def read_body(resp: aiohttp.ClientResponse, limit: int, truncate: bool,
                    timing: Timing) -> list[bytes]:
    """The body as the chunks it arrived in (no copy: the batch's Arrow column is their one
    copy), refused (or, for robots.txt, cut) as soon as it passes `limit` bytes; a declared
    Content-Length past the cap is refused before reading. Each chunk ends a silence of
    `timing`'s."""
    if not truncate and (resp.content_length or 0) > limit:
        raise Rejected("too large")
    chunks: list[bytes] = []
    size = 0
    clock = timing.task.get_loop().time
    while True:
        chunk, end_of_http_chunk = await resp.content.readchunk()
        if not chunk:
            if end_of_http_chunk:
                continue
            return chunks
        timing.last = clock()
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            if truncate:
                return [b"".join(chunks)[:limit]]
            resp.close()
            raise Rejected("too large")


__all__ = ["Deadline", "Reply", "Timing", "Watch", "new_session", "read_body", "request",
           "watch_tick"]
