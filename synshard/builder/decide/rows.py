"""The accepted rows of the decisions as row numbers into the gathered metadata table.

Dropping rows (a rejected copy, a duplicate) costs 8 bytes a row, not a copy of the table: a
step materialises only the columns it reads (`table(columns)`), for the rows still accepted.
Columns the decisions set (split, confidence) are held beside the row numbers and filtered with
them. `Accepted` also answers the few table calls exact dedup makes (num_rows, column_names,
column, take), so it can be handed to it as it is.

The gathered table holds some columns compactly (shards/staging.py `decide_schema`): what a step
reads of them comes back plain (`plain`): sha256 as hex strings, synset as strings, `key` and
`source` made again (from synset and sha256; from source_dir and source_name); only
`staged_path` stays dictionary-encoded (assembly's locator, read by nothing else).
"""
from __future__ import annotations

from typing import Collection, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synshard.builder.decide.memory import release
from synshard.shards.staging import SOURCE_PARTS, derive_keys, derive_sources, sha256_hex
from synshard.transforms.takes import take_column, take_rows

KEEP_ENCODED = ("staged_path",)
TAKE_BATCH = 1 << 18  # rows a large take makes at a time


class Accepted:
    def __init__(self, meta: pa.Table, rows: np.ndarray) -> None:
        self.meta = meta
        self.rows = rows.astype(np.int32 if meta.num_rows < 2**31 else np.int64, copy=False)
        self.extra: dict[str, pa.ChunkedArray] = {}

    @property
    def num_rows(self) -> int:
        return int(self.rows.size)

    @property
    def column_names(self) -> list[str]:
        names = _names(list(self.meta.column_names))  # (as the gathered table's schema had it)
        return names + [c for c in self.extra if c not in names]

    def column(self, name: str) -> pa.ChunkedArray:
        if name in self.extra:
            return _plain_column(name, self.extra[name])
        if name in _derivable(self.meta.column_names):
            return self.take(np.arange(self.num_rows), [name]).column(name)
        return _plain_column(name, take_column(self.meta.column(name), self.rows))

    def set(self, name: str, column: pa.ChunkedArray | pa.Array) -> None:
        """A column the decisions set, one value per accepted row; strings (splits) are held
        dictionary-encoded (4 bytes a row, not ~9) and read back plain."""
        if len(column) != self.num_rows:
            raise ValueError(f"column {name}: {len(column)} values for {self.num_rows} rows")
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pc.dictionary_encode(column)
        self.extra[name] = column if isinstance(column, pa.ChunkedArray) else \
            pa.chunked_array([column])

    def table(self, columns: Iterable[str] | None = None) -> pa.Table:
        names = list(columns) if columns is not None else self.column_names
        present = set(self.column_names)
        return pa.table({c: self.column(c) for c in names if c in present})

    def take(self, indices: pa.Array | pa.ChunkedArray | np.ndarray,
             columns: Iterable[str] | None = None, chunked: Iterable[str] = (),
             encoded: Iterable[str] = ()) -> pa.Table:
        """Some accepted rows (positions among them), every column or `columns`.

        A large take (the kept table: every accepted row, in key order) goes TAKE_BATCH rows
        at a time, so its transients (sorted indices, plain columns, keys) are one batch's;
        each column comes back as one chunk (later takes of it stay cheap: a take of a chunked
        column joins its chunks first), but those in `chunked`, left in the batches' chunks
        (joining them would hold them twice at once). Columns in `encoded` keep the gathered
        table's dictionary encoding (as `staged_path` always does)."""
        if isinstance(indices, (pa.Array, pa.ChunkedArray)):
            indices = indices.to_numpy()
        idx = np.asarray(indices)  # (int32 positions stay int32: a batch is made int64)
        idx = idx if idx.dtype.kind in "iu" else idx.astype(np.int64)
        names = list(columns) if columns is not None else self.column_names
        keep = set(KEEP_ENCODED) | set(encoded)
        if idx.size <= TAKE_BATCH:
            return self._take(idx, names, keep)
        parts = []
        for at in range(0, idx.size, TAKE_BATCH):
            parts.append(self._take(idx[at:at + TAKE_BATCH], names, keep))
            release()  # this batch's temporaries, before the next batch's are made
        return _stack(parts, set(chunked))

    def _take(self, idx: np.ndarray, names: list[str], encoded: Collection[str]) -> pa.Table:
        needs = set(names)
        for name in _derivable(self.meta.column_names):
            if name in names:
                needs |= set(_MADE_OF[name])
        base = [c for c in self.meta.column_names if c in needs]
        picked = plain(take_rows(self.meta, self.rows[idx], base), names, encoded)
        for name, column in self.extra.items():
            if name not in names:
                continue
            values = _plain_column(name, take_column(column, idx), encoded)
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


