"""FetchStream without a network: batches in order as their URLs end, each URL fetched once,
a consumer waiting on slow URLs idle (not one waiting while URLs keep ending), a consumer that gives up cancels the run, slow URLs cut and
handed on with what they spent."""
from __future__ import annotations

import concurrent.futures
import threading
import time

import pyarrow as pa

from synshard.ingest.fetch_options import FetchStats
from synshard.ingest.fetchstream import DEFERRED, SPENT_COLUMNS, FetchStream

JPEG = b"\xff\xd8\xff" + b"\0" * 20


class FakeJob:
    def __init__(self) -> None:
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.later: dict[int, tuple[float, int]] = {}
        self.cuts = 0
        self.cut_event = threading.Event()

    def cut(self) -> None:
        self.cuts += 1
        self.cut_event.set()


class FakeFetcher:
    """Ends URL i after delays[url] seconds (in a thread), in any order; records what it ran.
    A URL whose delay is None never ends by itself: only a cut ends it (DEFERRED, 1.5 s spent);
    a URL named "timeout" ends DEFERRED at once in a run that defers (as a timeout does)."""

    def __init__(self, delays: dict[str, float | None]) -> None:
        self.delays, self.stats, self.started, self.spent = delays, FetchStats(), [], []
        self.jobs: list[FakeJob] = []

    def add_stats(self, run):
        self.stats = self.stats.merge(run)

    def start_run(self, urls, done, spent=None, defer=False, patient=False):
        self.started.append(list(urls))
        self.spent.append(spent)
        self.patient = patient
        job = FakeJob()
        self.jobs.append(job)
        future = job.future
        never = [i for i in range(len(urls)) if self.delays.get(urls[i], 0.0) is None]

        def work() -> None:
            order = sorted((i for i in range(len(urls)) if i not in never),
                           key=lambda i: self.delays.get(urls[i], 0.0))
            t0 = time.monotonic()
            for i in order:
                time.sleep(max(0.0, t0 + self.delays.get(urls[i], 0.0) - time.monotonic()))
                if future.cancelled():
                    return
                if defer and urls[i] == "timeout":
                    job.later[i] = (0.3, 1)
                    done(i, (None, DEFERRED))
                else:
                    done(i, ([JPEG, urls[i].encode()], None) if "bad" not in urls[i]
                         else (None, "http 404"))
            if never:
                job.cut_event.wait()
                for i in never:
                    job.later[i] = (1.5, 0)
                    done(i, (None, DEFERRED))
            future.set_result(FetchStats(requests=len(urls), bytes=123))

        threading.Thread(target=work, daemon=True).start()
        return job


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


def test_a_consumer_waiting_while_urls_keep_ending_is_not_idle() -> None:
    # URLs end every 8 ms for 0.8 s while the consumer waits for the batch that needs them
    # all, longer than its patience: the fetch is in flow, not stuck on slow URLs, so the task
    # keeps its CPU (lending it would make Ray start another worker for nothing)
    urls = [f"u{i}" for i in range(100)]
    calls = []
    stream = FetchStream(FakeFetcher({u: 0.008 * i for i, u in enumerate(urls)}), table(urls),
                         100, idle=lambda: calls.append(1), patience=0.3)
    assert [t.num_rows for t in stream] == [100]
    assert calls == [] and stream.idle_calls == 0


def test_no_fetchable_row_starts_no_run() -> None:
    fetcher = FakeFetcher({})
    out = list(FetchStream(fetcher, table([None, None]), 8))
    assert fetcher.started == [] and out[0]["reason"].to_pylist() == ["no url", "no url"]


def test_a_consumer_that_gives_up_cancels_the_run() -> None:
    fetcher = FakeFetcher({"late": 5.0})
    stream = iter(FetchStream(fetcher, table(["now", "late"]), 1))
    assert next(stream)["source"][0].as_py() == "now"
    stream.close()  # the generator's finally: the run is cancelled, nothing left waiting
    assert fetcher.jobs[0].future.cancelled()


def test_slow_urls_are_cut_after_a_quiet_wait_and_handed_on_with_what_they_spent() -> None:
    urls = ["a", "hang", "hang", "b", "timeout", "c"]
    fetcher = FakeFetcher({"hang": None, "c": 0.1})
    stream = FetchStream(fetcher, table(urls), 2, patience=0.05, defer_after=0.2)
    out = list(stream)
    assert [t["source"].to_pylist() for t in out] == [["a"], ["b"], ["c"]]
    later = stream.deferred
    assert later["url"].to_pylist() == ["hang", "hang", "timeout"]
    assert later[SPENT_COLUMNS[0]].to_pylist() == [1.5, 1.5, 0.3]
    assert later[SPENT_COLUMNS[1]].to_pylist() == [0, 0, 1]
    s = stream.stats
    assert (s.urls, s.fetched, s.deferred, s.duplicates) == (3, 3, 3, 0)


def test_the_time_a_consumer_spends_transforming_is_not_quiet_time() -> None:
    # "a" ends at once; the consumer then transforms it for 1.5 s while "slow" is fetched (it
    # ends at 2 s): it has waited 0.5 s, less than defer_after, when "slow" ends, so nothing
    # is cut although no URL ended for 2 s (on a busy machine slow transforms made such URLs
    # retry tasks' work)
    fetcher = FakeFetcher({"a": 0.0, "slow": 2.0})
    stream = FetchStream(fetcher, table(["a", "slow"]), 1, defer_after=1.0)
    got = []
    for batch in stream:
        got.append(batch["source"][0].as_py())
        if len(got) == 1:
            time.sleep(1.5)
    assert got == ["a", "slow"] and stream.deferred.num_rows == 0
    assert fetcher.jobs[0].cuts == 0


def test_without_defer_after_nothing_is_cut_and_a_retry_run_gets_what_was_spent() -> None:
    fetcher = FakeFetcher({"slow": 0.3})
    retry = table(["slow", "timeout"]).append_column(
        SPENT_COLUMNS[0], pa.array([1.5, 0.3])).append_column(SPENT_COLUMNS[1], pa.array([0, 1]))
    stream = FetchStream(fetcher, retry, 8, patience=0.05)
    rows = pa.concat_tables(list(stream))
    assert rows["source"].to_pylist() == ["slow", "timeout"] and stream.deferred.num_rows == 0
    assert rows["reason"].to_pylist() == [None, None]  # not a deferring run: no DEFERRED
    assert fetcher.spent == [[(1.5, 0), (0.3, 1)]] and fetcher.patient
