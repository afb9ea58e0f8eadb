"""The side tables of a release, declared once: their schemas and the registry of them.

A release's manifest lists its side tables by name (`manifest.tables`); `RELEASE_TABLES` are the
names a build writes, `TABLES` every table schema the app produces (with the hash and leakage
tables, which are written by `synshard leakage`, not into a release). The record itself is
declared in transforms/schema.py. `write_table` (shards/release.py) conforms a registered table
to its schema; readers (`shards/reader.side_table`) select its registered columns.
"""
from __future__ import annotations

import pyarrow as pa

# rejects.parquet: every rejected input.
REJECT_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("synset", pa.string()),
        pa.field("split", pa.string()),
        pa.field("key", pa.string()),  # null when the bytes were never read
        pa.field("sha256", pa.string()),
        pa.field("stage", pa.string(), nullable=False),  # ingest|decode|validate|dedup|subset|...
        pa.field("reason", pa.string(), nullable=False),
    ]
)

# duplicates.parquet: every dropped copy of a sample that was kept.
DUPLICATE_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("synset", pa.string()),
        pa.field("split", pa.string()),
        pa.field("kept_key", pa.string(), nullable=False),
        pa.field("kept_source", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # exact | near | cross-split | ...
        pa.field("distance", pa.int32(), nullable=False),  # Hamming distance of phash (0: exact)
    ]
)

# conflicts.parquet: near pairs of survivors under different synsets (possible label conflicts).
CONFLICT_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("synset", pa.string()),
        pa.field("split", pa.string()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("other_key", pa.string(), nullable=False),
        pa.field("other_synset", pa.string()),
        pa.field("other_split", pa.string()),
        pa.field("other_source", pa.string(), nullable=False),
        pa.field("distance", pa.int32(), nullable=False),
    ]
)

# removals.parquet (builds with --base, --remove or --remove-like): base samples taken out.
REMOVAL_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False), pa.field("synset", pa.string()),
    pa.field("split", pa.string()), pa.field("sha256", pa.string()),
    pa.field("reason", pa.string(), nullable=False),
])

# Not stored in a release: the hashes of data outside a build (`--dedup-against`,
# `--remove-like`, `synshard leakage`) and the leakage report's rows.
HASH_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("key", pa.string()),  # null for inputs without a synset (or unread bytes)
        pa.field("synset", pa.string()),
        pa.field("split", pa.string()),
        pa.field("phash", pa.uint64()),  # null when the input could not be hashed
        pa.field("reason", pa.string()),  # null when hashed; else `<stage>: <why>`
    ]
)

LEAKAGE_SCHEMA = pa.schema(
    [
        pa.field("eval_source", pa.string()),
        pa.field("eval_key", pa.string()),
        pa.field("eval_synset", pa.string()),
        pa.field("release_key", pa.string()),
        pa.field("release_source", pa.string()),
        pa.field("release_split", pa.string()),
        pa.field("release_synset", pa.string()),
        pa.field("distance", pa.int32()),
    ]
)

RELEASE_TABLES = ("rejects", "duplicates", "conflicts", "removals")
TABLES: dict[str, pa.Schema] = {
    "rejects": REJECT_SCHEMA,
    "duplicates": DUPLICATE_SCHEMA,
    "conflicts": CONFLICT_SCHEMA,
    "removals": REMOVAL_SCHEMA,
    "hashes": HASH_SCHEMA,
    "leakage": LEAKAGE_SCHEMA,
}


def known_columns(name: str, table: pa.Table) -> pa.Table:
    """`table` restricted to the registered columns of `name` that it has (as is if unknown)."""
    schema = TABLES.get(name)
    if schema is None:
        return table
    return table.select([n for n in schema.names if n in table.column_names])
