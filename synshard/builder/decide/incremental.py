"""Rebuilding from an earlier release: its samples, takedowns, and which shards can be reused.

`--base OLD` makes OLD's samples part of the new release without decoding or re-encoding any of
them: new inputs are deduplicated against them (an earlier sample always wins), takedowns remove
some of them, and each synset's shards are then either
- reused: copied byte for byte (same relative path, same sha256) when nothing in the synset
  changed: no new sample, none removed, labels the same, or
- rewritten: the base's records of that synset (bytes as they are) merged with the new ones.
Copying, not referencing the base by path, keeps every release self-contained: deleting or
garbage-collecting the base can never break the new one (object stores copy server-side).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synshard.shards.reader import shard_columns
from synshard.shards.release import Release, open_release
from synshard.errors import SynshardError

# What the decisions need of a base sample (no image bytes).
BASE_COLUMNS = ["key", "synset", "split", "label", "sha256", "phash", "source", "width",
                "height", "confidence"]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class BaseRelease:
    release: Release
    uri: str
    records: pa.Table  # BASE_COLUMNS + `shard` (the relative path of the shard it was read from)

    @property
    def formats(self) -> set[str]:
        return {e.format for e in self.release.manifest.shards}


def load_base(uri: str, storage_options: dict[str, Any] | None = None) -> BaseRelease:
    """The base release's sample metadata, read from its Parquet shards (columns only)."""
    release = open_release(uri, storage_options)
    shards = release.shards(format="parquet")
    if not shards and release.manifest.shards:
        raise SynshardError(f"base release {uri} has no Parquet shards: rebuild it with "
                            "--format webdataset,parquet to use it as a base")
    records = shard_columns(release, BASE_COLUMNS, shards) if shards else None
    records = (records.select(BASE_COLUMNS + ["shard"]) if records is not None and records.num_rows
               else _empty_base())
    return BaseRelease(release, uri, records)


def _empty_base() -> pa.Table:
    from synshard.transforms.schema import RECORD_SCHEMA

    fields = [RECORD_SCHEMA.field(c) for c in BASE_COLUMNS]
    return pa.schema(fields + [pa.field("shard", pa.string())]).empty_table()


@dataclass(frozen=True)
class Takedown:
    """What to remove: keys, sources (paths or URLs) and sha256s, from `--remove LIST`."""

    keys: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    sha256s: frozenset[str] = frozenset()
    like: pa.Table | None = None  # phashes of `--remove-like` images
    radius: int = 6

    def mask(self, meta: pa.Table) -> tuple[np.ndarray, list[str | None]]:
        """Which rows of `meta` (key, source, sha256, phash) are taken down, and why."""
        n = meta.num_rows
        reasons: list[str | None] = [None] * n
        for i, (k, s, h) in enumerate(zip(meta["key"].to_pylist(), meta["source"].to_pylist(),
                                          meta["sha256"].to_pylist())):
            if k in self.keys:
                reasons[i] = "takedown: key listed"
            elif s in self.sources:
                reasons[i] = "takedown: source listed"
            elif h in self.sha256s:
                reasons[i] = "takedown: sha256 listed"
        if self.like is not None and self.like.num_rows and n:
            reasons = self._like(meta, reasons)
        return np.array([r is not None for r in reasons], dtype=bool), reasons

    def _like(self, meta: pa.Table, reasons: list[str | None]) -> list[str | None]:
        from synshard.transforms.neardup_between import near_pairs

        assert self.like is not None
        ours = meta["phash"].to_numpy(zero_copy_only=False)
        valid = ~pc.is_null(meta["phash"]).to_numpy(zero_copy_only=False)
        theirs = self.like["phash"].drop_null().to_numpy().astype(np.uint64)
        idx = np.flatnonzero(valid)
        i, j, d = near_pairs(ours[idx].astype(np.uint64), theirs, self.radius)
        sources = self.like["source"].drop_null().to_pylist()
        for row, other, dist in zip(idx[i].tolist(), j.tolist(), d.tolist()):
            if reasons[row] is None:
                reasons[row] = f"takedown: like {sources[other]} (distance {dist})"
        return reasons

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for group in (self.keys, self.sources, self.sha256s):
            h.update("\n".join(sorted(group)).encode() + b"\0")
        if self.like is not None:
            h.update(repr(sorted(self.like["phash"].drop_null().to_pylist())).encode())
        return h.hexdigest()

    def __bool__(self) -> bool:
        return bool(self.keys or self.sources or self.sha256s or
                    (self.like is not None and self.like.num_rows))


def load_takedown(remove: str | None, like: pa.Table | None, radius: int,
                  storage_options: dict[str, Any] | None = None) -> Takedown:
    """`--remove LIST`: one entry per line (key, source path/URL, or sha256); # comments."""
    keys, sources, shas = set(), set(), set()
    if remove:
        try:
            with fsspec.open(remove, "rt", **(storage_options or {})) as f:
                lines = [ln.split("#", 1)[0].strip() for ln in f]
        except FileNotFoundError:
            raise SynshardError(f"removal list not found: {remove}") from None
        for entry in filter(None, lines):
            if _SHA256.match(entry.lower()):
                shas.add(entry.lower())
            elif "/" in entry or "://" in entry or "::" in entry:
                sources.add(entry)
            else:
                keys.add(entry)
    return Takedown(frozenset(keys), frozenset(sources), frozenset(shas), like, radius)


def reusable_synsets(base: BaseRelease, kept_base: pa.Table, new_synsets: set[str],
                     formats: tuple[str, ...]) -> set[str]:
    """Synsets whose base shards can be copied as they are."""
    if not set(formats) <= base.formats:
        return set()
    before = pc.value_counts(base.records["synset"]).to_pylist()
    before = {d["values"]: d["counts"] for d in before}
    changed_label = set(kept_base.filter(pc.not_equal(kept_base["label"],
                                                      kept_base["base_label"]))
                        ["synset"].to_pylist())
    after = {d["values"]: d["counts"] for d in pc.value_counts(kept_base["synset"]).to_pylist()}
    return {s for s, n in after.items()
            if before.get(s) == n and s not in new_synsets and s not in changed_label}