def plain(table: pa.Table, names: Iterable[str] | None = None,
          encoded: Iterable[str] = KEEP_ENCODED) -> pa.Table:
    """`table` with the gathered table's compact columns as the decisions read them (its `key`
    made again where it has synset and sha256 but no key, its `source` where it has the source's
    parts, in the first part's place); only `names`, if given;
    dictionary columns named in `encoded` left encoded."""
    encoded = set(encoded)
    derivable = _derivable(table.column_names)
    if "key" in derivable:
        synset = _plain_column("synset", table["synset"], encoded)  # decoded once, for both
        table = table.set_column(table.schema.get_field_index("synset"), "synset", synset)
        table = table.append_column("key", derive_keys(synset, table["sha256"]))
    if "source" in derivable:
        at = table.schema.get_field_index(SOURCE_PARTS[0])  # (where the gathered source was)
        source = derive_sources(*(table[c] for c in SOURCE_PARTS))
        table = table.drop_columns(list(SOURCE_PARTS)).add_column(at, "source", source)
    if names is not None:
        wanted = set(names)
        table = table.select([c for c in table.column_names if c in wanted])
    for i, name in enumerate(table.column_names):
        column = _plain_column(name, table.column(i), encoded)
        if column is not table.column(i):
            table = table.set_column(i, name, column)
    return table


def _stack(parts: list[pa.Table], chunked: set[str]) -> pa.Table:
    """The batches of one take as one table, column by column, each column's batches let go
    as soon as it is made (dropped from `parts` itself): joined into one chunk, but those in
    `chunked`."""
    names, schema = parts[0].column_names, parts[0].schema
    columns = {}
    for name in names:
        column = pa.chunked_array([c for p in parts for c in p.column(name).chunks],
                                  schema.field(name).type)
        columns[name] = column if name in chunked else pa.chunked_array([column.combine_chunks()])
        del column
        parts[:] = [p.drop_columns([name]) for p in parts]  # (in place: the caller's list too)
        release()
    return pa.table(columns)


_MADE_OF = {"key": ("synset", "sha256"), "source": SOURCE_PARTS}  # (shards/staging.py)


def _derivable(names: list[str]) -> list[str]:
    """The columns a table lacks but has what they are made of (shards/staging.py)."""
    return [c for c, parts in _MADE_OF.items() if c not in names and set(parts) <= set(names)]


def _names(names: list[str]) -> list[str]:
    """A table's columns as the decisions see them: `source` where its parts are, `key` after
    `split` (where META_SCHEMA has it) where it is made from synset and sha256."""
    derivable = _derivable(names)
    if "source" in derivable:
        at = names.index(SOURCE_PARTS[0])
        names = [c for c in names if c not in SOURCE_PARTS]
        names.insert(at, "source")
    if "key" in derivable:
        names.insert(names.index("split") + 1 if "split" in names else len(names), "key")
    return names


def _plain_column(name: str, column: pa.ChunkedArray,
                  encoded: Iterable[str] = KEEP_ENCODED) -> pa.ChunkedArray:
    if pa.types.is_fixed_size_binary(column.type):
        return sha256_hex(column)
    if pa.types.is_dictionary(column.type) and name not in encoded:
        return column.cast(column.type.value_type)
    return column


def _bools(mask: np.ndarray | pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(mask, (pa.Array, pa.ChunkedArray)):
        return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)
    return np.asarray(mask, dtype=bool)
