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
from fsspec.implementations.local import LocalFileSystem

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
# What the driver gathers of META_SCHEMA for the decisions; the rest (ops, licence, attribution,
# boxes, sizes of the original) stays in the staged files and reaches the shards through the
# assembly tasks. Three columns are held compactly (`gathered`): `staged_path` and `synset`
# dictionary-encoded (a staged file's path or a wnid once, 4 bytes a row) and `sha256` as its 32
# raw bytes (`fixed_size_binary(32)`, not 64 hex characters plus an offset: 36 bytes a row less);
# the decisions see them as plain strings again (decide/rows.py), hex only where a table is written;
# `key` is not gathered at all (made again from synset and sha256: `derive_keys`), and `source`
# is held in two parts (`split_sources`): its folder, up to and including the last `/`,
# dictionary-encoded (`source_dir`: a folder's path once, 4 bytes a row), and the rest
# (`source_name`, a file name); `source` is their concatenation (`derive_sources`). At 1M images
# of the scale build that is ~31 bytes a row instead of ~71 (the largest gathered column).
DECIDE_COLUMNS = ("source", "synset", "split", "key", "width", "height", "sha256", "phash",
                  "confidence", "stage", "reason", "staged_path", "staged_row")
DICTIONARY_COLUMNS = ("synset", "staged_path")
DERIVED_COLUMNS = ("key",)  # not gathered: made from synset and sha256 (`derive_keys`)
SOURCE_PARTS = ("source_dir", "source_name")  # `source`, gathered in two parts (`split_sources`)
_SOURCE_SPLIT = r"(?s)^(?P<dir>.*/)?(?P<name>[^/]*)$"  # (always matches: `dir` may be empty)
SHA256_BYTES = pa.binary(32)
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_NIBBLE = np.zeros(256, np.uint8)
_NIBBLE[_HEX] = np.arange(16, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint8)


def decide_schema() -> pa.Schema:
    """The schema of the table the driver gathers (Staging.gather_metas)."""
    fields = []
    for name in DECIDE_COLUMNS:
        if name in DICTIONARY_COLUMNS:
            fields.append(pa.field(name, pa.dictionary(pa.int32(), pa.string())))
        elif name == "sha256":
            fields.append(pa.field(name, SHA256_BYTES))
        elif name == "source":
            fields.append(pa.field(SOURCE_PARTS[0], pa.dictionary(pa.int32(), pa.string())))
            fields.append(pa.field(SOURCE_PARTS[1], pa.string()))
        elif name not in DERIVED_COLUMNS:
            fields.append(META_SCHEMA.field(name))
    return pa.schema(fields)


def gathered(meta: pa.Table) -> pa.Table:
    """One read task's metadata (DECIDE_COLUMNS of META_SCHEMA) in `decide_schema()` form.

    `key` is left out: it is `<synset>_<sha256[:16]>` (transforms/schema.py `make_key`), made
    again from those two columns where a step reads it (`derive_keys`); checked here per task."""
    keys = derive_keys(meta["synset"], meta["sha256"])
    same = pc.equal(pc.fill_null(keys, ""), pc.fill_null(meta["key"].cast(pa.string()), ""))
    if pc.all(same).as_py() not in (True, None):
        bad = meta["key"].filter(pc.invert(same))[0].as_py()
        raise ValueError(f"a staged key is not <synset>_<sha256[:16]>: {bad!r}")
    meta = meta.drop_columns(["key"])
    for name in DICTIONARY_COLUMNS:
        at = meta.schema.get_field_index(name)
        meta = meta.set_column(at, name, pc.dictionary_encode(meta[name]))
    at = meta.schema.get_field_index("sha256")
    meta = meta.set_column(at, "sha256", sha256_bytes(meta["sha256"]))
    at = meta.schema.get_field_index("source")
    folder, name = split_sources(meta["source"])
    meta = meta.set_column(at, SOURCE_PARTS[0], folder)
    return meta.add_column(at + 1, SOURCE_PARTS[1], name)


