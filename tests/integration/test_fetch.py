"""The fetcher against a real HTTP server on 127.0.0.1 with faults: each URL's outcome asserted."""
from __future__ import annotations

import dataclasses
import socket
import sys
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pytest

from synshard.ingest.fetch_options import FetchOptions
from synshard.ingest.http import Fetcher, FetchStats, fetch_batch
from synshard.transforms.schema import CANDIDATE_SCHEMA

sys.path.insert(0, str(Path(__file__).parent))
from faultserver import FaultServer, make_jpeg  # noqa: E402

# Fast, but with the guard on: only the test server's address is let through.
OPTS = FetchOptions(
    connect_timeout=1.0,
    read_timeout=0.3,
    total_timeout=0.6,
    retries=2,
    backoff_base=0.01,
    backoff_max=0.05,
    retry_after_max=0.05,
    max_bytes=100_000,
    allowed_networks=("127.0.0.1/32",),
)

CONNECTS: list[object] = []
_RECORDING = [False]


def _audit(event: str, args: tuple) -> None:
    """Record every socket.connect target while a test records (audit hooks cannot be removed)."""
    if _RECORDING[0] and event == "socket.connect":
        CONNECTS.append(args[1])


sys.addaudithook(_audit)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    srv = FaultServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def connects() -> Iterator[list[object]]:
    CONNECTS.clear()
    _RECORDING[0] = True
    yield CONNECTS
    _RECORDING[0] = False


def urls_table(urls: list[str | None], **extra: list) -> pa.Table:
    return pa.table({"url": pa.array(urls, pa.string()), **extra})


def outcomes(table: pa.Table) -> dict[str, str | None]:
    return dict(zip(table.column("source").to_pylist(), table.column("reason").to_pylist()))


EXPECTED = {
    "/img/1.jpg": None,
    "/404": "http 404",
    "/flaky/a": None,
    "/ratelimited/a": None,
    "/down": "http 503",
    "/slow": "timeout",
    "/reset": "connection reset",
    "/huge-declared": "too large",
    "/huge-streamed": "too large",
    "/redirect/3": None,
    "/loop": "too many redirects",
    "/to-private": "blocked: private address",
    "/to-ftp": "blocked: scheme ftp",
    "/page.html": "not an image",
    "/fake.jpg": "not an image",
    "/wrongtype": None,
    "/noai.jpg": "x-robots-tag noai",
    "/noimageai.jpg": "x-robots-tag noimageai",
    "/otherbot.jpg": None,
    "/private/1.jpg": "robots.txt disallows",
}


def test_every_fault_has_its_outcome(server: FaultServer, connects: list[object]) -> None:
    urls = [server.base + path for path in EXPECTED]
    out = fetch_batch(urls_table(urls), OPTS)
    assert out.schema.remove_metadata() == CANDIDATE_SCHEMA
    assert out.num_rows == len(urls)
    assert out.column("source").to_pylist() == urls  # one row per input, same order
    got = {src.removeprefix(server.base): reason for src, reason in outcomes(out).items()}
    assert got == EXPECTED
    data = dict(zip(out.column("source").to_pylist(), out.column("data").to_pylist()))
    assert data[server.base + "/img/1.jpg"] == make_jpeg(1)
    assert data[server.base + "/redirect/3"] == make_jpeg(7)  # the chain's end
    assert data[server.base + "/wrongtype"] == make_jpeg(6)
    assert all(data[server.base + p] is None for p, r in EXPECTED.items() if r)
    # retries: 500 then 200 and 429 then 200 took two requests; 503 forever took 1 + retries;
    # other 4xx are not retried; robots.txt was fetched once; a disallowed path never requested.
    hits = server.hits
    assert hits["/flaky/a"] == 2 and hits["/ratelimited/a"] == 2
    assert hits["/down"] == 1 + OPTS.retries
    assert hits["/404"] == 1
    assert hits["/loop"] == OPTS.max_redirects + 1
    assert hits["/robots.txt"] == 1
    assert hits["/private/1.jpg"] == 0
    # The redirect to 10.0.0.1 was refused before any connection was attempted.
    assert not [a for a in connects if isinstance(a, tuple) and a[0] == "10.0.0.1"]
    stats = FetchStats.from_table(out)
    assert stats.urls == len(urls) and stats.fetched == list(EXPECTED.values()).count(None)
    assert stats.retries >= 2 + 2 * 2  # flaky, ratelimited, and /down, /slow, /reset twice each
    assert stats.robots_requests == 1 and stats.requests > len(urls)
    assert stats.failures["http 503"] == 1
    assert sum(stats.failures.values()) == len(urls) - stats.fetched


