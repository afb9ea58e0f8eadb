"""Exact deduplication by sha256 of the original bytes, global across synsets and splits.

Runs on metadata only (no image bytes). Within a group of identical bytes:
- copies under ONE synset: one survivor, chosen deterministically: an evaluation copy (val/test)
  beats a training copy (so nothing leaks from train into evaluation), then the smallest source.
  Every other copy is a row in the duplicates table (kind `exact`, or `cross-split` when the copy
  was in another split), distance 0.
- copies under SEVERAL synsets: a label conflict. With confidences (crowd votes) and a unique most
  confident synset, that synset's copy survives and the others are duplicates of kind
  `label-conflict`. Otherwise policy `drop` (default) rejects every copy (reason `label conflict`,
  since nobody knows which label is right) and policy `keep` keeps one copy per synset.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .options import DedupOptions
from .schema import DUPLICATE_SCHEMA

_SPLIT_RANK = {"test": 0, "val": 1, "train": 2}


@dataclass(frozen=True)
class DedupResult:
    keep: np.ndarray  # bool per input row
    duplicates: pa.Table  # DUPLICATE_SCHEMA
    conflict_rows: np.ndarray  # indices of rows rejected as label conflicts
    conflict_reasons: list[str]


def exact_dedup(meta: pa.Table, opts: DedupOptions) -> DedupResult:
    """`meta` needs key, source, synset, split, sha256 (and optionally confidence)."""
    n = meta.num_rows
    keep = np.ones(n, dtype=bool)
    dup_rows: list[dict] = []
    conflicts: list[int] = []
    reasons: list[str] = []
    for group in _duplicate_groups(meta):
        rows = _rows(meta, group)
        _settle_group(rows, opts, keep, dup_rows, conflicts, reasons)
    dups = pa.Table.from_pylist(dup_rows, schema=DUPLICATE_SCHEMA)
    return DedupResult(keep, dups, np.asarray(conflicts, dtype=np.int64), reasons)


def _duplicate_groups(meta: pa.Table) -> list[np.ndarray]:
    """Row indices of every sha256 that occurs more than once (vectorised grouping)."""
    if meta.num_rows == 0:
        return []
    ids = np.asarray(pc.dictionary_encode(meta.column("sha256")).combine_chunks().indices)
    counts = np.bincount(ids)
    multi = np.flatnonzero(counts[ids] > 1)
    if multi.size == 0:
        return []
    order = multi[np.argsort(ids[multi], kind="stable")]
    bounds = np.flatnonzero(np.diff(ids[order])) + 1
    return np.split(order, bounds)


def _rows(meta: pa.Table, idx: np.ndarray) -> list[dict]:
    cols = ["key", "source", "synset", "split"]
    conf = meta.column("confidence") if "confidence" in meta.column_names else None
    rows = []
    for i in idx.tolist():
        row = {c: meta.column(c)[i].as_py() for c in cols}
        row["confidence"] = conf[i].as_py() if conf is not None else None
        row["index"] = i
        rows.append(row)
    return rows


def _survivor_order(row: dict) -> tuple:
    return (_SPLIT_RANK.get(row["split"], 3), row["source"])


def _settle_group(rows: list[dict], opts: DedupOptions, keep: np.ndarray, dup_rows: list[dict],
                  conflicts: list[int], reasons: list[str]) -> None:
    synsets = sorted({r["synset"] for r in rows})
    if len(synsets) == 1:
        _keep_one(rows, "exact", keep, dup_rows)
        return
    winner = _most_confident_synset(rows)
    if winner is not None:
        winners = [r for r in rows if r["synset"] == winner]
        kept = _keep_one(winners, "exact", keep, dup_rows)
        for r in rows:
            if r["synset"] != winner:
                keep[r["index"]] = False
                dup_rows.append(_dup_row(r, kept, "label-conflict"))
        return
    if opts.label_conflict == "keep":
        for s in synsets:
            _keep_one([r for r in rows if r["synset"] == s], "exact", keep, dup_rows)
        return
    reason = "label conflict: same image under " + ", ".join(synsets)
    for r in rows:
        keep[r["index"]] = False
        conflicts.append(r["index"])
        reasons.append(reason)


def _keep_one(rows: list[dict], kind: str, keep: np.ndarray, dup_rows: list[dict]) -> dict:
    ordered = sorted(rows, key=_survivor_order)
    kept = ordered[0]
    for r in ordered[1:]:
        keep[r["index"]] = False
        dup_kind = kind if r["split"] == kept["split"] else "cross-split"
        dup_rows.append(_dup_row(r, kept, dup_kind))
    return kept


def _most_confident_synset(rows: list[dict]) -> str | None:
    best: dict[str, float] = {}
    for r in rows:
        if r["confidence"] is None:
            return None
        best[r["synset"]] = max(best.get(r["synset"], 0.0), r["confidence"])
    ranked = sorted(best.items(), key=lambda kv: -kv[1])
    if len(ranked) > 1 and ranked[0][1] > ranked[1][1]:
        return ranked[0][0]
    return None


def _dup_row(row: dict, kept: dict, kind: str) -> dict:
    return {
        "key": row["key"], "source": row["source"], "synset": row["synset"],
        "split": row["split"], "kept_key": kept["key"], "kept_source": kept["source"],
        "kind": kind, "distance": 0,
    }
