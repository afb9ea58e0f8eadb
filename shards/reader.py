"""Reading a committed release's contents: the one place outside the training loader that opens
its shards and tables. The app (report, datasheet, diff, explorer, incremental builds, external
hashes, `get`) reads releases only through `Release`, `access.KeyReader` and these functions.

- `side_table(release, name)`: a table the manifest lists, conformed to its schema; None if absent.
- `shard_columns(release, columns, entries)`: record columns of Parquet shards (no image bytes
  unless asked), with `split`, `synset` and `shard` from the manifest's entries.
- `shard_keys(release, entry)`: the sample keys of one shard, either format.
- `shard_json(release, entry)`: a WebDataset shard's `.json` members (ranged reads by its index).
- `first_images(release, entry, n)`: (key, image bytes) of a shard's first n samples.
Errors name the shard: `ShardError`.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synshard.transforms.schema import RECORD_SCHEMA

from .index import read_index
from .layout import ShardEntry, ShardError, join
from .pyfiles import read_parquet
from .release import Release
from .tables import known_columns
from .webdataset import iter_webdataset_shard

IMAGE_EXTENSIONS = ("jpg", "webp", "png")


def side_table(release: Release, name: str) -> pa.Table | None:
    """A side table the manifest lists (`rejects`, `removals`, ...) in its registered columns,
    or None when this release has none of that name."""
    if name not in release.manifest.tables:
        return None
    return known_columns(name, release.read_table(name))


def _shard_path(release: Release, entry: ShardEntry) -> str:
    return join(release.root, entry.path)


def _failed(release: Release, entry: ShardEntry, exc: Exception) -> ShardError:
    return ShardError(f"cannot read {release.uri(entry.path)}: {exc}")


def shard_columns(release: Release, columns: list[str],
                  entries: Iterable[ShardEntry] | None = None) -> pa.Table:
    """`columns` of the records of Parquet shards (default: all of them), one table, plus
    `split`, `synset` and `shard` (the entry's path) for every row."""
    if entries is None:
        entries = release.shards(format="parquet")
    parts = []
    stored = [c for c in columns if c not in ("split", "synset", "shard")]
    for entry in entries:
        if entry.format != "parquet":
            raise ShardError(f"{entry.path} is not a Parquet shard")
        try:
            with release.fs.open(_shard_path(release, entry), "rb") as f:
                table = read_parquet(f, columns=stored)
        except (OSError, pa.ArrowInvalid) as exc:
            raise _failed(release, entry, exc) from None
        n = table.num_rows
        for name, value in (("split", entry.split), ("synset", entry.synset),
                            ("shard", entry.path)):
            table = table.append_column(name, pa.array([value] * n, pa.string()))
        parts.append(table)
    if not parts:  # no shards: the same columns, empty
        fields = [RECORD_SCHEMA.field(c) if c in RECORD_SCHEMA.names else pa.field(c, pa.string())
                  for c in stored]
        names = ("split", "synset", "shard")
        return pa.schema(fields + [pa.field(n, pa.string()) for n in names]).empty_table()
    return pa.concat_tables(parts)


def shard_keys(release: Release, entry: ShardEntry) -> list[str]:
    """The sample keys of one shard (Parquet: the key column; WebDataset: member names)."""
    if entry.format == "parquet":
        return shard_columns(release, ["key"], [entry])["key"].to_pylist()
    return [s["__key__"] for s in _samples(release, entry)]


def _samples(release: Release, entry: ShardEntry) -> Iterator[dict[str, Any]]:
    try:
        yield from iter_webdataset_shard(release.fs, _shard_path(release, entry))
    except OSError as exc:
        raise _failed(release, entry, exc) from None


def shard_json(release: Release, entry: ShardEntry) -> list[dict[str, Any]]:
    """The `.json` members of a WebDataset shard: ranged reads where it has an index, else the
    shard streamed (an older release)."""
    try:
        if entry.index:
            index = read_index(release.fs, release.root, entry)
            starts = index["json_offset"].to_pylist()
            ends = [s + n for s, n in zip(starts, index["json_size"].to_pylist())]
            path = _shard_path(release, entry)
            blobs = release.fs.cat_ranges([path] * len(starts), starts, ends)
            return [json.loads(blob) for blob in blobs]
        return [json.loads(s["json"]) for s in _samples(release, entry)]
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise _failed(release, entry, exc) from None


def first_images(release: Release, entry: ShardEntry, n: int) -> list[tuple[str, bytes]]:
    """(key, stored image bytes) of the first `n` samples of a shard."""
    if n <= 0:
        return []
    if entry.format == "parquet":
        try:
            with release.fs.open(_shard_path(release, entry), "rb") as f:
                batches = pq.ParquetFile(f).iter_batches(batch_size=n, columns=["key", "image"],
                                                          use_threads=False)
                rows = next(batches, pa.RecordBatch.from_pylist([])).to_pylist()
        except (OSError, pa.ArrowInvalid) as exc:
            raise _failed(release, entry, exc) from None
        return [(r["key"], r["image"]["bytes"]) for r in rows]
    images = []
    for sample in _samples(release, entry):
        data = next((sample[e] for e in IMAGE_EXTENSIONS if e in sample), None)
        if data is not None:
            images.append((sample["__key__"], data))
        if len(images) >= n:
            break
    return images
