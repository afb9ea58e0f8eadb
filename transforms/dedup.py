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


def exact_dedup(meta: pa.Table, opts: DedupOptions, block: np.ndarray | None = None
                ) -> DedupResult:
    """`meta` needs key, source, synset, split, sha256 (and optionally confidence); `block`, if
    given, is `sha256_block` of its sha256 column (computed where the column already is)."""
    n = meta.num_rows
    keep = np.ones(n, dtype=bool)
    dup_rows: list[dict] = []
    conflicts: list[int] = []
    reasons: list[str] = []
    groups = _duplicate_groups(meta, block)
    if groups:
        every = _rows(meta, np.concatenate(groups))
        at = 0
        for group in groups:
            _settle_group(every[at:at + group.size], opts, keep, dup_rows, conflicts, reasons)
            at += group.size
    dups = pa.Table.from_pylist(dup_rows, schema=DUPLICATE_SCHEMA)
    return DedupResult(keep, dups, np.asarray(conflicts, dtype=np.int64), reasons)


def _duplicate_groups(meta: pa.Table, block: np.ndarray | None = None) -> list[np.ndarray]:
    """Row indices of every sha256 that occurs more than once, in order of first occurrence.

    Sort based and bounded: rows are ordered by a 64-bit block of their hash (the first 16 hex
    digits), only rows whose block occurs twice are compared on the whole hash. So the memory is
    8-16 bytes a row plus the candidates (the copies), never a hash table of every hash; each
    block range is independent (a task per range could do it on a cluster)."""
    if meta.num_rows == 0:
        return []
    if block is None:
        block = sha256_block(meta.column("sha256"))
    order = np.argsort(block, kind="stable")
    ranked = block[order]
    same = ranked[1:] == ranked[:-1]
    if not same.any():
        return []
    multi = np.zeros(order.size, dtype=bool)
    multi[1:] |= same
    multi[:-1] |= same
    cand = np.sort(order[multi])
    hashes = meta.column("sha256").take(pa.array(cand))
    valid = pc.is_valid(hashes).to_numpy(zero_copy_only=False)
    ids = pc.dictionary_encode(pc.fill_null(hashes.cast(pa.string()), "")).combine_chunks()
    ids = ids.indices.to_numpy(zero_copy_only=False)
    keep = (np.bincount(ids)[ids] > 1) & valid  # a missing hash is nobody's copy
    cand, ids = cand[keep], ids[keep]
    if cand.size == 0:
        return []
    grouped = np.argsort(ids, kind="stable")  # ids number the hashes by first occurrence
    bounds = np.flatnonzero(np.diff(ids[grouped])) + 1
    return np.split(cand[grouped], bounds)


_NIBBLE = np.zeros(256, dtype=np.uint64)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i
    _NIBBLE[ord(chr(_c).upper())] = _i


def sha256_block(column: pa.ChunkedArray | pa.Array, chunk: int = 1 << 18) -> np.ndarray:
    """The first 64 bits of each row's hex sha256 as uint64 (rows that are not 64 hex digits:
    a hash of the string instead), vectorised over the string buffer, `chunk` rows at a time."""
    arrays = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out = [np.empty(0, np.uint64)]
    for array in arrays:
        for start in range(0, len(array), chunk):
            out.append(_block(array.slice(start, chunk)))
    return np.concatenate(out)


def _block(array: pa.Array) -> np.ndarray:
    array = array.cast(pa.string())
    n = len(array)
    out = np.zeros(n, np.uint64)
    if n == 0:
        return out
    offsets = np.frombuffer(array.buffers()[1], np.int32, n + 1, array.offset * 4)
    data = array.buffers()[2]
    hexes = np.diff(offsets) == 64
    if array.null_count:
        hexes &= pc.is_valid(array).to_numpy(zero_copy_only=False)
    if hexes.any():
        starts = offsets[:-1][hexes]
        text = np.frombuffer(data, np.uint8)
        digits = _NIBBLE[text[starts[:, None] + np.arange(16)]]
        out[hexes] = np.bitwise_or.reduce(digits << np.arange(60, -4, -4, dtype=np.uint64), axis=1)
    other = np.flatnonzero(~hexes)
    if other.size:  # not a hex sha256 (tests, a null): any stable 64-bit value will do
        values = array.take(pa.array(other)).to_pylist()
        out[other] = [hash(v) & (2**64 - 1) for v in values]
    return out


def _rows(meta: pa.Table, idx: np.ndarray) -> list[dict]:
    cols = ["key", "source", "synset", "split"]
    if "confidence" in meta.column_names:
        cols.append("confidence")
    rows = meta.take(pa.array(idx, pa.int64())).select(cols).to_pylist()
    for i, row in zip(idx.tolist(), rows):
        row.setdefault("confidence", None)
        row["index"] = i
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