def split_sources(source: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, pa.Array]:
    """Sources as (folder, dictionary-encoded: up to and including the last `/`, or ""; the
    rest): `derive_sources` joins them back to the same strings (nulls stay null)."""
    if isinstance(source, pa.ChunkedArray):
        source = source.combine_chunks()
    parts = pc.extract_regex(source.cast(pa.string()), _SOURCE_SPLIT)
    folder, name = pc.struct_field(parts, [0]), pc.struct_field(parts, [1])
    return pc.dictionary_encode(folder), name


def derive_sources(folder: pa.ChunkedArray | pa.Array, name: pa.ChunkedArray | pa.Array
                   ) -> pa.ChunkedArray | pa.Array:
    """The sources `split_sources` split: folder + name per row (null where the source was)."""
    if pa.types.is_dictionary(folder.type):
        folder = folder.cast(pa.string())
    return pc.binary_join_element_wise(folder, name, "")


def derive_keys(synset: pa.ChunkedArray | pa.Array, sha256: pa.ChunkedArray | pa.Array
                ) -> pa.ChunkedArray | pa.Array:
    """`<synset>_<first 16 hex digits of sha256>` per row (null where either is null or the
    synset is empty, as the transform leaves such rows without a key); sha256 as hex or bytes."""
    if pa.types.is_dictionary(synset.type):
        synset = synset.cast(pa.string())
    if pa.types.is_fixed_size_binary(sha256.type):
        head = _hex16(sha256)  # of the first 8 bytes only
    else:
        head = pc.utf8_slice_codeunits(sha256, 0, 16)
    keys = pc.binary_join_element_wise(synset, head, "_")
    empty = pc.equal(synset, "")
    if not pc.any(empty).as_py():
        return keys  # (the usual case: no copy of every key through if_else)
    return pc.if_else(empty, pa.scalar(None, pa.string()), keys)


def sha256_bytes(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Hex sha256 strings (64 digits, or null) -> fixed_size_binary(32)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    array = array.cast(pa.string())
    n = len(array)
    valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
    lengths = pc.fill_null(pc.binary_length(array), 64).to_numpy(zero_copy_only=False)
    if (lengths != 64).any():
        bad = array.filter(pa.array(lengths != 64))[0].as_py()
        raise ValueError(f"not a hex sha256: {bad!r}")
    raw = np.zeros((n, 32), np.uint8)
    if n and valid.any():
        offsets = np.frombuffer(array.buffers()[1], np.int32, n + 1, array.offset * 4)
        text = np.frombuffer(array.buffers()[2], np.uint8)
        digits = _NIBBLE[text[offsets[:-1][valid, None] + np.arange(64)]]
        raw[valid] = (digits[:, 0::2] << 4) | digits[:, 1::2]
    mask = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(SHA256_BYTES, n, [mask, pa.py_buffer(raw.tobytes())])


def _hex16(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """The first 16 hex digits of each fixed_size_binary(32) sha256 (nulls stay null)."""
    return _hex_of(column, 8)


def sha256_hex(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """fixed_size_binary(32) -> hex strings (nulls stay null); anything else as it is."""
    if not pa.types.is_fixed_size_binary(column.type):
        return column
    return _hex_of(column, 32)


HEX_ROWS = 1 << 20  # rows made hex at a time: the temporaries are ~3x this many x 64 bytes


def _hex_of(column: pa.ChunkedArray | pa.Array, nbytes: int) -> pa.ChunkedArray | pa.Array:
    """The first `nbytes` of each fixed_size_binary(32) value as lowercase hex strings."""
    if isinstance(column, pa.ChunkedArray):
        parts = [_hex_of(c.slice(at, HEX_ROWS), nbytes) for c in column.chunks
                 for at in range(0, len(c), HEX_ROWS)]
        return pa.chunked_array(parts, pa.string())
    if len(column) > HEX_ROWS:
        return pa.concat_arrays([_hex_of(column.slice(at, HEX_ROWS), nbytes)
                                 for at in range(0, len(column), HEX_ROWS)])
    n, width = len(column), column.type.byte_width
    raw = np.frombuffer(column.buffers()[1], np.uint8, (column.offset + n) * width)
    raw = raw.reshape(-1, width)[column.offset:, :nbytes]
    text = np.empty((n, 2 * nbytes), np.uint8)
    text[:, 0::2], text[:, 1::2] = _HEX[raw >> 4], _HEX[raw & 15]
    # a null's offsets may span bytes (Arrow leaves them undefined): no compaction needed
    offsets = np.arange(n + 1, dtype=np.int32) * (2 * nbytes)
    mask = None
    if column.null_count:
        valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
        mask = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text), mask)


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
        part = transformed if rows.size == transformed.num_rows else transformed.take(rows)
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
    fs.makedirs(join(staging, synset), exist_ok=True)
    if isinstance(fs, LocalFileSystem):  # straight into the file: no copy of the images in memory
        with pa.OSFile(fs._strip_protocol(path), "wb") as sink:
            with ipc.new_file(sink, part.schema) as writer:
                writer.write_table(part)
        return path
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, part.schema) as writer:
        writer.write_table(part)
    fs.pipe_file(path, sink.getvalue().to_pybytes())  # one PUT
    return path


