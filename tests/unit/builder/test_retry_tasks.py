"""The journal's deferred URLs and the retry tasks planned from them (no network, no Ray)."""
from __future__ import annotations

import pyarrow as pa

from synshard.builder.pipeline import _with_retries
from synshard.builder.staging import Staging
from synshard.ingest.urltasks import UrlTask
from synshard.shards.staging import META_SCHEMA


def _rows(urls: list[str]) -> pa.Table:
    return pa.table({"url": urls, "_spent_s": [2.0] * len(urls), "_timeouts": [1] * len(urls)})


def test_deferred_rows_become_retry_tasks_after_the_read_tasks_and_resume_finds_them(
        tmp_path) -> None:
    staging = Staging.for_build(str(tmp_path), {}, "f" * 64, 2)
    tasks = [UrlTask("l.csv", 2 * i, pa.table({"url": [f"u{2 * i}", f"u{2 * i + 1}"]}))
             for i in range(3)]
    staging.write_deferred(0, _rows(["u1"]))
    staging.write_deferred(1, _rows([]))  # nothing deferred: no file
    staging.write_deferred(2, _rows(["u4", "u5"]))
    staging.write_deferred(2, _rows(["u5"]))  # a rerun of task 2 replaces its earlier try's
    all_tasks, count, queue = _with_retries(tasks, staging)
    assert count == 1 and queue == [3] and all_tasks[:3] == tasks
    retry = all_tasks[3]
    assert retry.retry and retry.urls["url"].to_pylist() == ["u1", "u5"]
    assert retry.urls["_spent_s"].to_pylist() == [2.0, 2.0]
    # the retry task finished before a kill: the resumed build plans it again, and skips it
    staging.write_task_meta(3, META_SCHEMA.empty_table())
    again, count, queue = _with_retries(tasks, staging)
    assert count == 1 and queue == [] and again[3].urls.equals(retry.urls)
    staging.write_deferred(0, _rows([]))  # a task that deferred nothing on its rerun
    staging.write_deferred(2, _rows([]))
    assert _with_retries(tasks, staging) == (tasks, 0, [])
