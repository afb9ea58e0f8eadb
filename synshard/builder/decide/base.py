"""Decisions that involve an earlier release: new inputs against its samples, and takedowns.

An earlier (base) sample always survives against a new copy of it: the release already
published it under its key and split. A new copy is a duplicate (exact, cross-split, near, or
label-conflict when it carries another synset); a near copy under another synset is listed as a
possible label conflict and kept unless near_conflicts is `drop`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synshard.config import BuildConfig
from synshard.builder.decide.incremental import BaseRelease, Takedown
from synshard.transforms.neardup_between import near_pairs
from synshard.shards.tables import CONFLICT_SCHEMA, DUPLICATE_SCHEMA, REMOVAL_SCHEMA



@dataclass(frozen=True)
class AgainstBase:
    keep: np.ndarray  # new rows that survive
    duplicates: pa.Table
    conflicts: pa.Table


def against_base(new: pa.Table, base: pa.Table, cfg: BuildConfig) -> AgainstBase:
    """New accepted rows vs the kept base samples: exact by sha256, then near by phash."""
    keep = np.ones(new.num_rows, dtype=bool)
    dups: list[dict] = []
    conflicts: list[dict] = []
    by_sha = {h: i for i, h in enumerate(base["sha256"].to_pylist())}
    new_rows = new.select(["key", "source", "synset", "split", "sha256"]).to_pylist()
    base_rows = base.select(["key", "source", "synset", "split"]).to_pylist()
    for i, row in enumerate(new_rows):
        j = by_sha.get(row["sha256"])
        if j is not None:
            keep[i] = False
            dups.append(_dup(row, base_rows[j], 0))
    radius = cfg.dedup.near_radius
    if radius is not None and new.num_rows and base.num_rows:
        idx = np.flatnonzero(keep & pc.is_valid(new["phash"]).to_numpy(zero_copy_only=False))
        ours = new["phash"].to_numpy(zero_copy_only=False)[idx].astype(np.uint64)
        theirs = base["phash"].to_numpy(zero_copy_only=False).astype(np.uint64)
        a, b, d = near_pairs(ours, theirs, radius)
        for ai, bj, dist in sorted(zip(a.tolist(), b.tolist(), d.tolist()), key=lambda t: t[2]):
            i = int(idx[ai])
            row, other = new_rows[i], base_rows[bj]
            if not keep[i]:
                continue
            if row["synset"] == other["synset"] or cfg.dedup.near_conflicts == "drop":
                keep[i] = False
                dups.append(_dup(row, other, dist))
            else:
                conflicts.append(_conflict(row, other, dist))
    return AgainstBase(keep, pa.Table.from_pylist(dups, schema=DUPLICATE_SCHEMA),
                       pa.Table.from_pylist(conflicts, schema=CONFLICT_SCHEMA))


def _dup(row: dict, kept: dict, distance: int) -> dict:
    if row["synset"] != kept["synset"]:
        kind = "label-conflict"
    elif row["split"] != kept["split"]:
        kind = "cross-split"
    else:
        kind = "exact" if distance == 0 else "near"
    return {"key": row["key"], "source": row["source"], "synset": row["synset"],
            "split": row["split"], "kept_key": kept["key"], "kept_source": kept["source"],
            "kind": kind, "distance": distance}


def _conflict(row: dict, other: dict, distance: int) -> dict:
    return {"key": row["key"], "synset": row["synset"], "split": row["split"],
            "source": row["source"], "other_key": other["key"], "other_synset": other["synset"],
            "other_split": other["split"], "other_source": other["source"],
            "distance": distance}


def settle_base(base: BaseRelease, cfg: BuildConfig, takedown: Takedown | None,
                classes: list[str] | None) -> tuple[pa.Table, pa.Table]:
    """(kept base samples, removals): takedowns, synset filters and a pinned class list."""
    records = base.records
    n = records.num_rows
    reasons: list[str | None] = [None] * n
    if takedown:
        _, reasons = takedown.mask(records)
    keep_synset, why = cfg.synset_filter().filter_batch(records["synset"])
    for i, (ok, r) in enumerate(zip(keep_synset.to_pylist(), why.to_pylist())):
        if reasons[i] is None and not ok:
            reasons[i] = f"removed: {r}"
    if classes is not None:
        allowed = set(classes)
        for i, s in enumerate(records["synset"].to_pylist()):
            if reasons[i] is None and s not in allowed:
                reasons[i] = "removed: synset not in the pinned class list"
    removed = np.array([r is not None for r in reasons], dtype=bool)
    removals = records.filter(pa.array(removed)).select(["key", "synset", "split", "sha256"])
    removals = removals.append_column(
        "reason", pa.array([r for r in reasons if r is not None], pa.string()))
    kept = records.filter(pa.array(~removed))
    kept = kept.rename_columns([c if c != "label" else "base_label" for c in kept.column_names])
    return kept, removals.cast(REMOVAL_SCHEMA).sort_by("key")
