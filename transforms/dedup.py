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
from .neardup import sorted_members
from .schema import DUPLICATE_SCHEMA
from .takes import take_meta

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
    given, is `sha256_block` of its sha256 column (computed where the column already is).

    `meta` is a table, or anything with `num_rows`, `column_names`, `column(name)` and
    `take(rows, columns)` (synshard.builder.decide.rows.Accepted): only the copies' rows are
    taken, never a whole column but sha256's 64-bit blocks. Groups under one synset (nearly
    all) are settled by one sort over all of them; groups under several synsets (label
    conflicts: a few percent of the copies) row by row."""
    n = meta.num_rows
    keep = np.ones(n, dtype=bool)
    cand, gid = _duplicate_rows(meta, block)
    if not cand.size:
        return DedupResult(keep, DUPLICATE_SCHEMA.empty_table(), np.empty(0, np.int64), [])
    cols = ["key", "source", "synset", "split"]
    if "confidence" in meta.column_names:
        cols.append("confidence")
    rows = take_meta(meta, cand, cols)
    synset = pc.dictionary_encode(pc.fill_null(rows["synset"], "")).combine_chunks()
    code = synset.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    pair = np.unique(gid * (int(code.max()) + 1) + code)  # distinct (group, synset)
    one = (np.bincount(pair // (int(code.max()) + 1), minlength=int(gid.max()) + 1) == 1)[gid]
    dups = [_settle_single(rows.filter(pa.array(one)), cand[one], gid[one], keep)]
    dup_rows: list[dict] = []
    conflicts: list[int] = []
    reasons: list[str] = []
    multi = np.flatnonzero(~one)
    if multi.size:
        every = _rows(rows.take(pa.array(multi)), cand[multi])
        bounds = np.flatnonzero(np.diff(gid[multi])) + 1
        at = 0
        for size in np.diff(np.concatenate([[0], bounds, [multi.size]])).tolist():
            _settle_group(every[at:at + size], opts, keep, dup_rows, conflicts, reasons)
            at += size
    dups.append(pa.Table.from_pylist(dup_rows, schema=DUPLICATE_SCHEMA))
    return DedupResult(keep, pa.concat_tables(dups), np.asarray(conflicts, dtype=np.int64),
                       reasons)


def _settle_single(rows: pa.Table, index: np.ndarray, gid: np.ndarray, keep: np.ndarray
                   ) -> pa.Table:
    """Groups of copies under one synset, all at once: per group the survivor is the first by
    (split rank, source, row), what `_keep_one` picks; every other copy is a duplicate."""
    if not index.size:
        return DUPLICATE_SCHEMA.empty_table()
    split = pc.fill_null(rows["split"], "").to_numpy(zero_copy_only=False)
    rank = np.full(split.size, 3, np.int8)
    for name, r in _SPLIT_RANK.items():
        rank[split == name] = r
    source = pc.rank(rows["source"], sort_keys="ascending", tiebreaker="first")
    order = np.lexsort((source.to_numpy(zero_copy_only=False), rank, gid))
    first = np.ones(order.size, dtype=bool)
    first[1:] = gid[order][1:] != gid[order][:-1]
    kept_of = np.empty(int(gid.max()) + 1, np.int64)
    kept_of[gid[order][first]] = order[first]
    lost = np.sort(order[~first])
    won = kept_of[gid[lost]]
    keep[index[lost]] = False
    kind = np.where(split[lost] == split[won], "exact", "cross-split")
    a, b = rows.take(pa.array(lost)), rows.take(pa.array(won))
    return pa.table({
        "key": a["key"], "source": a["source"], "synset": a["synset"], "split": a["split"],
        "kept_key": b["key"], "kept_source": b["source"], "kind": pa.array(kind, pa.string()),
        "distance": pa.array(np.zeros(lost.size, np.int32)),
    }).cast(DUPLICATE_SCHEMA)


def _duplicate_groups(meta: pa.Table, block: np.ndarray | None = None) -> list[np.ndarray]:
    """Row indices of every sha256 that occurs more than once, in order of first occurrence."""
    cand, gid = _duplicate_rows(meta, block)
    return np.split(cand, np.flatnonzero(np.diff(gid)) + 1) if cand.size else []


def _duplicate_rows(meta: pa.Table, block: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The rows whose sha256 occurs more than once, grouped (groups numbered in order of first
    occurrence, rows ascending within a group), and their group numbers.

    Sort based and bounded: one sort of the rows' 64-bit blocks of their hash (the first 16 hex
    digits) finds the blocks that occur twice; only those rows are taken and compared on the
    whole hash. So the memory is 8-16 bytes a row plus the candidates (the copies), never a
    hash table of every hash; each block range is independent (a task per range could do it
    on a cluster)."""
    none = np.empty(0, np.int64)
    if meta.num_rows == 0:
        return none, none
    if block is None:
        block = sha256_block(meta.column("sha256"))
    ranked = np.sort(block)
    same = ranked[1:] == ranked[:-1]
    if not same.any():
        return none, none
    twice = ranked[1:][same]
    twice = twice[np.append(True, twice[1:] != twice[:-1])]  # distinct, ascending
    cand = sorted_members(block, twice)
    hashes = take_meta(meta, cand, ["sha256"])["sha256"]
    valid = pc.is_valid(hashes).to_numpy(zero_copy_only=False)
    cand, hashes = cand[valid], hashes.filter(pa.array(valid))  # a missing hash is nobody's copy
    if cand.size == 0:
        return none, none
    ids = pc.dictionary_encode(hashes).combine_chunks().indices.to_numpy(zero_copy_only=False)
    keep = np.bincount(ids)[ids] > 1
    cand, ids = cand[keep], ids[keep]
    if cand.size == 0:
        return none, none
    grouped = np.argsort(ids, kind="stable")  # ids number the hashes by first occurrence
    ids = ids[grouped]
    gid = np.cumsum(np.append(0, ids[1:] != ids[:-1])).astype(np.int64)
    return cand[grouped], gid


