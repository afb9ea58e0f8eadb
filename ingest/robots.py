"""robots.txt and X-Robots-Tag: whether a site lets a dataset crawler take its images.

robots.txt is parsed by Protego (Scrapy's parser: Google's longest-match rules, wildcards, `$`);
what to do when it cannot be fetched follows RFC 9309: a 4xx means no rules (allow all), a server
or network error means "assume complete disallow". Fetched policies are cached per worker for
`ttl` seconds (RFC 9309 asks for no more than 24 hours) in a `RobotsCache` the fetcher keeps across
batches, so each host's robots.txt is fetched once per worker, not once per URL.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from protego import Protego

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: parse at least the first 500 KiB; ignore the rest
AI_DIRECTIVES = ("noai", "noimageai")
# X-Robots-Tag directives that carry a value after a colon, so "name:" is not a user-agent scope.
_VALUED_DIRECTIVES = {"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"}


@dataclass(frozen=True)
class RobotsPolicy:
    """One host's robots.txt as the fetcher uses it."""

    parser: Protego | None = None  # None: no rules, everything allowed
    unreachable: bool = False  # server/network error: RFC 9309 says assume complete disallow

    def allows(self, url: str, agent: str) -> bool:
        """Whether `agent` may fetch `url` (a full URL on this policy's host)."""
        if self.unreachable:
            return False
        return self.parser is None or bool(self.parser.can_fetch(url, agent))


def policy_from_body(body: bytes) -> RobotsPolicy:
    """Parse a fetched robots.txt (UTF-8 per RFC 9309; undecodable bytes are replaced)."""
    text = body[:ROBOTS_MAX_BYTES].decode("utf-8", errors="replace")
    return RobotsPolicy(parser=Protego.parse(text))


def policy_from_failure(reason: str) -> RobotsPolicy:
    """The policy when fetching robots.txt ended with `reason` (a fetch rejection reason).

    `http 4xx` (but 429, which RFC 9309 treats like a server error) means the site has no rules;
    anything else (5xx, timeouts, resets, refused redirects) is "unreachable": disallow all.
    """
    if reason.startswith("http 4") and reason != "http 429":
        return RobotsPolicy()
    return RobotsPolicy(unreachable=True)


def x_robots_reason(values: list[str], agent: str) -> str | None:
    """The rejection reason if any X-Robots-Tag header value forbids AI use, else None.

    A value may be scoped to a crawler (`otherbot: noai, noimageai`); scoped values apply only when
    the scope is our `agent` token. Directives are case-insensitive.
    """
    agent = agent.lower()
    for value in values:
        scope, sep, rest = value.partition(":")
        scope = scope.strip().lower()
        if sep and scope not in _VALUED_DIRECTIVES and "," not in scope:
            if scope not in (agent, "*"):
                continue
            value = rest
        directives = {part.strip().lower() for part in value.split(",")}
        for directive in AI_DIRECTIVES:
            if directive in directives:
                return f"x-robots-tag {directive}"
    return None


class RobotsCache:
    """Parsed robots.txt policies by origin (`scheme://host:port`), each kept for `ttl` seconds,
    at most `size` of them (the oldest go first): a worker's crawl meets millions of hosts, and
    a URL list's tasks are in URL order, so a host's URLs come together and a policy is rarely
    wanted again once its host's run is over (then it is fetched again)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic,
                 size: int = 1024) -> None:
        self.ttl = ttl
        self.clock = clock
        self.size = size
        self._entries: dict[str, tuple[RobotsPolicy, float]] = {}

    def get(self, origin: str) -> RobotsPolicy | None:
        """The cached policy for `origin`, or None when absent or expired."""
        entry = self._entries.get(origin)
        if entry is None or self.clock() - entry[1] > self.ttl:
            return None
        return entry[0]

    def put(self, origin: str, policy: RobotsPolicy) -> None:
        self._entries.pop(origin, None)
        while len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]  # the oldest put
        self._entries[origin] = (policy, self.clock())

    def __len__(self) -> int:
        return len(self._entries)
