"""Metadata rows as the read stage stages them (META_SCHEMA), for the decision tests."""
from __future__ import annotations

import hashlib

import pyarrow as pa

from synshard.shards.staging import META_SCHEMA


def meta_row(name: str, synset: str = "n02165456", *, phash: int | None = None,
             sha: str | None = None, reason: str | None = None, split: str | None = None,
             source: str | None = None) -> dict:
    sha = sha or hashlib.sha256(name.encode()).hexdigest()
    row = {f.name: None for f in META_SCHEMA}
    row.update(key=f"{synset}_{sha[:16]}", synset=synset, split=split, format="jpeg", width=64,
               height=48, sha256=sha, source=source or f"/data/{synset}/{name}.JPEG",
               phash=(int(sha[:16], 16) if phash is None else phash), image_bytes=1000,
               staged_path=f"/rel/_staging/x/{synset}/a.parquet", stage=None, reason=reason)
    if reason is not None:
        row.update(key=None, stage="decode", staged_path=None, phash=None)
    return row


def meta_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=META_SCHEMA)
