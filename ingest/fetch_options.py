"""Options of the HTTP fetcher (a frozen dataclass built once by the app and passed down), and
the statistics a fetch reports back (`FetchStats`, mergeable across batches and workers).

Every limit a crawler needs to be safe and polite lives here, with defaults fit for a public crawl;
tests shorten the timeouts and backoff rather than patching the fetcher.
"""
from __future__ import annotations

import builtins
import ipaddress
import json
from collections import Counter
from dataclasses import asdict, dataclass, field

import pyarrow as pa

from synshard.transforms.errors import SynshardError

STATS_METADATA_KEY = b"synshard.fetch_stats"
ROBOTS_AGENT = "synshard"
DEFAULT_USER_AGENT = (
    "synshard/0.1 (dataset builder; honours robots.txt and X-Robots-Tag noai; "
    "+https://github.com/synshard/synshard)"
)


@dataclass(frozen=True)
class FetchOptions:
    """How `fetch_batch` fetches. Caps and rates are per fetching worker (a Ray task or actor).

    On a cluster a host sees up to `workers x per_host` concurrent requests and `workers x
    rps_per_host` requests per second, so divide by the number of fetch workers when a site asks
    for a global rate.
    """

    concurrency: int = 64  # requests in flight per worker, all hosts together
    per_host: int = 8  # requests in flight per worker to one host (scheme, host, port)
    rps_per_host: float | None = None  # requests per second per host per worker; None: no limit
    connect_timeout: float = 10.0  # seconds to open a TCP (+TLS) connection (aiohttp: sock_connect)
    # seconds of silence allowed while reading (in a build, on a URL's tries in its read task; the
    # one retry of a deferred URL, in a retry task at the end, may wait out the rest of `deadline`)
    read_timeout: float = 30.0
    total_timeout: float = 60.0  # seconds for one attempt: connect, headers and the whole body
    retries: int = 3  # extra attempts after a transient failure (resets, timeouts, 429, 5xx)
    # A request that timed out is retried at most this many times, and only once every other URL
    # of its read task (or batch) has had its first try (so hanging URLs never hold slots the
    # others need).
    timeout_retries: int = 1
    # Seconds one URL may take from its first request on, across retries and redirect hops; past
    # it the URL is rejected with reason "deadline" (waiting for a slot before that does not count)
    deadline: float = 90.0
    # In a build's read task: seconds the task waits with nothing to do but unfinished URLs (no
    # URL of the task ending meanwhile) before it hands them, and any URL that timed out, to one
    # retry task at the end of the crawl (which carries on their deadlines); the slow URLs of many
    # tasks then wait at the same time instead of each holding its task's CPU slot.
    defer_after: float = 5.0
    backoff_base: float = 0.5  # first backoff in seconds, doubled per attempt, full jitter
    backoff_max: float = 30.0  # cap on one backoff
    retry_after_max: float = 60.0  # cap on an honoured Retry-After
    max_redirects: int = 5
    max_bytes: int = 32 * 1024 * 1024  # bodies above this are aborted while streaming
    user_agent: str = DEFAULT_USER_AGENT
    robots_agent: str = ROBOTS_AGENT  # the product token matched against robots.txt groups
    respect_robots_txt: bool = True
    respect_x_robots_tag: bool = True  # X-Robots-Tag: noai / noimageai
    robots_ttl: float = 86_400.0  # seconds a fetched robots.txt stays cached (RFC 9309: 24 h)
    # True: private, loopback and reserved destinations allowed (schemes, link-local and cloud
    # metadata addresses still refused, see `netguard`)
    allow_private_network: bool = False
    allowed_networks: tuple[str, ...] = field(default=())  # CIDRs allowed despite the guard

    def __post_init__(self) -> None:
        positive = {
            "concurrency": self.concurrency,
            "per_host": self.per_host,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "total_timeout": self.total_timeout,
            "deadline": self.deadline,
            "defer_after": self.defer_after,
            "max_bytes": self.max_bytes,
        }
        for name, value in positive.items():
            if not value > 0:
                raise SynshardError(f"bad fetch option {name}={value!r}: must be > 0")
        for name in ("retries", "timeout_retries", "max_redirects", "backoff_base", "backoff_max", "retry_after_max"):
            if getattr(self, name) < 0:
                raise SynshardError(f"bad fetch option {name}: must be >= 0")
        if self.max_bytes >= 2**31:
            raise SynshardError(f"bad fetch option max_bytes={self.max_bytes!r}: must be below "
                                "2 GiB (a body is one binary value)")
        if self.rps_per_host is not None and not self.rps_per_host > 0:
            raise SynshardError(f"bad fetch option rps_per_host={self.rps_per_host!r}: > 0 or None")
        for cidr in self.allowed_networks:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise SynshardError(f"bad allowed_networks entry {cidr!r}: {exc}") from None


@dataclass
class FetchStats:
    """What a fetch did. `merge` adds two together (batches, workers); neither is changed."""

    urls: int = 0  # input rows
    fetched: int = 0  # rows with data
    duplicates: int = 0  # rows whose URL appeared earlier in the same batch (fetched once)
    requests: int = 0  # HTTP requests sent: robots.txt, retries and redirect hops included
    robots_requests: int = 0
    retries: int = 0
    bytes: int = 0  # body bytes received
    deferred: int = 0  # URLs handed to a retry task (their rows are counted there)
    failures: dict[str, int] = field(default_factory=dict)  # rows by rejection reason

    def merge(self, other: "FetchStats") -> "FetchStats":
        failures = Counter(self.failures)
        failures.update(other.failures)
        numbers = {k: getattr(self, k) + getattr(other, k) for k in _COUNTERS}
        return FetchStats(**numbers, failures=dict(sorted(failures.items())))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | builtins.bytes) -> "FetchStats":  # `bytes`: the field
        return cls(**json.loads(text))

    @classmethod
    def from_table(cls, table: pa.Table) -> "FetchStats":
        """The statistics `fetch_batch` stored in `table`'s schema metadata (empty if none)."""
        raw = (table.schema.metadata or {}).get(STATS_METADATA_KEY)
        return cls.from_json(raw) if raw else cls()


_COUNTERS = ("urls", "fetched", "duplicates", "requests", "robots_requests", "retries", "bytes",
             "deferred")
