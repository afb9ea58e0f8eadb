"""Parquet from open Python files (fsspec, BytesIO) without handing the file to `pyarrow.dataset`.

`pq.read_table` on a file object scans it through `pyarrow.dataset`, which wraps it in a
`PyReadableFile` held by the scan's fragments; their last reference can be dropped on an Arrow
pool thread after the interpreter began to finalize, where taking the GIL ends the thread and the process aborts
("terminate called without an active exception", exit 134; seen in `synshard get`).
Threaded column reads have the same flaw one level down: a column reader holding a Python-owned
buffer (`pa.BufferReader(bytes)`) can be released on a pool thread after the read returned. So
the file is read with `pq.ParquetFile` on the calling thread (`use_threads=False`): every Arrow
object that refers to a Python one is released there, with the `ParquetFile`.
"""
from __future__ import annotations

from typing import IO, Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq


def read_parquet(f: IO[bytes] | pa.NativeFile | Any, columns: Sequence[str] | None = None,
                 read_dictionary: Sequence[str] | None = None) -> pa.Table:
    """The whole Parquet file open as `f` (or the given `columns`) as a table."""
    with pq.ParquetFile(f, read_dictionary=read_dictionary) as parquet:
        return parquet.read(columns=columns, use_threads=False)
