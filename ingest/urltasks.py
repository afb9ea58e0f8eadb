"""URL lists as read tasks: chunks of a list, with every copy of a URL in the same chunk.

The list is read once on the driver (small: URLs and labels, no images), sorted by URL so that
repeated URLs are adjacent, and cut into chunks at URL boundaries: the fetcher fetches a URL once
per chunk and hands every copy the same bytes, so the exact dedup settles the copies (duplicates,
or a label conflict when they disagree on the synset), and nothing is fetched twice.
"""
from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .urllist import list_format, read_url_list

CHUNK_ROWS = 256


class UrlTask:
    """A chunk of a URL list: `uri` (the list), `start` (index of the first row in the list's URL
    order; a retry task: in its deferred rows), `retry` (a retry task: the deferred URLs of
    other tasks; it defers nothing), and its URLLIST rows, `urls`.

    The rows are held as one Arrow IPC stream compressed with zstd (`packed`) and read back on
    each `urls`: the driver holds every task for the whole build, and a 256-row table was ~60
    bytes a URL of Arrow buffers and ~4 KB of objects a task; packed, ~11 bytes a URL of a
    local crawl's list (a task is also what Ray sends a worker: 16 KB pickled, now ~3)."""

    __slots__ = ("uri", "start", "retry", "packed", "rows")

    def __init__(self, uri: str, start: int, urls: pa.Table, retry: bool = False) -> None:
        self.uri, self.start, self.retry = uri, start, retry
        self.rows = urls.num_rows
        self.packed = _pack(urls)

    @classmethod
    def _packed(cls, uri: str, start: int, packed: bytes, rows: int, retry: bool) -> "UrlTask":
        task = cls.__new__(cls)
        task.uri, task.start, task.packed, task.rows, task.retry = uri, start, packed, rows, retry
        return task

    def __reduce__(self) -> tuple[Any, ...]:
        return (UrlTask._packed, (self.uri, self.start, self.packed, self.rows, self.retry))

    def __repr__(self) -> str:
        return (f"UrlTask(uri={self.uri!r}, start={self.start}, rows={self.rows}"
                f"{', retry=True' if self.retry else ''})")

    @property
    def urls(self) -> pa.Table:
        """The task's rows (decoded afresh on each call)."""
        with pa.ipc.open_stream(self.packed) as reader:
            return reader.read_all()

    @property
    def order(self) -> tuple[str, int]:
        return (self.uri, self.start)

    @property
    def name(self) -> str:
        """The task's name among the list's tasks (its statistics file's)."""
        return f"fetch-{'retry-' if self.retry else ''}{self.start:012d}"


_IPC = pa.ipc.IpcWriteOptions(compression="zstd")


def _pack(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC) as writer:
        writer.write_table(table.combine_chunks())  # one record batch
    return sink.getvalue().to_pybytes()


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
            out.append(UrlTask(uri, start, table.slice(start, stop - start), retry=True))
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
            tasks.append(UrlTask(uri, start, table.take(order[start:stop])))
    return tasks, digest.hexdigest()


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
