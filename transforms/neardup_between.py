"""Exact near-duplicate search between two hash sets: every (a, b) pair within Hamming radius r.

The same multi-index search as neardup.py (see its docstring), run once over the union of the
two sets' distinct hashes; the pairs that join `a` to `b` are kept. Used for a release against an
evaluation set (`synshard leakage`, `--dedup-against`), takedowns by likeness, and new inputs
against a base release. `near_pairs` picks this search or a plain pairwise comparison, whichever
is faster for the sizes and radius at hand (same pairs, same order): callers use it.
"""
from __future__ import annotations

import numpy as np

from .neardup import (
    DEFAULT_MAX_BUCKET,
    U64,
    Pairs,
    collapse,
    cross_pairs,
    groups_of,
    popcount64,
    search_distinct,
)

# near_pairs: below this many comparisons (or above this radius) compare every pair.
PAIRWISE_PAIRS = 200_000_000  # about 2 s at 1.1e8 pairs/s
MAX_INDEXED_RADIUS = 8
PAIRWISE_CELLS = 1 << 23  # distances held at once (int32: 32 MiB)


def search_between_distinct(ha: np.ndarray, hb: np.ndarray, radius: int, width: int = 64,
                            max_bucket: int = DEFAULT_MAX_BUCKET, depth: int = 0,
                            threads: int | None = None) -> Pairs:
    """Pairs (i into ha, j into hb) within radius; each side's hashes distinct.

    One search of the union's distinct hashes by the self search (`search_distinct`: the
    sorted permuted tables, a table per local CPU), keeping the pairs that join a hash of `a`
    to one of `b` (either way round), plus the hashes both hold (distance 0). The union's
    inner pairs of one side are found and dropped: the sorts dominate, not the pairs (before,
    an argsort of `a`'s keys per table, ~3x the time at 10M)."""
    ha, hb = np.asarray(ha, dtype=U64), np.asarray(hb, dtype=U64)
    if ha.size == 0 or hb.size == 0:
        return Pairs.empty()
    union = np.sort(np.concatenate([ha, hb]))
    union = union[np.append(True, union[1:] != union[:-1])]
    in_a = np.full(union.size, -1, np.int64)
    in_b = np.full(union.size, -1, np.int64)
    in_a[np.searchsorted(union, ha)] = np.arange(ha.size)
    in_b[np.searchsorted(union, hb)] = np.arange(hb.size)
    found = search_distinct(union, radius, width, max_bucket, depth, threads) if radius > 0 \
        else Pairs.empty()
    both = np.flatnonzero((in_a >= 0) & (in_b >= 0))
    ab = (in_a[found.i] >= 0) & (in_b[found.j] >= 0)
    ba = (in_a[found.j] >= 0) & (in_b[found.i] >= 0)
    return Pairs.concat([
        Pairs(in_a[both], in_b[both], np.zeros(both.size, np.int32)),
        Pairs(in_a[found.i[ab]], in_b[found.j[ab]], found.dist[ab]),
        Pairs(in_a[found.j[ba]], in_b[found.i[ba]], found.dist[ba]),
    ])


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
