"""Staging: transformed records written once, by synset, before the global decisions.

The transform stage writes every accepted record (image bytes included) to
`<staging>/<synset>/<name>.arrow` (an Arrow IPC file: written and read back with a copy of the
bytes and no encoding; Parquet's binary writer cost ~4% of the transform's CPU, 10x the IPC
write) and passes on only metadata. After dedup, splits and caps are
decided on metadata alone, each synset's staged files are read back once and assembled into its
shards. So an image's bytes cross the disk (or network) three times after the transform: staged
write, staged read, shard write.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from synshard.transforms.schema import RECORD_SCHEMA, TRANSFORMED_SCHEMA

from .layout import join
from .pyfiles import read_parquet

# Metadata that travels to the driver: everything but the image bytes, plus where it was staged.
META_DROP = ("image",)
META_SCHEMA = (
    TRANSFORMED_SCHEMA.remove(TRANSFORMED_SCHEMA.get_field_index("image"))
    .append(pa.field("image_bytes", pa.int64()))
    .append(pa.field("staged_path", pa.string()))
    .append(pa.field("staged_row", pa.int32()))  # the row's index in its staged file
)
# What the driver gathers of META_SCHEMA for the decisions (`staged_path` dictionary-encoded:
# a staged file's path once, 4 bytes a row); the rest (ops, licence, attribution, boxes, sizes
# of the original) stays in the staged files and reaches the shards through the assembly tasks.
DECIDE_COLUMNS = ("source", "synset", "split", "key", "width", "height", "sha256", "phash",
                  "confidence", "stage", "reason", "staged_path", "staged_row")



def decide_schema() -> pa.Schema:
    """The schema of the table the driver gathers (Staging.gather_metas)."""
    fields = [META_SCHEMA.field(c) for c in DECIDE_COLUMNS]
    at = DECIDE_COLUMNS.index("staged_path")
    fields[at] = pa.field("staged_path", pa.dictionary(pa.int32(), pa.string()))
    return pa.schema(fields)


def stage_batch(transformed: pa.Table, fs: Any, staging: str) -> pa.Table:
    """Write accepted rows per synset under `staging`; return all rows' metadata.

    The metadata table has TRANSFORMED_SCHEMA minus `image`, plus `image_bytes` (int64) and
    `staged_path`, `staged_row` (null for rejected rows). File names are a hash of the keys and sources they
    hold, so writing the same batch twice writes the same file.
    """
    accepted = pc.is_null(transformed.column("reason"))
    staged = pa.nulls(transformed.num_rows, pa.string()).to_pylist()
    staged_row = np.full(transformed.num_rows, -1, dtype=np.int32)
    synsets = transformed.column("synset").to_pylist()
    acc = np.asarray(accepted.to_numpy(zero_copy_only=False), dtype=bool)
    for synset in sorted({s for s, a in zip(synsets, acc) if a}):
        rows = np.flatnonzero(acc & (np.asarray(synsets, dtype=object) == synset))
        part = transformed.take(pa.array(rows))
        path = _write_part(fs, staging, synset, part)
        for r in rows.tolist():
            staged[r] = path
        staged_row[rows] = np.arange(rows.size, dtype=np.int32)
    lengths = pc.binary_length(transformed.column("image")).cast(pa.int64())
    meta = transformed.drop_columns(list(META_DROP))
    meta = meta.append_column("image_bytes", lengths)
    meta = meta.append_column("staged_path", pa.array(staged, pa.string()))
    return meta.append_column("staged_row", pa.array(staged_row, mask=staged_row < 0))


def _write_part(fs: Any, staging: str, synset: str, part: pa.Table) -> str:
    ident = hashlib.sha256()
    for key, source in zip(part.column("key").to_pylist(), part.column("source").to_pylist()):
        ident.update(f"{key}\0{source}\n".encode())
    path = join(staging, f"{synset}/{ident.hexdigest()[:24]}.arrow")
    part = part.select(TRANSFORMED_SCHEMA.names)
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, part.schema) as writer:
        writer.write_table(part)
    fs.makedirs(join(staging, synset), exist_ok=True)
    fs.pipe_file(path, sink.getvalue().to_pybytes())
    return path


def read_part(data: bytes) -> pa.Table:
    """A staged file's records from its bytes: an Arrow IPC file, or Parquet (what staging
    folders held before: a build resumed from one reads them as they are)."""
    if data[:6] == b"ARROW1":
        return ipc.open_file(pa.py_buffer(data)).read_all()
    return read_parquet(pa.BufferReader(data))


def read_staged(fs: Any, paths: Iterable[str], keep: pa.Table) -> pa.Table:
    """The staged records listed in `keep` (columns staged_path, staged_row, split, label,
    confidence: the row locator and the decisions), read from the staged files `paths`.

    Returns RECORD_SCHEMA rows with the decided split/label/confidence, sorted by key.
    """
    where = pc.cast(keep["staged_path"], pa.string()).to_numpy(zero_copy_only=False)
    rows = keep["staged_row"].to_numpy(zero_copy_only=False)
    parts = []
    for path in sorted(set(paths)):
        idx = np.flatnonzero(where == path)
        if not idx.size:
            continue
        idx = idx[np.argsort(rows[idx], kind="stable")]
        table = read_part(fs.cat_file(path))
        picked = table.take(pa.array(rows[idx].astype(np.int64)))
        decided = keep.take(pa.array(idx, pa.int64()))
        for col in ("split", "label", "confidence"):
            picked = picked.set_column(picked.schema.get_field_index(col), col,
                                       decided[col].cast(picked.schema.field(col).type))
        parts.append(picked)
    if not parts:
        return RECORD_SCHEMA.empty_table()
    records = pa.concat_tables(parts).select(RECORD_SCHEMA.names).cast(RECORD_SCHEMA)
    return records.sort_by([("key", "ascending"), ("source", "ascending")])