def read_part(data: bytes | pa.Buffer) -> pa.Table:
    """A staged file's records from its bytes: an Arrow IPC file, or Parquet (what staging
    folders held before: a build resumed from one reads them as they are)."""
    if bytes(memoryview(data)[:6]) == b"ARROW1":
        return ipc.open_file(pa.py_buffer(data)).read_all()
    return read_parquet(pa.BufferReader(data))


def _read_staged_file(fs: Any, path: str) -> pa.Table:
    """A staged file's records: memory-mapped on a local disk (the records are views of the
    page cache the staging write left, not a copy of the file in fresh memory), one GET
    elsewhere."""
    if isinstance(fs, LocalFileSystem):
        with pa.memory_map(fs._strip_protocol(path)) as mapped:
            return read_part(mapped.read_buffer())
    return read_part(fs.cat_file(path))


def read_staged(fs: Any, paths: Iterable[str], keep: pa.Table) -> pa.Table:
    """The staged records listed in `keep` (columns staged_path, staged_row, split, label,
    confidence: the row locator and the decisions), read from the staged files `paths`.

    Returns RECORD_SCHEMA rows with the decided split/label/confidence, sorted by key. Each file
    is read with one GET (memory-mapped on a local disk) and parsed, one file at a time: a file
    whose rows are all kept is held as it is, any other keeps only its kept rows (so memory
    follows what decide kept, not what was staged); the records are then taken once, in their
    final order (an image's bytes are copied once here when its file is kept whole).
    """
    located = pc.dictionary_encode(pc.cast(keep["staged_path"], pa.string())).combine_chunks()
    names = located.dictionary.to_pylist()
    codes = located.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    rows = keep["staged_row"].to_numpy(zero_copy_only=False).astype(np.int64)
    wanted = set(paths)
    by_code = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[by_code], np.arange(len(names) + 1))
    files, found, where, at = [], [], [], 0
    for code in sorted(range(len(names)), key=names.__getitem__):
        if names[code] not in wanted:
            continue
        mine = by_code[bounds[code]:bounds[code + 1]]  # the rows of `keep` in this file,
        mine = mine[np.argsort(rows[mine], kind="stable")]  # in the file's order
        table = _read_staged_file(fs, names[code])
        picked = np.unique(rows[mine])
        if len(picked) == table.num_rows and (not len(picked) or picked[-1] == len(picked) - 1):
            where.append(at + rows[mine])  # every row kept: the file as it is
        else:
            table = table.take(pa.array(picked))
            where.append(at + np.searchsorted(picked, rows[mine]))
        files.append(table)
        found.append(mine)
        at += table.num_rows
    if not files:
        return RECORD_SCHEMA.empty_table()
    staged = pa.concat_tables(files)
    located_at = pa.array(np.concatenate(where))
    order = pc.sort_indices(staged.select(["key", "source"]).take(located_at),
                            [("key", "ascending"), ("source", "ascending")])
    picked_rows = staged.select(RECORD_SCHEMA.names).take(pc.take(located_at, order))
    decided = keep.take(pa.array(np.concatenate(found))).take(order)
    for col in ("split", "label", "confidence"):
        picked_rows = picked_rows.set_column(picked_rows.schema.get_field_index(col), col,
                                             decided[col].cast(picked_rows.schema.field(col).type))
    return picked_rows.cast(RECORD_SCHEMA)
