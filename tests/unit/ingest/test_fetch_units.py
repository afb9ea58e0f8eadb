"""Pure parts of the fetcher: sniffing, Retry-After, error mapping, rates, stats, options."""
from __future__ import annotations

import asyncio
import io
import socket
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import aiohttp
import pyarrow as pa
import pytest
from hypothesis import given, strategies as st
from PIL import Image

from synshard.ingest.fetch_options import FetchOptions, FetchStats
from synshard.ingest.http import HostRate, fetch_batch
from synshard.ingest.replies import Transient, classify_error, parse_retry_after, sniff_image
from synshard.ingest.netguard import BlockedAddressError
from synshard.transforms.errors import SynshardError


def encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt, name", [("JPEG", "jpeg"), ("PNG", "png"), ("GIF", "gif"),
                                       ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tiff")])
def test_sniff_real_images(fmt: str, name: str) -> None:
    assert sniff_image(encoded(fmt)) == name


@pytest.mark.parametrize("body", [b"", b"<!DOCTYPE html><html>", b"<html>", b'{"error": 1}',
                                  b"\xef\xbb\xbf<?xml version='1.0'?><svg/>", b"GIF8"])
def test_sniff_rejects_non_images(body: bytes) -> None:
    assert sniff_image(body) is None


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 31
    past = format_datetime(datetime(2000, 1, 1, tzinfo=timezone.utc), usegmt=True)
    assert parse_retry_after(past) == 0.0


class _Key:  # what ClientConnectorError wants as its connection key
    ssl = None
    host, port = "h", 80


@pytest.mark.parametrize(
    "exc, reason, transient",
    [
        (asyncio.TimeoutError(), "timeout", True),
        (aiohttp.ServerTimeoutError(), "timeout", True),
        (aiohttp.ServerDisconnectedError(), "connection reset", True),
        (aiohttp.ClientPayloadError("cut"), "connection reset", True),
        (aiohttp.ClientOSError(104, "reset"), "connection reset", True),
        (aiohttp.ClientConnectorError(_Key(), ConnectionRefusedError(111, "refused")),  # type: ignore[arg-type]
         "connection error", True),
        (aiohttp.ClientConnectorError(_Key(), socket.gaierror(-2, "unknown")),  # type: ignore[arg-type]
         "dns error", False),
        (aiohttp.ClientConnectorError(_Key(), BlockedAddressError("blocked: private address")),  # type: ignore[arg-type]
         "blocked: private address", False),
    ],
)
def test_classify_error(exc: BaseException, reason: str, transient: bool) -> None:
    result = classify_error(exc)
    assert result.reason == reason
    assert isinstance(result, Transient) is transient


def test_host_rate_spaces_requests_per_host() -> None:
    rate = HostRate(rps=4)
    assert [rate.delay("a", 10.0) for _ in range(3)] == [0.0, 0.25, 0.5]
    assert rate.delay("b", 10.0) == 0.0
    assert rate.delay("a", 20.0) == 0.0  # idle long enough: no debt carried
    assert HostRate(None).delay("a", 0.0) == 0.0


def test_host_rate_forgets_hosts_whose_slot_has_passed_not_the_others() -> None:
    rate = HostRate(rps=1, size=3)
    for host, now in (("a", 0.0), ("b", 0.0), ("a", 0.5), ("c", 0.5)):
        rate.delay(host, now)  # "a" owes until 2.0, "b" until 1.0, "c" until 1.5
    assert rate.delay("d", 1.5) == 0.0  # full: "b" and "c" (slots passed) are forgotten
    assert len(rate._next) == 2 and rate.delay("a", 1.5) == 0.5
    owed = HostRate(rps=1, size=2)
    assert [owed.delay(h, 0.0) for h in "abc"] == [0.0, 0.0, 0.0]  # all owed: the size grows
    assert owed.size == 4 and owed.delay("a", 0.0) == 1.0


counts = st.integers(min_value=0, max_value=10**6)
stats_strategy = st.builds(
    FetchStats, urls=counts, fetched=counts, requests=counts, retries=counts, bytes=counts,
    failures=st.dictionaries(st.sampled_from(["http 404", "timeout", "too large"]), counts),
)


@given(stats_strategy, stats_strategy, stats_strategy)
def test_stats_merge_is_an_associative_commutative_sum(
    a: FetchStats, b: FetchStats, c: FetchStats
) -> None:
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(FetchStats()) == FetchStats(**{**a.__dict__, "failures": dict(sorted(a.failures.items()))})
    assert FetchStats.from_json(a.merge(b).to_json()) == a.merge(b)
    assert a.merge(b).bytes == a.bytes + b.bytes


@pytest.mark.parametrize("bad", [{"concurrency": 0}, {"retries": -1}, {"total_timeout": 0},
                                 {"rps_per_host": 0}, {"allowed_networks": ("not-a-net",)}])
def test_options_are_validated(bad: dict) -> None:
    with pytest.raises(SynshardError):
        FetchOptions(**bad)


def test_fetch_batch_without_network_accounts_for_every_row() -> None:
    urls = pa.table({"url": ["ftp://example.com/a.jpg", "", None, "http://10.0.0.1/x.jpg",
                             "http://[::1]/y", "not a url at all"]})
    out = fetch_batch(urls, FetchOptions())
    assert out.column("reason").to_pylist() == [
        "blocked: scheme ftp", "no url", "no url", "blocked: private address",
        "blocked: loopback address", "blocked: scheme none"]
    stats = FetchStats.from_table(out)
    assert stats.requests == 0 and stats.urls == 6 and sum(stats.failures.values()) == 6


def test_fetch_batch_of_nothing() -> None:
    out = fetch_batch(pa.table({"url": pa.array([], pa.string())}), FetchOptions())
    assert out.num_rows == 0 and FetchStats.from_table(out).urls == 0
