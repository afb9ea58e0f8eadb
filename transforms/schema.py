"""The record schema, declared once.

Every other part derives from these definitions: the Parquet and WebDataset writers, the readers,
the loader and the manifest. Tables flow between stages as `pyarrow.Table`s with these schemas.
"""
from __future__ import annotations

import hashlib

import pyarrow as pa

SCHEMA_VERSION = 1

# What ingest produces: one row per input, with its bytes (or a reason it could not be read).
CANDIDATE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),  # URI / path / "tar-uri::member"
        pa.field("synset", pa.string()),  # wnid, null when the source gave none
        pa.field("split", pa.string()),  # declared split, null when the source gave none
        pa.field("data", pa.binary()),  # original bytes; null when the read failed
        pa.field("bboxes", pa.list_(pa.list_(pa.float32(), 4))),  # source pixels, or null
        pa.field("license", pa.string()),
        pa.field("attribution", pa.string()),
        pa.field("reason", pa.string()),  # null = readable; else why ingest rejected it
    ]
)

# An accepted sample, as stored in a release.
RECORD_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # <wnid>_<sha256[:16]>
        pa.field("synset", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),  # index into the release's class list
        pa.field("split", pa.string(), nullable=False),
        pa.field("image", pa.binary(), nullable=False),  # encoded output bytes
        pa.field("format", pa.string(), nullable=False),  # jpeg | webp | png
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("orig_width", pa.int32(), nullable=False),
        pa.field("orig_height", pa.int32(), nullable=False),
        pa.field("orig_format", pa.string(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),  # hex, of the original bytes
        pa.field("phash", pa.uint64(), nullable=False),  # 64-bit DCT perceptual hash of the output
        pa.field("source", pa.string(), nullable=False),
        pa.field("bboxes", pa.list_(pa.list_(pa.float32(), 4))),  # output pixels
        pa.field("confidence", pa.float32()),  # label posterior; null where no votes
        pa.field("license", pa.string()),
        pa.field("attribution", pa.string()),
        pa.field("ops", pa.string()),  # what the transform did, comma separated
    ]
)

# What the transform stage emits per input: a record (reason null) or a rejection (reason set,
# stage says where). Record fields that could not be computed are null.
TRANSFORMED_SCHEMA = pa.schema(
    [f.with_nullable(True) for f in RECORD_SCHEMA]
    + [pa.field("stage", pa.string()), pa.field("reason", pa.string())]
)

# The side tables' schemas (rejects, duplicates, ...) are declared with the release format,
# in shards/tables.py; re-exported here for the transforms that produce them.
from synshard.shards.tables import DUPLICATE_SCHEMA, REJECT_SCHEMA  # noqa: E402,F401

IMAGE_EXTENSIONS = {"jpeg": "jpg", "webp": "webp", "png": "png"}
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"validation": "val", "valid": "val", "training": "train", "testing": "test"}


def split_name(name: str) -> str | None:
    """A declared split as sources spell it (`Train`, `validation`) -> train|val|test, else None."""
    lowered = name.lower()
    lowered = _SPLIT_ALIASES.get(lowered, lowered)
    return lowered if lowered in SPLITS else None


def make_key(synset: str, sha256_hex: str) -> str:
    """`<wnid>_<first 16 hex digits of sha256>`: stable, readable, no dots."""
    return f"{synset}_{sha256_hex[:16]}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def empty_table(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()
