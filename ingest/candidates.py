"""Candidate rows, gathered into bounded `pyarrow.Table` batches with CANDIDATE_SCHEMA.

Batches are cut by row count and by bytes so a worker's memory stays bounded by its batch even
when inputs are large (a batch of 256 files of 64 MiB each would be 16 GiB).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
from synshard.transforms.schema import CANDIDATE_SCHEMA

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
        table = pa.Table.from_pylist(self._rows, schema=CANDIDATE_SCHEMA)
        self._rows, self._bytes = [], 0
        return table


def drain(batcher: Batcher, tables: Iterator[pa.Table | None]) -> Iterator[pa.Table]:
    """Yield the non-None tables of `tables`, then whatever `batcher` still holds."""
    for table in tables:
        if table is not None:
            yield table
    last = batcher.flush()
    if last is not None:
        yield last
