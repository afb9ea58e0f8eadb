"""Opening and committing releases: the manifest is the commit point.

Everything else (shards, tables, build.json) is written first under names nothing committed uses;
`commit_manifest` then writes `manifest.json` in one atomic step: on a local disk a temporary file
in the same folder, fsync'd and `os.replace`d over the old one; on an object store a single PUT,
which stores are atomic for. A reader that opens a release sees the old manifest or the new one,
never a half-written one, and never shards that no manifest lists.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from synshard.errors import SynshardError

from synshard.transforms.heap import system_pool

from .atomic import put_file, write_then_name
from .layout import BUILD_NAME, MANIFEST_NAME, ShardEntry, ShardError, join
from .manifest import Manifest, ManifestError
from .tables import TABLES
from .pyfiles import read_parquet


def release_fs(uri: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """(filesystem, root path as that filesystem names it) for a release URI."""
    fs, root = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    return fs, root.rstrip("/") or root


@dataclass(frozen=True)
class Release:
    """A committed release, as its manifest describes it."""

    manifest: Manifest
    fs: Any
    root: str

    def uri(self, relpath: str) -> str:
        """The full URI of a release-relative path (a plain path on the local disk)."""
        path = join(self.root, relpath)
        return path if isinstance(self.fs, LocalFileSystem) else self.fs.unstrip_protocol(path)

    def read_table(self, name: str) -> pa.Table:
        """A side table the manifest lists (`rejects`, `duplicates`, `conflicts`, `removals`)."""
        entry = self.manifest.tables.get(name)
        if entry is None:
            raise SynshardError(f"release {self.root} has no {name} table")
        with self.fs.open(join(self.root, entry["path"]), "rb") as f:
            return read_parquet(f)

    def files(self) -> list[str]:
        """The committed files, as full URIs: manifest, build.json if present, tables, shards
        (each followed by its index, where it has one).

        This is the list to hand to tools that would otherwise list folders and see debris.
        """
        rel = [MANIFEST_NAME]
        if self.fs.exists(join(self.root, BUILD_NAME)):
            rel.append(BUILD_NAME)
        rel += [t["path"] for _, t in sorted(self.manifest.tables.items())]
        for e in self.manifest.shards:
            rel += [e.path] if e.index is None else [e.path, e.index]
        return [self.uri(p) for p in rel]

    def shards(
        self, split: str | None = None, synset: str | None = None, format: str | None = None
    ) -> list[ShardEntry]:
        """The manifest's shards, filtered; sorted by path."""
        return [
            e
            for e in self.manifest.shards
            if (split is None or e.split == split)
            and (synset is None or e.synset == synset)
            and (format is None or e.format == format)
        ]


def open_release(uri: str, storage_options: dict[str, Any] | None = None) -> Release:
    """Open a committed release by reading its manifest.json (and nothing else)."""
    fs, root = release_fs(uri, storage_options)
    try:
        text = fs.cat_file(join(root, MANIFEST_NAME))
    except FileNotFoundError:
        raise SynshardError(f"no committed release at {uri} (no {MANIFEST_NAME})") from None
    try:
        manifest = Manifest.from_json(text)
    except ManifestError as exc:
        raise ManifestError(f"{uri}: {exc}") from None
    return Release(manifest, fs, root)


def commit_manifest(fs: Any, root: str, manifest: Manifest) -> str:
    """Write manifest.json last and atomically; returns its path."""
    path = join(root, MANIFEST_NAME)
    data = manifest.to_json().encode("utf-8")
    put_file(fs, path, data, durable=True, prefix=".manifest-")
    return path


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns; ShardError when a required one is absent or null."""
    columns = []
    for f in schema:
        if f.name in table.column_names:
            columns.append(table[f.name])
        elif f.nullable:
            columns.append(pa.nulls(table.num_rows, f.type))
        else:
            raise ShardError(f"table lacks the required column {f.name!r}")
    try:
        return pa.Table.from_arrays(columns, names=schema.names).cast(schema)
    except (ValueError, pa.ArrowInvalid) as exc:
        raise ShardError(f"table does not fit its schema: {exc}") from None


def write_table(fs: Any, root: str, name: str, table: pa.Table) -> dict[str, Any]:
    """Write `<root>/<name>-<hash8>.parquet` deterministically; returns {path, rows, bytes, sha256}.

    The name carries a hash of the content, like a shard's: a rebuild writes its tables before it
    commits its manifest, and must not change a file the committed manifest still lists.
    A table of the registry (shards/tables.py) is conformed to its schema: absent nullable
    columns become nulls, extra columns are dropped.
    On a local disk the file is written into a temporary file and hashed where it lies
    (`write_then_name`), not made in memory first: the conflicts of the 1M scale build are a
    file of tens of MB, and its buffer was the driver's peak, at the commit.
    """
    # Arrow's system pool for the write (transforms/heap.system_pool): for the writer's
    # transients of a table of 12,282 rows (3 MB in memory, a 375 KB file) mimalloc took 11-19
    # MiB of fresh memory, the system pool 2 MiB, and that was the driver's peak at 100,000
    # images (docs/scale.md, session 17)
    with system_pool():
        return _write_table(fs, root, name, table)


def _write_table(fs: Any, root: str, name: str, table: pa.Table) -> dict[str, Any]:
    if isinstance(fs, LocalFileSystem):
        digest, size, _ = write_then_name(fs._strip_protocol(root),
                                          lambda sink: _write_parquet(sink, name, table),
                                          lambda digest: _table_name(name, digest))
    else:  # one PUT of the file's bytes
        buf = io.BytesIO()
        _write_parquet(buf, name, table)
        data = buf.getvalue()
        digest, size = hashlib.sha256(data).hexdigest(), len(data)
        fs.makedirs(root, exist_ok=True)
        put_file(fs, join(root, _table_name(name, digest)), data)
    return {
        "path": _table_name(name, digest),
        "rows": table.num_rows,  # (conform keeps the rows)
        "bytes": size,
        "sha256": digest,
    }


def _table_name(name: str, digest: str) -> str:
    return f"{name}-{digest[:8]}.parquet"


ROW_GROUP = 1 << 20  # rows per row group of a side table
SLICED = {"conflicts": 1 << 16}  # side tables written this many rows at a time (their row groups)


def _write_parquet(sink: Any, name: str, table: pa.Table) -> None:
    """The side table's Parquet file, written into `sink`. Conflicts come with their strings
    dictionary-encoded over the rows they name (transforms/neardup_policy.py): decoded whole,
    the 1.18M pairs of the 1M scale build were +242 MiB of the driver at commit, so a large one
    is conformed and written a slice at a time, a row group each (tables up to a slice: the same
    bytes as one write)."""
    schema = TABLES.get(name)
    step = SLICED.get(name, 0)
    options: dict[str, Any] = {"compression": "zstd", "compression_level": 3,
                               "write_page_index": False}
    if schema is None or not step or table.num_rows <= step:
        table = conform(table, schema) if schema is not None else table
        pq.write_table(table, sink, row_group_size=ROW_GROUP, **options)
        return
    with pq.ParquetWriter(sink, schema, **options) as writer:
        for at in range(0, table.num_rows, step):
            writer.write_table(conform(table.slice(at, step), schema), row_group_size=step)