def test_loopback_refused_without_opt_in(server: FaultServer, connects: list[object]) -> None:
    port = server.server_address[1]
    urls = [server.base + "/img/1.jpg", f"http://localhost:{port}/img/2.jpg",
            f"http://[::1]:{port}/img/3.jpg", f"http://0.0.0.0:{port}/img/4.jpg"]
    out = fetch_batch(urls_table(urls), FetchOptions(connect_timeout=1.0))
    reasons = out.column("reason").to_pylist()
    assert reasons[:3] == ["blocked: loopback address"] * 3
    assert reasons[3] == "blocked: reserved address"
    assert out.column("data").null_count == 4
    assert sum(server.hits.values()) == 0 and connects == []  # nothing was even attempted


def test_allow_private_network_opts_out(server: FaultServer) -> None:
    opts = FetchOptions(allow_private_network=True, connect_timeout=1.0)
    out = fetch_batch(urls_table([server.base + "/img/1.jpg"]), opts)
    assert out.column("reason").to_pylist() == [None]
    assert out.column("data").to_pylist() == [make_jpeg(1)]


def test_duplicates_fetched_once_and_bad_rows_pass_through(server: FaultServer) -> None:
    img = server.base + "/img/2.jpg"
    table = urls_table(
        [img, None, img, server.base + "/img/3.jpg"],
        synset=["n1", "n2", "n3", "n4"],
        reason=[None, None, None, "bad bboxes: not JSON"],
        row=pa.array([0, 1, 2, 3], pa.int64()),
    )
    out = fetch_batch(table, OPTS)
    assert out.column("reason").to_pylist() == [None, "no url", None, "bad bboxes: not JSON"]
    assert out.column("data").to_pylist()[0] == out.column("data").to_pylist()[2] == make_jpeg(2)
    assert out.column("synset").to_pylist() == ["n1", "n2", "n3", "n4"]
    assert out.column("source").to_pylist()[1] == "(no url: row 1)"
    assert server.hits["/img/2.jpg"] == 1 and server.hits["/img/3.jpg"] == 0
    assert FetchStats.from_table(out).duplicates == 1


def test_fetcher_caches_robots_across_batches_and_merges_stats(server: FaultServer) -> None:
    fetcher = Fetcher(OPTS)
    first = fetcher(urls_table([server.base + "/img/1.jpg"]))
    second = fetcher(urls_table([server.base + "/private/2.jpg", server.base + "/404"]))
    assert second.column("reason").to_pylist() == ["robots.txt disallows", "http 404"]
    assert server.hits["/robots.txt"] == 1
    total = FetchStats.from_table(first).merge(FetchStats.from_table(second))
    assert fetcher.stats == total
    assert total.urls == 3 and total.fetched == 1
    assert total.failures == {"http 404": 1, "robots.txt disallows": 1}


def test_robots_and_x_robots_tag_can_be_turned_off(server: FaultServer) -> None:
    opts = FetchOptions(**{**OPTS.__dict__, "respect_robots_txt": False,
                           "respect_x_robots_tag": False})
    out = fetch_batch(urls_table([server.base + "/private/1.jpg", server.base + "/noai.jpg"]), opts)
    assert out.column("reason").to_pylist() == [None, None]
    assert server.hits["/robots.txt"] == 0


def test_connection_refused_is_a_connection_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = fetch_batch(urls_table([f"http://127.0.0.1:{port}/x.jpg"]),
                      FetchOptions(**{**OPTS.__dict__, "respect_robots_txt": False}))
    assert out.column("reason").to_pylist() == ["connection error"]


def _crawl_with_hanging(server: FaultServer, opts: FetchOptions) -> tuple[pa.Table, FetchStats]:
    """60 good URLs and 5 that hang (the server answers them after 30 s), one batch."""
    good = [f"{server.base}/img/{i}.jpg" for i in range(60)]
    hanging = [f"{server.base}/hang/{i}" for i in range(5)]
    urls = good[:20] + hanging + good[20:]  # hanging URLs early: they get slots first
    out = Fetcher(opts).fetch_batch(urls_table(urls))
    return out, FetchStats.from_table(out)


