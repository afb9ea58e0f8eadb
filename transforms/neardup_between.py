"""Exact near-duplicate search between two hash sets: every (a, b) pair within Hamming radius r.

The same multi-index method as neardup.py (see its docstring), bipartite: for each table, every
hash of `b` looks up its bucket among the sorted keys of `a`. Used for a release against an
evaluation set (`synshard leakage`, `--dedup-against`), takedowns by likeness, and new inputs
against a base release. `near_pairs` picks this search or a plain pairwise comparison, whichever
is faster for the sizes and radius at hand (same pairs, same order): callers use it.
"""
from __future__ import annotations

import numpy as np

from .neardup import (
    DEFAULT_MAX_BUCKET,
    MAX_DEPTH,
    U64,
    Layout,
    Pairs,
    choose_match_blocks,
    collapse,
    cross_pairs,
    groups_of,
    layout_for,
    popcount64,
)

# near_pairs: below this many comparisons (or above this radius) compare every pair.
PAIRWISE_PAIRS = 200_000_000  # about 2 s at 1.1e8 pairs/s
MAX_INDEXED_RADIUS = 8
PAIRWISE_CELLS = 1 << 23  # distances held at once (int32: 32 MiB)


def _verify_between(ha: np.ndarray, hb: np.ndarray, layout: Layout, table: int,
                    a: np.ndarray, b: np.ndarray) -> Pairs:
    """`_verify` for pairs (a from ha, b from hb); i indexes ha, j indexes hb."""
    x = ha[a] ^ hb[b]
    d = popcount64(x)
    ok = d <= layout.radius
    a, b, x, d = a[ok], b[ok], x[ok], d[ok]
    mine = layout.first_table[layout.equal_mask(x)] == table
    return Pairs(a[mine], b[mine], d[mine])


def _table_pairs_between(ha: np.ndarray, hb: np.ndarray, layout: Layout, table: int,
                         max_bucket: int, depth: int) -> Pairs:
    """One table of the bipartite search: each b looks up its bucket in a's sorted keys."""
    ka = layout.key(ha, table)
    oa = np.argsort(ka)
    ska, kb = ka[oa], layout.key(hb, table)
    lo = np.searchsorted(ska, kb, "left").astype(np.int64)
    hi = np.searchsorted(ska, kb, "right").astype(np.int64)
    big = (hi - lo) > max_bucket
    out, d = [], 0
    active = np.flatnonzero(~big & (hi > lo))
    while active.size:
        out.append(_verify_between(ha, hb, layout, table, oa[lo[active] + d], active))
        d += 1
        active = active[lo[active] + d < hi[active]]
    big_b = np.flatnonzero(big)
    for key in np.unique(kb[big_b]):
        mb = big_b[kb[big_b] == key]
        ma = oa[lo[mb[0]]:hi[mb[0]]]
        out.append(_big_bucket_between(ha, hb, layout, table, ma, mb, max_bucket, depth))
    return Pairs.concat(out)


def _big_bucket_between(ha: np.ndarray, hb: np.ndarray, layout: Layout, table: int,
                        ma: np.ndarray, mb: np.ndarray, max_bucket: int, depth: int) -> Pairs:
    """Recurse on the bits outside the key, as `_big_bucket` does for the self search."""
    rest_width = layout.width - layout.key_bits(table)
    if depth >= MAX_DEPTH or rest_width < 2 * (layout.radius + 1):
        a, b = np.repeat(ma, mb.size), np.tile(mb, ma.size)
        return _verify_between(ha, hb, layout, table, a, b)
    sub = search_between_distinct(layout.rest(ha[ma], table), layout.rest(hb[mb], table),
                                  layout.radius, rest_width, max_bucket, depth + 1)
    a, b = ma[sub.i], mb[sub.j]
    mine = layout.first_table[layout.equal_mask(ha[a] ^ hb[b])] == table
    return Pairs(a[mine], b[mine], sub.dist[mine])


def search_between_distinct(ha: np.ndarray, hb: np.ndarray, radius: int, width: int = 64,
                            max_bucket: int = DEFAULT_MAX_BUCKET, depth: int = 0) -> Pairs:
    """Pairs (i into ha, j into hb) within radius; each side's hashes distinct."""
    ha, hb = np.asarray(ha, dtype=U64), np.asarray(hb, dtype=U64)
    if ha.size == 0 or hb.size == 0:
        return Pairs.empty()
    layout = layout_for(width, radius, choose_match_blocks(max(ha.size, hb.size), radius, width))
    parts = [_table_pairs_between(ha, hb, layout, t, max_bucket, depth)
             for t in range(len(layout.tables))]
    return Pairs.concat(parts)


def find_pairs_between(a: np.ndarray, b: np.ndarray, radius: int,
                       max_bucket: int = DEFAULT_MAX_BUCKET
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (i into a, j into b, dist) within radius, each once, sorted: a release vs an eval set."""
    ua, inv_a = collapse(a)
    ub, inv_b = collapse(b)
    distinct = search_between_distinct(ua, ub, radius, 64, max_bucket)
    pairs = cross_pairs(groups_of(inv_a, ua.size), groups_of(inv_b, ub.size),
                   distinct.i, distinct.j, distinct.dist)
    return pairs.sorted().as_tuple()


def near_pairs(a: np.ndarray, b: np.ndarray, radius: int) -> tuple[np.ndarray, ...]:
    """(i into a, j into b, dist) of every pair within `radius`, exactly, each once.

    The multi-index search (transforms/neardup.py) is fastest at the radii it was tuned for
    (default 6): 2,000 x 1M hashes at r=6 take 4 s against 18 s compared pairwise. An eval set
    against a small release is quicker compared pairwise (about 1.1e8 pairs/s here), and so is a
    wide radius, where the search's tables multiply (1,000 x 100k at r=16: 112 s vs under 1 s).
    """
    a, b = np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)
    if radius <= MAX_INDEXED_RADIUS and a.size * b.size > PAIRWISE_PAIRS:
        return find_pairs_between(a, b, radius)
    return _pairwise(a, b, radius)


def _pairwise(a: np.ndarray, b: np.ndarray, radius: int) -> tuple[np.ndarray, ...]:
    """Every a x b distance, a few million at a time (memory bounded by PAIRWISE_CELLS)."""
    step = max(1, PAIRWISE_CELLS // max(b.size, 1))
    parts = [(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32))]
    for start in range(0, a.size, step):
        block = a[start:start + step, None] ^ b[None, :]
        dist = popcount64(block.ravel()).reshape(block.shape)
        i, j = np.nonzero(dist <= radius)
        parts.append((i + start, j, dist[i, j]))
    i, j, d = (np.concatenate(p) for p in zip(*parts))
    return i.astype(np.int64), j.astype(np.int64), d.astype(np.int32)
