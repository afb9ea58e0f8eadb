"""Rows of a large chunked Arrow table, taken chunk by chunk.

pyarrow 26's `ChunkedArray.take` / `Table.take` with many chunks (a gathered table of 10M rows
has ~80) costs 3-7x what per-chunk takes do for string columns (measured: 200,000 of 10M
sha256 hex strings, 0.6-1.4 s against 0.2 s): the decisions take a few percent of the rows
(copies, their survivors) from such tables, so they take them here.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pyarrow as pa

GROUP_ROWS = 1 << 18  # rows of small chunks joined for one take (take_column)


def take_rows(table: pa.Table, rows: np.ndarray, columns: Iterable[str] | None = None
              ) -> pa.Table:
    """`table.select(columns).take(rows)`, the same rows in the same order."""
    names = list(columns) if columns is not None else table.column_names
    rows = np.asarray(rows, dtype=np.int64)
    return pa.table({name: take_column(table.column(name), rows) for name in names})


def take_column(column: pa.ChunkedArray, rows: np.ndarray) -> pa.ChunkedArray:
    """`column.take(rows)`: the indices split by chunk group (after sorting them if need be),
    one take per group, then put back in the caller's order.

    A group is the chunks that start in one window of GROUP_ROWS rows: a gathered table has a
    chunk per read task (256 rows, ~39,000 at 10M), and a take per chunk would be a Python
    call per chunk; a group's chunks are joined first (a transient of one group, not of the
    column, as `ChunkedArray.take` joins them all)."""
    rows = np.asarray(rows, dtype=np.int64)
    if column.num_chunks <= 1 or rows.size == 0:
        return column.take(pa.array(rows))
    dictionary = shared_dictionary(column)
    if dictionary is not None:  # take the indices only (joining dictionary chunks unifies
        # their dictionaries: ~3 GB at 10M rows for a gather's 39,000 staged paths)
        indices = pa.chunked_array([c.indices for c in column.chunks], column.type.index_type)
        return pa.chunked_array([pa.DictionaryArray.from_arrays(c, dictionary)
                                 for c in take_column(indices, rows).chunks], column.type)
    ascending = bool(np.all(rows[1:] >= rows[:-1]))
    order = None if ascending else np.argsort(rows, kind="stable")
    ranked = rows if ascending else rows[order]
    chunks = column.chunks  # (a new list of wrappers at every access: read it once)
    bounds = np.cumsum([0] + [len(c) for c in chunks])
    if ranked[0] < 0 or ranked[-1] >= bounds[-1]:
        raise IndexError(f"row index out of bounds (table of {bounds[-1]} rows)")
    window = bounds[:-1] // GROUP_ROWS
    first = np.flatnonzero(np.append(True, window[1:] != window[:-1]))  # each group's 1st chunk
    ends = np.append(first[1:], len(chunks))
    cut = np.searchsorted(ranked, np.append(bounds[first], bounds[-1]))
    parts = []
    for g in np.flatnonzero(cut[1:] > cut[:-1]).tolist():
        lo, hi = int(first[g]), int(ends[g])
        values = chunks[lo] if hi - lo == 1 else pa.concat_arrays(chunks[lo:hi])
        parts.append(values.take(pa.array(ranked[cut[g]:cut[g + 1]] - bounds[lo])))
    taken = pa.chunked_array(parts, column.type)
    if ascending:
        return taken
    back = np.empty(rows.size, np.int64)
    back[order] = np.arange(rows.size)
    return pa.chunked_array([taken.combine_chunks().take(pa.array(back))], column.type)


def shared_dictionary(column: pa.ChunkedArray) -> pa.Array | None:
    """The one dictionary every chunk of a dictionary column points at, else None."""
    if not pa.types.is_dictionary(column.type):
        return None
    chunks = column.chunks
    first = chunks[0].dictionary
    mark = (len(first), first.offset, first.buffers()[-1].address)
    for c in chunks:
        d = c.dictionary
        if (len(d), d.offset, d.buffers()[-1].address) != mark:
            return None
    return first


def take_meta(meta: Any, rows: np.ndarray, columns: Iterable[str]) -> pa.Table:
    """Some rows and columns of a table, or of anything with `take(rows, columns)` (the build's
    row view, synshard.builder.decide.rows.Accepted, which takes them from its base table)."""
    if isinstance(meta, pa.Table):
        return take_rows(meta, rows, columns)
    return meta.take(np.asarray(rows, dtype=np.int64), list(columns))
