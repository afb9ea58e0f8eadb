"""One attempt of one URL: the request, the SSRF guard on the peer, the status, the body cap.

The caller (`ingest/fetchrun.py`, the batch) decides when an attempt runs and with which timeout
(its slots, retries and the URL's deadline); this module sends one GET and turns what comes back
into a `Reply` or a reason: `Rejected` (final) or `Transient` (worth another attempt).
"""
from __future__ import annotations

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


def request_timeout(opts: FetchOptions, total: float | None = None,
                    patient: bool = False) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts for one attempt: `total` (default `total_timeout`) covers connecting,
    the headers and the whole body; `read_timeout` is the longest silence while reading (none
    for a `patient` attempt, a deferred URL's one retry, which may be silent for all of `total`);
    `connect_timeout` bounds opening a connection, TCP and TLS (`sock_connect`; `connect` would add
    a timer to every request for the wait for a pooled connection, which the fetcher's own
    semaphores keep at nothing)."""
    return aiohttp.ClientTimeout(
        total=opts.total_timeout if total is None else total,
        sock_connect=opts.connect_timeout,
        sock_read=None if patient else opts.read_timeout,
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


async def request(session: aiohttp.ClientSession, url: URL, image: bool, opts: FetchOptions,
                  guard: Guard, timeout: aiohttp.ClientTimeout, stats: FetchStats) -> Reply:
    """GET `url` once (no redirects followed); client errors become `Transient` or `Rejected`
    (`asyncio.TimeoutError` is left to the caller, which knows whether the deadline fell)."""
    try:
        async with session.get(url, allow_redirects=False, timeout=timeout) as resp:
            return await reply(resp, image, opts, guard, stats)
    except aiohttp.ClientError as exc:
        raise classify_error(exc) from None


async def reply(resp: aiohttp.ClientResponse, image: bool, opts: FetchOptions, guard: Guard,
                stats: FetchStats) -> Reply:
    """Judge a response from its status and headers, then read its body within the cap."""
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
    body = await read_body(resp, limit, truncate=not image)
    stats.bytes += sum(map(len, body))
    return Reply(status, body)


def check_peer(resp: aiohttp.ClientResponse, guard: Guard) -> None:
    """Belt and braces: the address actually connected to must pass the guard too."""
    transport = resp.connection.transport if resp.connection else None
    peer = transport.get_extra_info("peername") if transport else None
    reason = guard.address_reason(peer[0]) if peer else None
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


__all__ = ["Deadline", "Reply", "new_session", "read_body", "request", "request_timeout"]