def sha256_block(column: pa.ChunkedArray | pa.Array, chunk: int = 1 << 18) -> np.ndarray:
    """The first 64 bits of each row's sha256 as uint64: of its first 16 hex digits (a string
    column; rows that are not 64 characters: a hash of the string instead) or of its first 8
    bytes (fixed_size_binary(32)); vectorised over the buffers, `chunk` rows at a time."""
    arrays = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out = [np.empty(0, np.uint64)]
    for array in arrays:
        for start in range(0, len(array), chunk):
            out.append(_block(array.slice(start, chunk)))
    return np.concatenate(out)


_LOW = np.uint64(0x0F0F0F0F0F0F0F0F)
_ONES = np.uint64(0x0101010101010101)


def _hex_word(w: np.ndarray) -> np.ndarray:
    """8 ASCII hex digits held little-endian in a uint64 (the first digit in the low byte) ->
    their 32-bit value, by shifts and masks over the whole array (no per-byte lookup)."""
    nib = (w & _LOW) + ((w >> np.uint64(6)) & _ONES) * np.uint64(9)  # '0'-'9', 'a'-'f', 'A'-'F'
    p = ((nib << np.uint64(4)) | (nib >> np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    p = ((p << np.uint64(8)) | (p >> np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    return ((p << np.uint64(16)) | (p >> np.uint64(32))) & np.uint64(0xFFFFFFFF)


def _block(array: pa.Array) -> np.ndarray:
    n = len(array)
    if pa.types.is_fixed_size_binary(array.type) and array.type.byte_width >= 8:
        width = array.type.byte_width
        raw = np.frombuffer(array.buffers()[1], np.uint8, (array.offset + n) * width)
        first = raw.reshape(-1, width)[array.offset:, :8]
        return np.ascontiguousarray(first).view(">u8").reshape(n).astype(np.uint64)
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = array.cast(pa.string())
    out = np.zeros(n, np.uint64)
    if n == 0:
        return out
    wide = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(array.buffers()[1], wide, n + 1, array.offset * np.dtype(wide).itemsize)
    data = array.buffers()[2]
    hexes = np.diff(offsets) == 64
    if array.null_count:
        hexes &= pc.is_valid(array).to_numpy(zero_copy_only=False)
    if hexes.any():
        starts = offsets[:-1][hexes].astype(np.int64)
        # every byte offset of the buffer as an (unaligned) little-endian uint64: a 16-digit
        # block is two such words, gathered without a (rows x 16) index
        words = np.ndarray((data.size - 7,), "<u8", buffer=data, strides=(1,))
        out[hexes] = (_hex_word(words[starts]) << np.uint64(32)) | _hex_word(words[starts + 8])
    other = np.flatnonzero(~hexes)
    if other.size:  # not a hex sha256 (tests, a null): any stable 64-bit value will do
        values = array.take(pa.array(other)).to_pylist()
        out[other] = [hash(v) & (2**64 - 1) for v in values]
    return out


def _rows(rows: pa.Table, index: np.ndarray) -> list[dict]:
    """Taken rows as dicts, each with its row number in the input (`index`)."""
    out = rows.to_pylist()
    for i, row in zip(index.tolist(), out):
        row.setdefault("confidence", None)
        row["index"] = i
    return out


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
