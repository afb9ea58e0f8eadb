"""FetchStream without a network: batches in order as their URLs end, each URL fetched once,
a waiting consumer's `idle` called, a consumer that gives up cancels the run."""
from __future__ import annotations

import concurrent.futures
import threading
import time

import pyarrow as pa

from synshard.ingest.fetch_options import FetchStats
from synshard.ingest.fetchstream import FetchStream

JPEG = b"\xff\xd8\xff" + b"\0" * 20


class FakeFetcher:
    """Ends URL i after delays[url] seconds (in a thread), in any order; records what it ran."""

    def __init__(self, delays: dict[str, float]) -> None:
        self.delays, self.stats, self.started = delays, FetchStats(), []

    def start_run(self, urls, done):
        self.started.append(list(urls))
        future: concurrent.futures.Future = concurrent.futures.Future()

        def work() -> None:
            order = sorted(range(len(urls)), key=lambda i: self.delays.get(urls[i], 0.0))
            t0 = time.monotonic()
            for i in order:
                time.sleep(max(0.0, t0 + self.delays.get(urls[i], 0.0) - time.monotonic()))
                if future.cancelled():
                    return
                done(i, ([JPEG, urls[i].encode()], None) if "bad" not in urls[i]
                     else (None, "http 404"))
            future.set_result(FetchStats(requests=len(urls), bytes=123))

        threading.Thread(target=work, daemon=True).start()
        return future


def table(urls):
    return pa.table({"url": pa.array(urls, pa.string())})


def test_batches_come_in_order_with_every_row_and_duplicates_fetched_once() -> None:
    urls = ["a", "a", "b", None, "bad1", "c", "d", "a", "e"]
    fetcher = FakeFetcher({"a": 0.2, "e": 0.0})
    stream = FetchStream(fetcher, table(urls), 4)
    out = list(stream)
    assert [t.num_rows for t in out] == [4, 4, 1]
    rows = pa.concat_tables(out)
    assert rows["source"].to_pylist()[:3] == ["a", "a", "b"]
    data = rows["data"].to_pylist()
    assert data[0] == data[1] == data[7] == JPEG + b"a"
    assert rows["reason"].to_pylist() == [None, None, None, "no url", "http 404", None, None, None,
                                          None]
    assert fetcher.started == [["a", "b", "bad1", "c", "d", "e"]]
    s = stream.stats
    assert (s.urls, s.fetched, s.duplicates, s.requests, s.bytes) == (9, 7, 2, 6, 123)
    assert s.failures == {"http 404": 1, "no url": 1}
    assert fetcher.stats.urls == 9  # the fetcher's running total


def test_a_consumer_waiting_on_slow_urls_is_idle_meanwhile() -> None:
    calls = []
    stream = FetchStream(FakeFetcher({"slow": 0.8}), table(["x", "slow", "y"]), 1,
                         idle=lambda: (calls.append(1), time.sleep(0.05)), patience=0.1)
    assert [t["source"][0].as_py() for t in stream] == ["x", "slow", "y"]
    assert calls and stream.idle_calls == len(calls)


def test_no_fetchable_row_starts_no_run() -> None:
    fetcher = FakeFetcher({})
    out = list(FetchStream(fetcher, table([None, None]), 8))
    assert fetcher.started == [] and out[0]["reason"].to_pylist() == ["no url", "no url"]


def test_a_consumer_that_gives_up_cancels_the_run() -> None:
    fetcher = FakeFetcher({"late": 5.0})
    stream = iter(FetchStream(fetcher, table(["now", "late"]), 1))
    assert next(stream)["source"][0].as_py() == "now"
    stream.close()  # the generator's finally: the run is cancelled, nothing left waiting
