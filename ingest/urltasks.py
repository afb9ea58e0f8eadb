"""URL lists as read tasks: chunks of a list, with every copy of a URL in the same chunk.

The list is read once on the driver (small: URLs and labels, no images), sorted by URL so that
repeated URLs are adjacent, and cut into chunks at URL boundaries: the fetcher fetches a URL once
per chunk and hands every copy the same bytes, so the exact dedup settles the copies (duplicates,
or a label conflict when they disagree on the synset), and nothing is fetched twice.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .urllist import list_format, read_url_list

CHUNK_ROWS = 256


@dataclass(frozen=True, eq=False)
class UrlTask:
    uri: str  # the URL list
    start: int  # index of the first row in the list's URL order (a retry task: in its deferred)
    urls: pa.Table = field(repr=False)  # URLLIST rows of this chunk
    retry: bool = False  # a retry task: the deferred URLs of other tasks; it defers nothing

    @property
    def order(self) -> tuple[str, int]:
        return (self.uri, self.start)

    @property
    def name(self) -> str:
        """The task's name among the list's tasks (its statistics file's)."""
        return f"fetch-{'retry-' if self.retry else ''}{self.start:012d}"


def retry_tasks(tasks: Sequence[Any], deferred: Sequence[tuple[int, pa.Table]],
                chunk_rows: int = CHUNK_ROWS) -> list[UrlTask]:
    """The retry tasks for the deferred rows of URL tasks (`(task index, rows)` in task order,
    as the journal gives them back): per URL list, its deferred rows in task order, cut into
    chunks of about `chunk_rows` that never split a URL's rows. The same journal gives the same
    tasks, so a resumed build finds the retry tasks it had finished under the same indices.

    Slow URLs of a whole crawl wait together here, at the end, instead of each holding its read
    task's CPU slot for up to a deadline; such a task gives its CPU back while it waits (the
    stream's `idle`). Each row carries the seconds of its deadline and the timeouts it used
    (`fetchstream.SPENT_COLUMNS`): a URL's deadline spans its task and its retry."""
    by_list: dict[str, list[pa.Table]] = {}
    for index, rows in deferred:
        by_list.setdefault(tasks[index].uri, []).append(rows)
    out = []
    for uri in sorted(by_list):
        table = pa.concat_tables(by_list[uri], promote_options="permissive")
        for start, stop in _chunks(table["url"], chunk_rows):
            out.append(UrlTask(uri, start, _compact(table, start, stop), retry=True))
    return out


def is_url_list(uri: str) -> bool:
    try:
        list_format(uri)
    except Exception:  # noqa: BLE001 - SynshardError: not a list name
        return False
    return True


def plan_url_lists(uris: Sequence[str], storage_options: dict[str, Any] | None = None,
                   limit: int | None = None, chunk_rows: int = CHUNK_ROWS
                   ) -> tuple[list[UrlTask], str]:
    """(tasks, fingerprint of the lists' content) for the URL lists among the sources.

    The list is put in URL order as row numbers, and each task takes its rows straight from the
    list (no sorted copy of the whole list besides its URL column); columns no row fills are left
    out of the tasks (the fetcher reads a missing column as nulls). Planning 100,000 URLs held
    ~420 bytes a URL more of the driver's RSS before (bench/bench_crawl_scale.py --phases)."""
    tasks: list[UrlTask] = []
    digest = hashlib.sha256()
    for uri in sorted(set(uris)):
        table = read_url_list(uri, storage_options)
        if limit is not None:
            table = table.slice(0, limit)
        order = _url_order(table)
        digest.update(uri.encode() + b"\0" + _content_hash(table, order=order).encode())
        table = table.select([c for c in table.column_names
                              if c == "url" or table[c].null_count < table.num_rows])
        for start, stop in _chunks(table["url"].take(order), chunk_rows):
            tasks.append(UrlTask(uri, start, _compact(table, order[start:stop])))
    return tasks, digest.hexdigest()


def _compact(table: pa.Table, rows: pa.Array | int, stop: int | None = None) -> pa.Table:
    """The rows `rows` (indices; or the range [rows, stop)) in buffers of their own. A slice
    would share the whole list's buffers, and pickling it (to send the task to a worker) copies
    all of them: every task would carry the whole list (measured: a 256-row slice of a
    100,000-row list pickles to 4.9 MB)."""
    if isinstance(rows, int):
        rows = pa.array(np.arange(rows, stop, dtype=np.int64))
    return table.take(rows)


def _url_order(table: pa.Table) -> pa.Array:
    """Row numbers in a stable order by URL (rows without one last), then by the list's row."""
    keys = [("url", "ascending")] + ([("row", "ascending")] if "row" in table.column_names else [])
    # (name, order) pairs, nulls last (the default): pyarrow before ~20 takes no per-key null
    # placement, and from 25 a SortOptions-wide one is deprecated (a warning on every build)
    return pc.sort_indices(table, sort_keys=keys)


def _chunks(urls: pa.ChunkedArray | pa.Array | list[str | None], size: int
            ) -> list[tuple[int, int]]:
    """[start, stop) runs of about `size` rows that never split a run of equal URLs.

    On Arrow columns: no Python string per URL (a list of 10 million URLs stays in Arrow)."""
    column = pa.chunked_array([pa.array(urls, pa.string())]) if isinstance(urls, list) else urls
    n = len(column)
    # same[i]: row i has the URL of row i - 1 (nulls never match)
    same = np.zeros(n + 1, dtype=bool)
    if n > 1:
        equal = pc.equal(column.slice(1), column.slice(0, n - 1))
        same[1:n] = pc.fill_null(equal, False).to_numpy(zero_copy_only=False)
    runs, start = [], 0
    while start < n:
        stop = min(start + size, n)
        while stop < n and same[stop]:
            stop += 1
        runs.append((start, stop))
        start = stop
    return runs


def _content_hash(table: pa.Table, rows: int = 4096, order: pa.Array | None = None) -> str:
    """sha256 over each column's `repr(to_pylist())` (in `order`'s row order, if given), built
    `rows` values at a time (the same bytes as the whole list's repr, without a Python object
    per row of the whole list, nor a sorted copy of it)."""
    h = hashlib.sha256()
    for name in sorted(table.column_names):
        h.update(name.encode())
        column = table[name]
        h.update(b"[")
        for start in range(0, len(column), rows):
            part = (column.slice(start, rows) if order is None
                    else column.take(order.slice(start, rows))).to_pylist()
            h.update(((", " if start else "") + ", ".join(map(repr, part))).encode())
        h.update(b"]")
    return h.hexdigest()
