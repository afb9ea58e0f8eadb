"""The accepted rows of the decisions as row numbers into the gathered metadata table.

Dropping rows (a rejected copy, a duplicate) costs 8 bytes a row, not a copy of the table: a
step materialises only the columns it reads (`table(columns)`), for the rows still accepted.
Columns the decisions set (split, confidence) are held beside the row numbers and filtered with
them. `Accepted` also answers the few table calls exact dedup makes (num_rows, column_names,
column, take), so it can be handed to it as it is.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pyarrow as pa


class Accepted:
    def __init__(self, meta: pa.Table, rows: np.ndarray) -> None:
        self.meta = meta
        self.rows = rows.astype(np.int64, copy=False)
        self.extra: dict[str, pa.ChunkedArray] = {}

    @property
    def num_rows(self) -> int:
        return int(self.rows.size)

    @property
    def column_names(self) -> list[str]:
        return self.meta.column_names + [c for c in self.extra if c not in self.meta.column_names]

    def column(self, name: str) -> pa.ChunkedArray:
        if name in self.extra:
            return self.extra[name]
        return self.meta.column(name).take(pa.array(self.rows))

    def set(self, name: str, column: pa.ChunkedArray | pa.Array) -> None:
        if len(column) != self.num_rows:
            raise ValueError(f"column {name}: {len(column)} values for {self.num_rows} rows")
        self.extra[name] = column if isinstance(column, pa.ChunkedArray) else \
            pa.chunked_array([column])

    def table(self, columns: Iterable[str] | None = None) -> pa.Table:
        names = list(columns) if columns is not None else self.column_names
        present = set(self.column_names)
        return pa.table({c: self.column(c) for c in names if c in present})

    def take(self, indices: pa.Array | pa.ChunkedArray | np.ndarray,
             columns: Iterable[str] | None = None) -> pa.Table:
        """Some accepted rows (positions among them), every column or `columns`."""
        if isinstance(indices, (pa.Array, pa.ChunkedArray)):
            indices = indices.to_numpy()
        idx = np.asarray(indices, dtype=np.int64)
        names = list(columns) if columns is not None else self.column_names
        base = [c for c in self.meta.column_names if c in names]
        picked = self.meta.select(base).take(pa.array(self.rows[idx]))
        for name, column in self.extra.items():
            if name not in names:
                continue
            values = column.take(pa.array(idx))
            if name in picked.column_names:
                picked = picked.set_column(picked.schema.get_field_index(name), name, values)
            else:
                picked = picked.append_column(name, values)
        return picked.select([c for c in names if c in picked.column_names])

    def where(self, mask: np.ndarray | pa.Array | pa.ChunkedArray) -> pa.Table:
        """The accepted rows where `mask` is true, every column (for the ledger)."""
        return self.take(np.flatnonzero(_bools(mask)))

    def keep(self, mask: np.ndarray | pa.Array | pa.ChunkedArray) -> None:
        """Drop the rows where `mask` is false."""
        keep = _bools(mask)
        if keep.all():
            return
        self.rows = self.rows[keep]
        flags = pa.array(keep)
        self.extra = {k: v.filter(flags) for k, v in self.extra.items()}


def _bools(mask: np.ndarray | pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(mask, (pa.Array, pa.ChunkedArray)):
        return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)
    return np.asarray(mask, dtype=bool)
