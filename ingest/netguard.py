"""The SSRF guard: which URLs and which network addresses the fetcher may talk to.

A URL list is untrusted input: a line pointing at `http://169.254.169.254/` (cloud metadata) or at
an internal service must not be fetched from inside the cluster. The guard works at two points:

- before a request, on the URL: only http/https, and a host given as an IP literal is checked here
  (aiohttp connects to literals without asking the resolver);
- at resolution: `GuardedResolver` drops every resolved address that is not public, so the
  connector can only ever connect to an address that passed the check (no time-of-check to
  time-of-use gap, DNS rebinding included). A name that resolves only to refused addresses fails
  with `BlockedAddressError` before any connection is attempted.

The fetcher applies the URL check again after every redirect.

Opening the guard for an internal mirror (`allow_private_network`, or `allowed_networks` CIDRs)
never opens the link-local ranges and the cloud metadata addresses (`169.254.169.254` and kin):
those stay refused unless an allowed network inside their own range lists them explicitly
(`169.254.169.254/32` does, `0.0.0.0/0` does not).
"""
from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver
from yarl import URL

if TYPE_CHECKING:
    from aiohttp.abc import ResolveResult  # aiohttp >= 3.10; a plain dict at run time

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOWED_SCHEMES = ("http", "https")
# Ranges that no blanket opt-in opens: (category, range). Metadata first: it is also link-local.
SENSITIVE: tuple[tuple[str, Network], ...] = tuple(
    (name, ipaddress.ip_network(cidr)) for name, cidr in (
        ("metadata", "169.254.169.254/32"),  # AWS, GCP, Azure, OpenStack instance metadata
        ("metadata", "169.254.170.2/32"),  # AWS ECS task metadata
        ("metadata", "fd00:ec2::254/128"),  # AWS IPv6 instance metadata
        ("metadata", "100.100.100.200/32"),  # Alibaba Cloud instance metadata
        ("link-local", "169.254.0.0/16"),
        ("link-local", "fe80::/10"),
    )
)


class BlockedError(OSError):
    """A destination the guard refuses; `reason` is the per-row rejection reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BlockedAddressError(BlockedError):
    """Every address a name resolved to is refused (an OSError, so aiohttp wraps and re-raises it)."""


def address_category(ip: IPAddress) -> str | None:
    """Why `ip` is not a public destination (`loopback`, `private`, ...), or None if it is one.

    IPv4-mapped IPv6 addresses are judged by their IPv4 address, so `::ffff:127.0.0.1` is loopback.
    """
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    checks = (
        ("loopback", ip.is_loopback),
        ("reserved", ip.is_unspecified),  # 0.0.0.0 / :: reach the local host on Linux
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("reserved", not ip.is_global),
    )
    for name, hit in checks:
        if hit:
            return name
    return None


def sensitive_range(ip: IPAddress) -> tuple[str, Network] | None:
    """(`metadata` or `link-local`, its range) when `ip` lies in one that no opt-in opens."""
    return next(((name, net) for name, net in SENSITIVE if ip in net), None)


class Guard:
    """The guard's policy: refuse non-public addresses unless opted out or explicitly allowed."""

    def __init__(self, allow_private_network: bool, allowed_networks: tuple[str, ...] = ()) -> None:
        self.allow_private_network = allow_private_network
        self.allowed: tuple[Network, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in allowed_networks
        )
        self._reasons: dict[str, str | None] = {}  # parsing IPs per request costs measurably
        self._literals: dict[str, bool] = {}  # host -> given as an IP literal (same reason)

    def address_reason(self, address: str) -> str | None:
        """The rejection reason for connecting to `address` (an IP string), or None if allowed."""
        if address not in self._reasons:
            if len(self._reasons) >= 4096:  # bounded: a crawl meets millions of addresses
                self._reasons.clear()
            self._reasons[address] = self._address_reason(address)
        return self._reasons[address]

    def _address_reason(self, address: str) -> str | None:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        except ValueError:
            return "blocked: bad address"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        sensitive = sensitive_range(ip)
        if sensitive is not None:
            name, span = sensitive
            listed = any(ip in net and net.subnet_of(span) for net in self.allowed  # type: ignore[arg-type]
                         if net.version == span.version)
            return None if listed else f"blocked: {name} address"
        if self.allow_private_network or any(ip in net for net in self.allowed):
            return None
        category = address_category(ip)
        return None if category is None else f"blocked: {category} address"

    def url_reason(self, url: URL) -> str | None:
        """The rejection reason for requesting `url` before any connection, or None if allowed."""
        if url.scheme not in ALLOWED_SCHEMES:
            return f"blocked: scheme {url.scheme or 'none'}"
        if not url.raw_host:
            return "bad url: no host"
        if url.user is not None or url.password is not None:
            return "bad url: credentials in url"
        host = url.raw_host.strip("[]")
        literal = self._literals.get(host)
        if literal is None:
            if len(self._literals) >= 4096:  # bounded, as `_reasons`
                self._literals.clear()
            literal = self._literals[host] = _looks_like_ip(host)
        if not literal:
            return None  # a name: checked on the addresses it resolves to
        reason = self.address_reason(host)
        return None if reason == "blocked: bad address" else reason


def _looks_like_ip(host: str) -> bool:
    """Whether aiohttp would connect to `host` as an IP literal (skipping the resolver)."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


class GuardedResolver(AbstractResolver):
    """A resolver that hands aiohttp only the addresses the guard allows."""

    def __init__(self, guard: Guard, inner: AbstractResolver | None = None) -> None:
        self.guard = guard
        self.inner = inner if inner is not None else ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve, then drop refused addresses; raise if none is left."""
        results = await self.inner.resolve(host, port, family)
        allowed = [r for r in results if self.guard.address_reason(r["host"]) is None]
        if not allowed:
            reasons = sorted({self.guard.address_reason(r["host"]) or "" for r in results})
            raise BlockedAddressError(reasons[0] if reasons else "blocked: no address")
        return allowed

    async def close(self) -> None:
        await self.inner.close()
