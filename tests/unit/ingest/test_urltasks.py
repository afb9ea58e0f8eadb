"""URL-list planning: chunks at URL boundaries, tasks that carry only their own rows, retry tasks
for the deferred rows."""
from __future__ import annotations

import hashlib
import pickle

import pyarrow as pa

from synshard.ingest.urltasks import UrlTask, _chunks, _content_hash, plan_url_lists, retry_tasks


def test_chunks_never_split_a_run_of_equal_urls_and_nulls_never_match() -> None:
    urls = ["a", "a", None, None, "b", "b", "b", "c"]
    assert _chunks(pa.chunked_array([pa.array(urls)]), 1) == [(0, 2), (2, 3), (3, 4), (4, 7),
                                                               (7, 8)]
    assert _chunks(urls, 3) == [(0, 3), (3, 7), (7, 8)]
    assert _chunks([], 3) == []


def test_content_hash_is_the_whole_columns_repr_built_in_parts() -> None:
    table = pa.table({"url": ["a", None, "c'", "d"], "row": [3, 1, 2, 0],
                      "bboxes": pa.array([[[1.0, 2.0, 3.0, 4.0]], None, None, []],
                                         pa.list_(pa.list_(pa.float32(), 4)))})
    whole = hashlib.sha256()
    for name in sorted(table.column_names):
        whole.update(name.encode())
        whole.update(repr(table[name].to_pylist()).encode())
    assert _content_hash(table) == _content_hash(table, rows=1) == whole.hexdigest()


def test_a_task_pickles_its_own_rows_not_the_whole_list(tmp_path) -> None:
    n = 20_000
    path = tmp_path / "urls.csv"
    path.write_text("url,synset\n" + "".join(f"http://h/{i:06d}.jpg,n01440764\n"
                                             for i in range(n)))
    tasks, _ = plan_url_lists([str(path)], chunk_rows=100)
    assert sum(t.urls.num_rows for t in tasks) == n and len(tasks) == n // 100
    whole = len(pickle.dumps(tasks[0].urls.slice(0, 0).schema)) + 30 * n
    assert len(pickle.dumps(tasks[5])) < whole / 20
    assert tasks[5].urls["url"][0].as_py() == "http://h/000500.jpg"
    again = pickle.loads(pickle.dumps(tasks[5]))
    assert again.urls.equals(tasks[5].urls) and (again.uri, again.start, again.rows) == (
        str(path), 500, 100)
    # packed (zstd): a few bytes a URL on the driver, which holds every task through the build
    assert sum(len(t.packed) for t in tasks) < 16 * n  # raw: ~45 B a URL


def test_retry_tasks_group_deferred_rows_by_list_in_task_order_never_splitting_a_url() -> None:
    def rows(urls):
        return pa.table({"url": urls, "_spent_s": [1.0] * len(urls), "_timeouts": [0] * len(urls)})

    tasks = [UrlTask("b.csv", 0, rows([])), UrlTask("a.csv", 0, rows([])),
             UrlTask("b.csv", 256, rows([]))]
    deferred = [(0, rows(["x", "x"])), (1, rows(["p"])), (2, rows(["y", "z"]))]
    out = retry_tasks(tasks, deferred, chunk_rows=1)
    assert [(t.uri, t.start, t.urls["url"].to_pylist(), t.retry) for t in out] == [
        ("a.csv", 0, ["p"], True), ("b.csv", 0, ["x", "x"], True), ("b.csv", 2, ["y"], True),
        ("b.csv", 3, ["z"], True)]
    assert [t.name for t in out[:2]] == ["fetch-retry-000000000000"] * 2
    assert tasks[2].name == "fetch-000000000256"
    assert retry_tasks(tasks, []) == []
