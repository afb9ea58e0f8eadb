"""Shard indexes: where each key's bytes lie inside its shard, for reads by key and sub-shard reads.

Every shard gets one index file, written with it and listed in the manifest beside it
(`ShardEntry.index`, `index_bytes`, `index_sha256`). The index lives under `index/`, mirroring the
shard's path (`index/<shard path>.idx.parquet`), not beside the shard: a folder listing of
`parquet/` (pyarrow.dataset, DuckDB's `**/*.parquet`) must see shards only, and the name derives
from the shard's, which carries the shard's content hash, so a rebuild never overwrites an index
that a committed manifest references.

- WebDataset (TAR_INDEX_SCHEMA): per sample, `offset`/`size` of all its members (headers and
  padding included: `[offset, offset + size)` is a valid run of tar blocks, so a reader can fetch a
  run of samples with one ranged read), and the data offset and size of the image, `.cls` and
  `.json` members.
- Parquet (PARQUET_INDEX_SCHEMA): per key, its row group and its row within that group.

Rows are sorted by key, files written with fixed options: the same shard gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import put_file
from .layout import ShardEntry, ShardError, join
from .pyfiles import read_parquet

INDEX_DIR = "index"
INDEX_SUFFIX = ".idx.parquet"

TAR_INDEX_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),  # first header of the sample
        pa.field("size", pa.int64(), nullable=False),  # all its members, headers and padding
        pa.field("image_ext", pa.string(), nullable=False),  # jpg | webp | png
        pa.field("image_offset", pa.int64(), nullable=False),  # data, past the header
        pa.field("image_size", pa.int64(), nullable=False),
        pa.field("cls_offset", pa.int64(), nullable=False),
        pa.field("cls_size", pa.int64(), nullable=False),
        pa.field("json_offset", pa.int64(), nullable=False),
        pa.field("json_size", pa.int64(), nullable=False),
    ]
)

PARQUET_INDEX_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("row_group", pa.int32(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),  # within the row group
    ]
)

INDEX_SCHEMAS = {"webdataset": TAR_INDEX_SCHEMA, "parquet": PARQUET_INDEX_SCHEMA}
IMAGE_EXTS = ("jpg", "webp", "png")


def index_path(shard_path: str) -> str:
    """`index/<shard path>.idx.parquet`: the index of a release-relative shard path."""
    return posixpath.join(INDEX_DIR, shard_path + INDEX_SUFFIX)


def tar_index_rows(members: list[tuple[str, int, int]]) -> list[dict[str, Any]]:
    """Index rows from a tar's members `(name, header offset, data size)`, in tar order.

    Members are grouped by the name before the first dot (the key), as WebDataset does; each group
    must hold exactly one image and one `.cls` and one `.json`.
    """
    rows: dict[str, dict[str, Any]] = {}
    for name, header, size in members:
        key, _, ext = name.partition(".")
        row = rows.setdefault(key, {"key": key, "offset": header, "end": header})
        part = "image" if ext in IMAGE_EXTS else ext
        if part not in ("image", "cls", "json") or f"{part}_offset" in row:
            raise ShardError(f"cannot index member {name!r}: unexpected or repeated part")
        if part == "image":
            row["image_ext"] = ext
        row[f"{part}_offset"], row[f"{part}_size"] = header + 512, size
        row["end"] = max(row["end"], header + 512 + -(-size // 512) * 512)
    out = []
    for key in sorted(rows):
        row = rows[key]
        if "image_ext" not in row or "cls_offset" not in row or "json_offset" not in row:
            raise ShardError(f"cannot index sample {key!r}: it lacks an image, .cls or .json")
        row["size"] = row.pop("end") - row["offset"]
        out.append(row)
    return out


def parquet_index_rows(keys: list[str], group_sizes: list[int]) -> list[dict[str, Any]]:
    """Index rows of a Parquet shard whose rows are `keys`, cut into row groups of these sizes."""
    if sum(group_sizes) != len(keys):
        raise ShardError(f"row groups hold {sum(group_sizes)} rows, shard has {len(keys)} keys")
    rows, start = [], 0
    for group, n in enumerate(group_sizes):
        part = keys[start:start + n]
        rows += [{"key": k, "row_group": group, "row": i} for i, k in enumerate(part)]
        start += n
    return sorted(rows, key=lambda r: r["key"])


Columns = dict[str, list[Any]]


def parquet_index_columns(keys: list[str], group_sizes: list[int]) -> Columns:
    """`parquet_index_rows` as columns (the same values, by key)."""
    if sum(group_sizes) != len(keys):
        raise ShardError(f"row groups hold {sum(group_sizes)} rows, shard has {len(keys)} keys")
    groups = [g for g, n in enumerate(group_sizes) for _ in range(n)]
    rows = [i for n in group_sizes for i in range(n)]
    return _by_key({"key": list(keys), "row_group": groups, "row": rows})


def _by_key(cols: Columns) -> Columns:
    """The columns' rows in key order (a stable sort, as `sorted` of the rows by key)."""
    keys = cols["key"]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    if order == list(range(len(keys))):
        return cols
    return {name: [values[i] for i in order] for name, values in cols.items()}


def index_bytes(rows: list[dict[str, Any]] | Columns, schema: pa.Schema) -> bytes:
    """The index file's bytes: one row group, snappy, no page index (deterministic). `rows` as
    a list of rows or as columns (`webdataset._SampleLayout.index_columns`,
    `parquet_index_columns`). Snappy, which every Parquet reader has: zstd's set-up per column
    doubled the write of these small files for 23% fewer bytes (docs/scale.md, session 19)."""
    if isinstance(rows, dict):
        table = pa.Table.from_pydict(rows, schema=schema)
    else:
        table = pa.Table.from_pylist(rows, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy", write_page_index=False,
                   row_group_size=max(table.num_rows, 1), write_statistics=["key"])  # fmt: skip
    return buf.getvalue()


def write_index(fs: Any, root: str, entry: ShardEntry,
                rows: list[dict[str, Any]] | Columns) -> ShardEntry:
    """Write the index of `entry`'s shard; returns the entry with its index path, bytes and hash."""
    data = index_bytes(rows, INDEX_SCHEMAS[entry.format])
    path = index_path(entry.path)
    fs.makedirs(join(root, posixpath.dirname(path)), exist_ok=True)
    put_file(fs, join(root, path), data)
    digest = hashlib.sha256(data).hexdigest()
    return replace(entry, index=path, index_bytes=len(data), index_sha256=digest)


def read_index(fs: Any, root: str, entry: ShardEntry) -> pa.Table:
    """The index table of a shard (one small read); ShardError when it has none or is unreadable."""
    if entry.index is None:
        raise ShardError(f"shard {entry.path} has no index (built before indexes: rebuild it)")
    try:
        data = fs.cat_file(join(root, entry.index))
        table = read_parquet(pa.BufferReader(data))
    except FileNotFoundError:
        raise ShardError(f"index {entry.index} of shard {entry.path} is missing") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise ShardError(f"index {entry.index}: not a readable Parquet file: {exc}") from None
    schema = INDEX_SCHEMAS[entry.format]
    if table.schema.names != schema.names:
        raise ShardError(f"index {entry.index}: columns {table.schema.names} != {schema.names}")
    return table
