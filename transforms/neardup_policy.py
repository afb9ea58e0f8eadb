"""Near-duplicate policy on a metadata table: who survives, what is recorded, what conflicts.

Works on metadata only (key, synset, split, width, height, phash, source), never on image bytes.
Rules, applied to clusters of near duplicates (connected components of pairs within `radius`):
- one survivor per cluster: an evaluation copy (val/test) first, then the highest resolution,
  then the smallest key (deterministic, independent of row order);
- a dropped copy is recorded in DUPLICATE_SCHEMA with kind `near` (same split and synset),
  `cross-split` (same synset, other split: the train copy goes) or `label-conflict` (other
  synset, only with near_conflicts="drop"), its Hamming distance to the survivor and the
  survivor's key and source;
- across synsets, by default ("keep") copies are not clustered together: both survive and the
  pair of survivors is listed in the conflicts table, because near pairs can be distinct photos.

Clusters are transitive, so a dropped copy can be further than `radius` from its survivor (a
chain); its recorded distance is the true one. Rows with a null phash are never compared and
always kept. Work is bounded by distinct (phash, synset) nodes, not by copies: a thousand blank
images cost one node each per synset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .clusters import clusters
from .neardup import Pairs, expand_pairs, hamming, search_distinct, sorted_members
from .schema import DUPLICATE_SCHEMA
from .takes import take_meta

NearConflictPolicy = Literal["keep", "drop"]
Search = Callable[[np.ndarray, int], Pairs]  # (distinct ascending hashes, radius) -> pairs
EVAL_SPLITS = ("val", "test")
META_COLUMNS = ("key", "synset", "split", "width", "height", "phash", "source")

from synshard.shards.tables import CONFLICT_SCHEMA  # noqa: E402,F401  (declared there)


@dataclass(frozen=True)
class NearDedupResult:
    """keep: one bool per input row; duplicates: dropped rows; conflicts: cross-synset pairs."""

    keep: np.ndarray
    duplicates: pa.Table
    conflicts: pa.Table  # CONFLICT_SCHEMA's columns, strings dictionary-encoded (see _conflicts)
    labels: np.ndarray  # cluster label per row (smallest row index in its cluster)


@dataclass(frozen=True)
class _Rows:
    """The columns the policy needs, as numpy arrays over the rows with a phash."""

    index: np.ndarray  # row numbers in the input table
    phash: np.ndarray
    synset: np.ndarray  # int codes
    split: np.ndarray  # int codes (equal codes: equal splits)
    is_eval: np.ndarray  # the split is an evaluation split (val, test)
    area: np.ndarray
    key_rank: np.ndarray  # distinct, in key order (equal keys: in row order)


def _rows(meta: pa.Table, index: np.ndarray, phash: np.ndarray) -> _Rows:
    """The policy's columns for the rows `index` (ascending) of the table (phash: theirs).

    Strings become codes (a split per row as a Python string was ~60 bytes a hot row) and
    indices int32 where the rows allow: at 1M rows of the scale build, half a million rows
    take part in a pair."""
    t = take_meta(meta, index, [c for c in META_COLUMNS if c not in ("phash", "source")])
    dtype = index_dtype(index.size)
    (synset, _), (split, splits) = (_codes(t[name], dtype) for name in ("synset", "split"))
    area = (pc.fill_null(t["width"], 0).to_numpy(zero_copy_only=False).astype(np.int64)
            * pc.fill_null(t["height"], 0).to_numpy(zero_copy_only=False).astype(np.int64))
    key_rank = pc.rank(t["key"], sort_keys="ascending", tiebreaker="first")
    del t
    is_eval = np.isin(splits.to_numpy(zero_copy_only=False), EVAL_SPLITS)[split]
    return _Rows(index, np.asarray(phash, dtype=np.uint64), synset, split, is_eval, area,
                 key_rank.to_numpy(zero_copy_only=False).astype(dtype) - 1)


def _codes(column: pa.ChunkedArray, dtype: type) -> tuple[np.ndarray, pa.Array]:
    """A string column's values as dictionary codes (nulls as ""), and the dictionary."""
    encoded = pc.dictionary_encode(pc.fill_null(column, "")).combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(dtype), encoded.dictionary