def test_hanging_urls_are_rejected_at_their_deadline_and_never_hold_the_rest(
        server: FaultServer) -> None:
    # Each attempt may wait 30 s of silence; the per-URL deadline (5 s) ends the hanging ones
    # (long enough that a good URL queued behind them meets it on a loaded machine).
    opts = dataclasses.replace(OPTS, read_timeout=30.0, total_timeout=30.0, deadline=5.0,
                               per_host=4, concurrency=4)
    out, stats = _crawl_with_hanging(server, opts)
    reasons = outcomes(out)
    hanging = {u: r for u, r in reasons.items() if "/hang/" in u}
    assert set(hanging.values()) == {"deadline"}, hanging
    bad_good = {u: r for u, r in reasons.items() if "/hang/" not in u and r is not None}
    assert not bad_good, bad_good
    assert stats.urls == 65 and stats.fetched == 60 and stats.failures == {"deadline": 5}
    assert out.num_rows == 65
    # a hanging URL got one request: its deadline fell within it
    assert all(server.hits[f"/hang/{i}"] == 1 for i in range(5))


def test_a_timeout_is_retried_once_and_only_after_the_batch_had_its_first_tries(
        server: FaultServer) -> None:
    opts = dataclasses.replace(OPTS, read_timeout=0.3, total_timeout=0.3, deadline=60.0,
                               retries=3, per_host=4, concurrency=4)
    order: list[str] = []
    recording = server.count

    def count(path: str) -> int:
        order.append(path)
        return recording(path)

    server.count = count  # type: ignore[method-assign]
    out, stats = _crawl_with_hanging(server, opts)
    hanging = {u: r for u, r in outcomes(out).items() if "/hang/" in u}
    assert set(hanging.values()) == {"timeout"}, hanging
    assert stats.fetched == 60 and stats.failures == {"timeout": 5}
    # retries=3 allows three more tries of a 5xx, but a timeout gets exactly one more
    assert all(server.hits[f"/hang/{i}"] == 2 for i in range(5))
    # ...and only after every good URL had been requested (not in place, holding a slot)
    last_good = max(i for i, p in enumerate(order) if p.startswith("/img/"))
    second_tries = [i for i, p in enumerate(order) if p.startswith("/hang/")][5:]
    assert min(second_tries) > last_good, order


def test_a_streamed_task_gives_fetch_batchs_rows_in_order_batch_by_batch(
        server: FaultServer) -> None:
    urls = [server.base + path for path in EXPECTED] + [server.base + "/img/1.jpg"]  # a repeat
    fetcher = Fetcher(OPTS)
    try:
        idle: list[int] = []
        stream = fetcher.stream(urls_table(urls), 4, idle=lambda: idle.append(1))
        parts = list(stream)
    finally:
        fetcher.close()
    assert [p.num_rows for p in parts] == [4] * (len(urls) // 4) + [len(urls) % 4] * bool(
        len(urls) % 4)
    whole = pa.concat_tables([p.replace_schema_metadata(None) for p in parts])
    assert whole.column("source").to_pylist() == urls
    got = {src.removeprefix(server.base): r for src, r in outcomes(whole).items()}
    assert got == EXPECTED
    assert whole.column("data")[len(urls) - 1].as_py() == make_jpeg(1)
    assert server.hits["/img/1.jpg"] == 1  # the repeat was fetched once
    stats = stream.stats
    assert stats.urls == len(urls) and stats.duplicates == 1 and stats.robots_requests == 1
    assert stats.fetched == list(EXPECTED.values()).count(None) + 1


def test_a_deferring_stream_hands_slow_urls_on_and_the_patient_retry_gets_them(
        server: FaultServer) -> None:
    """A read task's stream (defer_after set) cuts URLs that keep it waiting, and a URL that times
    out is not retried in place; the retry stream over the deferred rows makes one patient attempt
    each (past read_timeout, within the deadline): the slow responders (1.5 s) are kept."""
    server.hang_seconds = 1.5
    opts = dataclasses.replace(OPTS, read_timeout=0.5, total_timeout=0.5, deadline=20.0,
                               defer_after=0.2)
    good = [f"{server.base}/img/{i}.jpg" for i in range(30)]
    hanging = [f"{server.base}/hang/{i}" for i in range(3)]
    fetcher = Fetcher(opts)
    try:
        stream = fetcher.stream(urls_table(good[:10] + hanging + good[10:]), 8, defer=True)
        first = pa.concat_tables(list(stream))
        assert sorted(first["source"].to_pylist()) == sorted(good)
        assert set(first["reason"].to_pylist()) == {None}
        assert sorted(stream.deferred["url"].to_pylist()) == hanging
        assert stream.stats.deferred == 3 and stream.stats.urls == 30
        assert all(server.hits[f"/hang/{i}"] == 1 for i in range(3))
        retry = fetcher.stream(stream.deferred, 8)  # the retry task's stream
        second = pa.concat_tables(list(retry))
        assert outcomes(second) == {u: None for u in hanging}
        assert all(server.hits[f"/hang/{i}"] == 2 for i in range(3))
    finally:
        fetcher.close()
