"""The SSRF guard: address categories, URL checks and the filtering resolver (no network)."""
from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest
from yarl import URL

from synshard.ingest.netguard import BlockedAddressError, Guard, GuardedResolver, address_category


@pytest.mark.parametrize(
    "address, category",
    [
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "reserved"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "reserved"),  # carrier-grade NAT: not global
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
    ],
)
def test_address_category(address: str, category: str | None) -> None:
    assert address_category(ipaddress.ip_address(address)) == category


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://example.com/a.jpg", None),
        ("https://93.184.216.34/a.jpg", None),
        ("ftp://example.com/a.jpg", "blocked: scheme ftp"),
        ("file:///etc/passwd", "blocked: scheme file"),
        ("gopher://example.com/", "blocked: scheme gopher"),
        ("/relative.jpg", "blocked: scheme none"),
        ("http://10.0.0.1/x.jpg", "blocked: private address"),
        ("http://127.0.0.1:8080/x.jpg", "blocked: loopback address"),
        ("http://[::1]/x.jpg", "blocked: loopback address"),
        ("http://[::ffff:169.254.169.254]/", "blocked: metadata address"),
        ("http://169.254.1.1/", "blocked: link-local address"),
        ("http://user:pw@example.com/x.jpg", "bad url: credentials in url"),
    ],
)
def test_url_reason(url: str, reason: str | None) -> None:
    assert Guard(allow_private_network=False).url_reason(URL(url)) == reason


def test_opt_outs() -> None:
    anything = Guard(allow_private_network=True)
    assert anything.url_reason(URL("http://10.0.0.1/")) is None
    assert anything.url_reason(URL("ftp://10.0.0.1/")) == "blocked: scheme ftp"  # schemes still
    mirror = Guard(False, ("10.1.0.0/16",))
    assert mirror.url_reason(URL("http://10.1.2.3/")) is None
    assert mirror.url_reason(URL("http://10.2.0.1/")) == "blocked: private address"


class FakeResolver:
    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict]:
        return [{"hostname": host, "host": h, "port": port, "family": family, "proto": 0,
                 "flags": 0} for h in self.hosts]

    async def close(self) -> None:
        pass


def test_resolver_drops_refused_addresses() -> None:
    guard = Guard(allow_private_network=False)
    mixed = GuardedResolver(guard, FakeResolver(["10.0.0.5", "93.184.216.34"]))  # type: ignore[arg-type]
    result = asyncio.run(mixed.resolve("rebind.example", 80))
    assert [r["host"] for r in result] == ["93.184.216.34"]


def test_resolver_refuses_a_name_with_only_private_addresses() -> None:
    guard = Guard(allow_private_network=False)
    internal = GuardedResolver(guard, FakeResolver(["169.254.169.254"]))  # type: ignore[arg-type]
    with pytest.raises(BlockedAddressError) as info:
        asyncio.run(internal.resolve("metadata.internal", 80))
    assert info.value.reason == "blocked: metadata address"


@pytest.mark.parametrize("address, opened_by", [
    ("169.254.169.254", ["169.254.169.254/32"]),
    ("::ffff:169.254.169.254", ["169.254.169.254/32"]),
    ("169.254.3.4", ["169.254.0.0/16"]),
    ("fe80::1", ["fe80::/64"]),
    ("fd00:ec2::254", ["fd00:ec2::254/128"]),
    ("100.100.100.200", ["100.100.100.200/32"]),
])
def test_opening_private_networks_keeps_metadata_and_link_local_refused(
        address: str, opened_by: list[str]) -> None:
    blanket = ["0.0.0.0/0", "::/0", "169.0.0.0/8", "100.64.0.0/10", "fd00::/8"]
    assert Guard(True).address_reason(address).startswith("blocked: ")
    assert Guard(True, tuple(blanket)).address_reason(address).startswith("blocked: ")
    assert Guard(False, tuple(blanket)).address_reason(address).startswith("blocked: ")
    for cidr in opened_by:
        assert Guard(False, (cidr,)).address_reason(address) is None
        assert Guard(True, (cidr,)).address_reason(address) is None
    assert Guard(True).address_reason("10.0.0.1") is None  # the mirror the opt-in is for
    # opening link-local does not open the metadata address inside it
    assert Guard(True, ("169.254.0.0/16",)).address_reason("169.254.169.254") == \
        "blocked: metadata address"


def test_resolver_with_private_networks_open_still_refuses_metadata() -> None:
    guard = Guard(allow_private_network=True)
    rebind = GuardedResolver(guard, FakeResolver(["169.254.169.254", "fe80::1"]))  # type: ignore[arg-type]
    with pytest.raises(BlockedAddressError) as info:
        asyncio.run(rebind.resolve("mirror.internal", 80))
    assert info.value.reason == "blocked: link-local address"