def index_dtype(n: int) -> type:
    """The narrowest signed integer type that indexes n items (int32 below 2**31)."""
    return np.int32 if n < 2**31 else np.int64


def distinct_counts(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (ascending) and how often each occurs: one sort (numpy 2.4's
    np.unique without return_inverse hashes instead, about 30x slower at 10M)."""
    s = np.sort(np.asarray(h, dtype=np.uint64))
    first = np.ones(s.size, dtype=bool)
    np.not_equal(s[1:], s[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    return s[starts], np.diff(np.append(starts, s.size))


def _hot(phash: np.ndarray, radius: int, search: Search) -> tuple[np.ndarray, np.ndarray, Pairs]:
    """The hashes that take part in any pair (shared by 2+ rows, or within radius of another
    distinct hash): a mask over the rows, those hashes ascending, and the pairs among them.

    Every other row is a cluster of its own: kept, no record, no conflict. So the policy's
    per-row work (ranks, nodes, clusters) runs on these rows only, a few percent of a crawl."""
    uniq, counts = distinct_counts(phash)
    distinct = search(uniq, radius) if radius > 0 and uniq.size > 1 else Pairs.empty()
    hot = counts > 1
    hot[distinct.i] = True
    hot[distinct.j] = True
    renumber = np.cumsum(hot) - 1
    hashes = uniq[hot]
    pairs = Pairs(renumber[distinct.i], renumber[distinct.j], distinct.dist)
    row_hot = np.zeros(phash.size, dtype=bool)
    row_hot[sorted_members(phash, hashes)] = True
    return row_hot, hashes, pairs


def _node_pairs(rows: _Rows, hashes: np.ndarray, distinct: Pairs
                ) -> tuple[np.ndarray, np.ndarray, Pairs]:
    """Nodes = distinct (phash, synset); returns row->node, node representative row, node pairs.

    `hashes` are the rows' distinct hashes (ascending), `distinct` the pairs among them."""
    hash_inv = np.searchsorted(hashes, rows.phash).astype(np.int64)
    n_syn = int(rows.synset.max()) + 1 if rows.synset.size else 1
    node_vals, node_of_row = np.unique(hash_inv * n_syn + rows.synset, return_inverse=True)
    node_of_row = node_of_row.reshape(-1)
    rep = np.full(node_vals.size, rows.phash.size, dtype=np.int64)
    np.minimum.at(rep, node_of_row, np.arange(rows.phash.size))
    pairs = expand_pairs(node_vals // n_syn, hashes.size, distinct)
    return node_of_row, rep, pairs


def _survivors(rows: _Rows, labels: np.ndarray) -> np.ndarray:
    """Per row, the row that survives its cluster: eval split, largest area, smallest key."""
    order = np.lexsort((rows.key_rank, -rows.area, ~rows.is_eval, labels))
    first = np.ones(order.size, dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    winner = np.empty(labels.max() + 1 if labels.size else 0, dtype=np.int64)
    winner[labels[order][first]] = order[first]
    return winner[labels]


def near_dedup(meta: pa.Table, radius: int, near_conflicts: NearConflictPolicy = "keep",
               search: Search | None = None) -> NearDedupResult:
    """Apply the near-duplicate policy to a metadata table (see the module docstring).

    `meta` is a table, or anything with `num_rows`, `column_names`, `column(name)` and
    `take(rows, columns)` (the build's row view, synshard.builder.decide.rows.Accepted): the
    phash column is read whole (8 bytes a row), every other column only for the rows that
    take part in a pair (a few percent). `search(distinct ascending hashes, radius) -> Pairs`
    finds the pairs within radius: by default `search_distinct` in this process (on every
    free local CPU); a build on a cluster passes the same search run as Ray tasks
    (synshard/builder/neardup_ray.py), which finds exactly the same pairs."""
    if near_conflicts not in ("keep", "drop"):
        raise ValueError(f"near_conflicts must be 'keep' or 'drop', not {near_conflicts!r}")
    missing = [c for c in META_COLUMNS if c not in meta.column_names]
    if missing:
        raise ValueError(f"metadata table lacks columns {missing}")
    column = meta.column("phash")
    valid = np.flatnonzero(pc.is_valid(column).to_numpy(zero_copy_only=False))
    phash = pc.cast(pc.drop_null(column), pa.uint64()).to_numpy(zero_copy_only=False)
    del column
    phash = phash.astype(np.uint64, copy=False)
    row_hot, hashes, distinct = _hot(phash, radius, search or search_distinct)
    rows = _rows(meta, valid[row_hot], phash[row_hot])
    del phash, valid, row_hot
    node_of_row, rep, pairs = _node_pairs(rows, hashes, distinct)
    del hashes, distinct  # (each step's inputs let go as it ends: 1M rows of the scale build
    # give ~1M pairs of hashes and ~1.2M of nodes, 20 bytes each)
    same = rows.synset[rep[pairs.i]] == rows.synset[rep[pairs.j]]
    labels = _clusters(rows.phash.size, node_of_row, rep, pairs,
                       same if near_conflicts == "keep" else None)
    del node_of_row
    survivor = _survivors(rows, labels)
    keep = np.ones(meta.num_rows, dtype=bool)
    keep[rows.index[survivor != np.arange(survivor.size)]] = False
    all_labels = np.arange(meta.num_rows, dtype=np.int64)
    all_labels[rows.index] = rows.index[labels]
    del labels
    duplicates = _duplicates(meta, rows, survivor)
    a, b, d = _conflict_pairs(rows, survivor, rep, pairs, ~same)
    index = rows.index
    del rows, survivor, rep, pairs, same  # (before the conflicts' strings are taken: ~45 MiB
    # of the policy's arrays at 1M rows of the scale build)
    conflicts = _conflict_table(meta, index, a, b, d)
    return NearDedupResult(keep, duplicates, conflicts, all_labels)


def _clusters(n: int, node_of_row: np.ndarray, rep: np.ndarray, pairs: Pairs,
              joined: np.ndarray | None) -> np.ndarray:
    """Cluster label per hot row: rows of one node together, and the node pairs `joined`
    (every pair where None)."""
    pi, pj = (rep[pairs.i], rep[pairs.j]) if joined is None else \
        (rep[pairs.i[joined]], rep[pairs.j[joined]])
    return clusters(n, np.concatenate([np.arange(n), pi]),
                    np.concatenate([rep[node_of_row], pj]))


def _duplicates(meta: pa.Table, rows: _Rows, survivor: np.ndarray) -> pa.Table:
    """DUPLICATE_SCHEMA rows for every dropped copy, sorted by key."""
    dropped = np.flatnonzero(survivor != np.arange(survivor.size))
    won = survivor[dropped]
    kind = np.where(rows.synset[dropped] != rows.synset[won], "label-conflict",
                    np.where(rows.split[dropped] != rows.split[won], "cross-split", "near"))
    cols = ["key", "source", "synset", "split"]
    lost_t = take_meta(meta, rows.index[dropped], cols)
    won_t = take_meta(meta, rows.index[won], cols)
    table = pa.table(
        {
            "key": lost_t["key"], "source": lost_t["source"], "synset": lost_t["synset"],
            "split": lost_t["split"], "kept_key": won_t["key"], "kept_source": won_t["source"],
            "kind": pa.array(kind, pa.string()),
            "distance": pa.array(hamming(rows.phash[dropped], rows.phash[won]), pa.int32()),
        }
    )
    return table.cast(DUPLICATE_SCHEMA).sort_by("key")


def _conflicts(meta: pa.Table, rows: _Rows, survivor: np.ndarray, rep: np.ndarray,
               pairs: Pairs, cross: np.ndarray) -> pa.Table:
    """Cross-synset near pairs, mapped to their survivors, once per survivor pair, sorted by
    (key, other_key), with CONFLICT_SCHEMA's string columns dictionary-encoded over the rows the
    pairs name (`_conflict_pairs`, then `_conflict_table`: near_dedup lets the policy's arrays go
    between the two)."""
    return _conflict_table(meta, rows.index, *_conflict_pairs(rows, survivor, rep, pairs, cross))


def _conflict_pairs(rows: _Rows, survivor: np.ndarray, rep: np.ndarray, pairs: Pairs,
                    cross: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The conflicts as (a, b, distance): positions among the hot rows, once per survivor pair,
    in (key, other_key) order (`_conflict_table` makes the table).

    `.cast(CONFLICT_SCHEMA)` of that table decodes its strings (writing the side table does): a
    row takes part in many pairs, and 1.18M pairs of the 1M scale build named 496,000 rows
    (274 -> ~90 MiB).

    A survivor pair can be further apart than radius when only a dropped copy was near. The pairs
    are put in key order as row numbers (key_rank) before any string is taken: sorting the taken
    table instead held it twice (+571 MiB for 1.18M pairs in the 1M-image scale build). Keys
    that repeat (never in a build: a key is synset + hash, and copies are settled before) keep
    their row order among them, so such a table is not in (key, other_key) order; decide's
    `_finish` checks the order and sorts when it is not.
    """
    n, dtype = survivor.size, index_dtype(survivor.size)
    won = survivor.astype(dtype)[rep]  # per node, the row that survives it
    a, b = won[pairs.i[cross]], won[pairs.j[cross]]
    del won
    ra, rb = rows.key_rank[a], rows.key_rank[b]
    del a, b
    apart = ra != rb
    ra, rb = ra[apart], rb[apart]
    del apart
    ranked, hi = np.minimum(ra, rb).astype(np.int64), np.maximum(ra, rb)
    del ra, rb
    ranked *= n
    ranked += hi  # (key rank, other key rank) as one int64, sorted in place, then once each
    del hi
    ranked.sort()
    if ranked.size:
        ranked = ranked[np.append(True, ranked[1:] != ranked[:-1])]
    in_key_order: np.ndarray = np.empty(n, dtype)
    in_key_order[rows.key_rank] = np.arange(n, dtype=dtype)
    a, b = in_key_order[ranked // n], in_key_order[ranked % n]
    del ranked, in_key_order
    d = hamming(rows.phash[a], rows.phash[b])  # between the survivors listed, not the pair found
    return a, b, d


def _conflict_table(meta: pa.Table, index: np.ndarray, a: np.ndarray, b: np.ndarray,
                    d: np.ndarray) -> pa.Table:
    """The conflicts table of pairs (a, b) of hot rows (`index`: their rows in `meta`), distance
    `d`: each named row's key, synset, split and source taken once, a column at a time (one
    column's transients at once), one dictionary per column for both sides."""
    named = np.zeros(index.size, dtype=bool)
    named[a] = True
    named[b] = True
    at = np.cumsum(named, dtype=np.int32) - 1  # a named row's position among the named ones
    sides = [pa.array(at[a]), pa.array(at[b])]  # one index array per side, for its 4 columns
    del a, b, at
    taken = index[np.flatnonzero(named)]
    del named
    columns = {}
    for name in ("key", "synset", "split", "source"):
        values = take_meta(meta, taken, [name])[name].cast(pa.string()).combine_chunks()
        for prefix, idx in zip(("", "other_"), sides):
            columns[prefix + name] = pa.DictionaryArray.from_arrays(idx, values)
        del values
    columns["distance"] = pa.array(d, pa.int32())
    return pa.table(columns, schema=_ENCODED_CONFLICTS)


_ENCODED_CONFLICTS = pa.schema([
    f.with_type(pa.dictionary(pa.int32(), pa.string())) if f.type == pa.string() else f
    for f in CONFLICT_SCHEMA
])

