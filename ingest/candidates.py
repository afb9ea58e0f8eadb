"""Candidate rows, gathered into bounded `pyarrow.Table` batches with CANDIDATE_SCHEMA.

Batches are cut by row count and by bytes so a worker's memory stays bounded by its batch even
when inputs are large (a batch of 256 files of 64 MiB each would be 16 GiB).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from synshard.transforms.schema import CANDIDATE_SCHEMA

from .fetch_options import STATS_METADATA_KEY, FetchStats

MAX_ROWS = 256
MAX_BYTES = 64 << 20


@dataclass
class Batcher:
    """Collects candidate rows; `add` returns a full table when a bound is reached, else None."""

    max_rows: int = MAX_ROWS
    max_bytes: int = MAX_BYTES
    _rows: list[dict] = field(default_factory=list)
    _bytes: int = 0

    def add(
        self,
        source: str,
        synset: str | None,
        split: str | None,
        data: bytes | None = None,
        reason: str | None = None,
    ) -> pa.Table | None:
        """Add one row (`data` None when `reason` says why it was not read)."""
        self._rows.append(
            {"source": source, "synset": synset, "split": split, "data": data, "reason": reason}
        )
        self._bytes += len(data) if data else 0
        if len(self._rows) >= self.max_rows or self._bytes >= self.max_bytes:
            return self.flush()
        return None

    def flush(self) -> pa.Table | None:
        """The rows gathered so far as a table (None when there are none), and start afresh."""
        if not self._rows:
            return None
        rows, n = self._rows, len(self._rows)
        self._rows, self._bytes = [], 0
        # column by column, the bodies copied once (`_binary_array`): `Table.from_pylist` grew
        # the data column by doubling, ~40% of a folder read task's own CPU besides the reads
        given = {name: pa.array([r[name] for r in rows], pa.string())
                 for name in ("source", "synset", "split", "reason")}
        given["data"] = _binary_array([r["data"] if r["data"] is None or isinstance(r["data"], bytes)
                                       else bytes(r["data"]) for r in rows])
        return pa.table({f.name: given[f.name] if f.name in given else pa.nulls(n, f.type)
                         for f in CANDIDATE_SCHEMA}, schema=CANDIDATE_SCHEMA)


def drain(batcher: Batcher, tables: Iterator[pa.Table | None]) -> Iterator[pa.Table]:
    """Yield the non-None tables of `tables`, then whatever `batcher` still holds."""
    for table in tables:
        if table is not None:
            yield table
    last = batcher.flush()
    if last is not None:
        yield last


def column_or_nulls(table: pa.Table, name: str, n: int) -> pa.ChunkedArray | pa.Array:
    """The column `name` of `table`, or `n` null strings where the list has no such column."""
    return table.column(name) if name in table.column_names else pa.nulls(n, pa.string())


Body = bytes | Sequence[bytes]  # a body, or the chunks it arrived in


def _binary_array(data: Sequence[Body | None]) -> pa.Array:
    """`pa.array(data, pa.binary())` with one exact-size copy of the bodies.

    pa.array grows its value buffer by doubling, copying a batch's bodies (often 25-200 MB) again
    at each step: measured at half the fetcher's client CPU on a batch of 2,000 photos. A body
    may be given as its chunks: they are copied once, straight into the column.
    """
    parts = [(d,) if isinstance(d, (bytes, bytearray, memoryview)) else d for d in data]
    sizes = np.fromiter((sum(map(len, p)) if p is not None else 0 for p in parts), np.int64,
                        len(parts))
    if sizes.sum() >= 2**31 - 1:  # past binary's int32 offsets: let Arrow chunk it
        return pa.array([None if p is None else b"".join(p) for p in parts], pa.binary())
    offsets = np.zeros(len(parts) + 1, np.int32)
    np.cumsum(sizes, out=offsets[1:])
    present = [p is not None for p in parts]
    # a boolean array's value bitmap is exactly the validity bitmap wanted
    validity = None if all(present) else pa.array(present, pa.bool_()).buffers()[1]
    values = pa.py_buffer(b"".join(itertools.chain.from_iterable(p for p in parts if p is not None)))
    return pa.Array.from_buffers(pa.binary(), len(parts), [validity, pa.py_buffer(offsets), values])


def _body_column(data: Sequence[Sequence[bytes] | None]) -> pa.ChunkedArray:
    """Fetched bodies (each the chunks it arrived in, or None) as a binary column that copies
    none of the bodies that arrived in one piece: one chunk of the column per body, over the
    bytes it arrived in (a body in several pieces is joined: its one copy); a run of rows
    without a body is one all-null chunk. The consumer reads the rows out (to_pylist, the
    transform's one copy) and never needs them contiguous: copying a batch's bodies into one
    buffer (`_binary_array`) cost a 10,000-photo fetch 15 us a URL, a tenth of its throughput
    (bench/bench_fetch.py)."""
    sizes = np.fromiter((sum(map(len, p)) if p is not None else 0 for p in data), np.int64,
                        len(data))
    offsets = np.zeros((len(data), 2), np.int32)  # row k's offsets: [0, size]
    offsets[:, 1] = sizes  # a body is below 2 GiB (FetchOptions.max_bytes)
    spans = pa.py_buffer(offsets)
    chunks: list[pa.Array] = []
    nulls = 0
    for k, parts in enumerate(data):
        if parts is None:
            nulls += 1
            continue
        if nulls:
            chunks.append(pa.nulls(nulls, pa.binary()))
            nulls = 0
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        chunks.append(pa.Array.from_buffers(pa.binary(), 1,
                                            [None, spans.slice(8 * k, 8), pa.py_buffer(body)]))
    if nulls or not chunks:
        chunks.append(pa.nulls(nulls, pa.binary()))
    return pa.chunked_array(chunks, pa.binary())


def fetched_candidates(
    urls: pa.Table, wanted: list[Any], data: list[Any], reasons: list[Any], stats: FetchStats
) -> pa.Table:
    """A fetched URL-list batch as CANDIDATE_SCHEMA rows (one per input row, bodies or reasons),
    with the batch's `FetchStats` in the schema metadata."""
    n = urls.num_rows
    rows = column_or_nulls(urls, "row", n).to_pylist()
    sources = [u or (f"(no url: row {r})" if r is not None else "(unreadable row)")
               for u, r in zip(wanted, rows)]
    bboxes = column_or_nulls(urls, "bboxes", n) if "bboxes" in urls.column_names else pa.nulls(n)
    columns = {
        "source": pa.array(sources, pa.string()),
        "synset": column_or_nulls(urls, "synset", n).cast(pa.string()),
        "split": column_or_nulls(urls, "split", n).cast(pa.string()),
        "data": _body_column(data),
        "bboxes": bboxes.cast(CANDIDATE_SCHEMA.field("bboxes").type),
        "license": column_or_nulls(urls, "license", n).cast(pa.string()),
        "attribution": column_or_nulls(urls, "attribution", n).cast(pa.string()),
        "reason": pa.array(reasons, pa.string()),
    }
    table = pa.table(columns, schema=CANDIDATE_SCHEMA)
    return table.replace_schema_metadata({STATS_METADATA_KEY: stats.to_json()})
