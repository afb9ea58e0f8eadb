"""Exact near-duplicate search over 64-bit perceptual hashes: every pair within Hamming radius r.

Method (multi-index hashing, a generalised pigeonhole): split the `width` bits into k = r + q
contiguous blocks. Two hashes within distance r differ in at most r blocks, so they agree exactly
on at least q of them, hence on every block of at least one q-combination. Each q-combination of
blocks is a *table*: its key is the concatenation of those blocks' bits. Within a table, hashes
with equal keys form a bucket; candidates are the pairs inside a bucket, verified by popcount.
q = 1 is the textbook r+1-block pigeonhole; q > 1 makes keys longer (fewer false candidates) at
the price of C(r+q, q) tables, and wins at millions of hashes (see `choose_match_blocks`, and
bench/bench_neardup.py for the measured comparison).

Each pair is emitted exactly once, with no global de-duplication: a pair is reported only by the
*first* table (in lexicographic combination order) whose blocks it agrees on, found through a
lookup from its block-equality bitmask. So every (table, key range) is an independent pure task
(`SearchTask`, `run_task`), which synshard/builder/neardup_ray.py runs as Ray tasks. The search between
two sets (a release against an evaluation set) is in neardup_between.py.

Bounds on huge buckets (flat or near-blank images):
- identical hashes are collapsed first (`collapse`); their distance-0 pairs are enumerated from
  the groups (`expand_pairs`), never compared;
- a bucket of distinct hashes larger than `max_bucket` is searched recursively with the same
  method on the bits its key does not cover (its members agree on the key bits, so distance lives
  in the rest), so time follows the output size rather than the bucket size squared;
- candidates are generated one bucket offset at a time, so memory is O(n) per step, whatever the
  bucket sizes.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property, lru_cache
from math import comb

import numpy as np

U64 = np.uint64
DEFAULT_MAX_BUCKET = 2048
DENSE_CHUNK = 1 << 22  # candidate pairs per step when a bucket is compared pairwise
MAX_DEPTH = 1  # recursion levels for oversized buckets; deeper ones are compared pairwise


@dataclass(frozen=True)
class Pairs:
    """Pairs (i, j, dist) with i < j, as three parallel arrays."""

    i: np.ndarray
    j: np.ndarray
    dist: np.ndarray

    @staticmethod
    def empty() -> "Pairs":
        return Pairs(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32))

    @staticmethod
    def concat(parts: list["Pairs"]) -> "Pairs":
        if not parts:
            return Pairs.empty()
        return Pairs(
            np.concatenate([p.i for p in parts]).astype(np.int64, copy=False),
            np.concatenate([p.j for p in parts]).astype(np.int64, copy=False),
            np.concatenate([p.dist for p in parts]).astype(np.int32, copy=False),
        )

    def sorted(self) -> "Pairs":
        """Canonical order (by i, then j): results independent of task order."""
        order = np.lexsort((self.j, self.i))
        return Pairs(self.i[order], self.j[order], self.dist[order])

    def __len__(self) -> int:
        return int(self.i.size)

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.i, self.j, self.dist


_POP8 = np.array([bin(v).count("1") for v in range(256)], dtype=np.uint8)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Bits set per uint64: numpy>=2's bitwise_count, else a byte lookup table."""
    x = np.asarray(x, dtype=U64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int32)
    return _POP8[x.view(np.uint8).reshape(-1, 8)].sum(axis=1, dtype=np.int32)


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Hamming distance between uint64 hashes (elementwise)."""
    return popcount64(np.bitwise_xor(np.asarray(a, dtype=U64), np.asarray(b, dtype=U64)))


@dataclass(frozen=True)
class Layout:
    """k = radius + q contiguous blocks over `width` bits; tables = q-combinations of blocks."""

    width: int
    radius: int
    q: int

    def __post_init__(self) -> None:
        if not 0 <= self.radius < self.width <= 64 or self.q < 1:
            raise ValueError(f"bad layout width={self.width} radius={self.radius} q={self.q}")
        if self.radius + self.q > self.width:
            raise ValueError("more blocks than bits")

    @cached_property
    def blocks(self) -> tuple[tuple[int, int], ...]:
        """(shift, bits) of each block, low bits first; widths differ by at most one."""
        k = self.radius + self.q
        sizes = [self.width // k + (1 if b < self.width % k else 0) for b in range(k)]
        shifts = np.cumsum([0] + sizes[:-1]).tolist()
        return tuple(zip(shifts, sizes))

    @cached_property
    def tables(self) -> tuple[tuple[int, ...], ...]:
        return tuple(itertools.combinations(range(len(self.blocks)), self.q))

    @cached_property
    def first_table(self) -> np.ndarray:
        """Block-equality bitmask -> the first table whose blocks are all equal, or -1."""
        k = len(self.blocks)
        out = np.full(1 << k, -1, dtype=np.int32)
        for t in reversed(range(len(self.tables))):
            bits = sum(1 << b for b in self.tables[t])
            masks = np.arange(1 << k)
            out[(masks & bits) == bits] = t
        return out

    def key_bits(self, table: int) -> int:
        return sum(self.blocks[b][1] for b in self.tables[table])

    def _gather(self, h: np.ndarray, blocks: list[int]) -> np.ndarray:
        out = np.zeros(h.shape, dtype=U64)
        offset = 0
        for b in blocks:
            shift, bits = self.blocks[b]
            part = (h >> U64(shift)) & U64((1 << bits) - 1)
            out |= part << U64(offset)
            offset += bits
        return out

    def key(self, h: np.ndarray, table: int) -> np.ndarray:
        """The table's key: its blocks' bits, concatenated."""
        return self._gather(h, list(self.tables[table]))

    def rest(self, h: np.ndarray, table: int) -> np.ndarray:
        """The bits the table's key does not cover, concatenated (width - key_bits bits)."""
        chosen = set(self.tables[table])
        return self._gather(h, [b for b in range(len(self.blocks)) if b not in chosen])

    def equal_mask(self, x: np.ndarray) -> np.ndarray:
        """For xors x: bit b set where block b is all zero (the two hashes agree on it)."""
        m = np.zeros(x.shape, dtype=np.int64)
        for b, (shift, bits) in enumerate(self.blocks):
            zero = ((x >> U64(shift)) & U64((1 << bits) - 1)) == 0
            m |= zero.astype(np.int64) << b
        return m


@lru_cache(maxsize=256)
def layout_for(width: int, radius: int, q: int) -> Layout:
    """Shared Layout instances, so the lookup tables are built once per shape."""
    return Layout(width, radius, q)


# Cost model constants (seconds), measured on the 2-core dev machine by bench/bench_neardup.py:
# per hash per table (key extraction + argsort) and per candidate pair (xor, popcount, filters).
SORT_COST = 1.2e-7
PAIR_COST = 3.0e-8


def choose_match_blocks(n: int, radius: int, width: int = 64) -> int:
    """The q (blocks that must match) minimising the modelled time for n distinct random hashes."""
    best, best_cost = 1, float("inf")
    for q in range(1, 6):
        if radius + q > width:
            break
        layout = layout_for(width, radius, q)
        tables = comb(radius + q, q)
        min_bits = min(layout.key_bits(t) for t in range(len(layout.tables)))
        pairs = n * (n - 1) / 2.0 / 2.0**min_bits
        cost = tables * (n * SORT_COST + pairs * PAIR_COST)
        if cost < best_cost:
            best, best_cost = q, cost
    return best


def collapse(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct hashes (sorted) and, per input, the index of its distinct hash."""
    uniq, inverse = np.unique(np.asarray(hashes, dtype=U64), return_inverse=True)
    return uniq, inverse.reshape(-1)


def _run_bounds(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end positions of each run of equal values in a sorted array."""
    change = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    ends = np.concatenate([change, [sorted_keys.size]]).astype(np.int64)
    return starts, ends


def _verify(h: np.ndarray, layout: Layout, table: int, a: np.ndarray, b: np.ndarray) -> Pairs:
    """Keep candidates within radius whose first agreeing table is `table` (emit once)."""
    x = h[a] ^ h[b]
    d = popcount64(x)
    ok = d <= layout.radius
    a, b, x, d = a[ok], b[ok], x[ok], d[ok]
    mine = layout.first_table[layout.equal_mask(x)] == table
    a, b = a[mine], b[mine]
    return Pairs(np.minimum(a, b), np.maximum(a, b), d[mine])


def _pairs_in_runs(
    h: np.ndarray, layout: Layout, table: int, order: np.ndarray, starts: np.ndarray,
    ends: np.ndarray,
) -> list[Pairs]:
    """All in-run candidate pairs, one offset d at a time (memory O(positions) per step)."""
    sizes = ends - starts
    end_of = np.repeat(ends, sizes)
    pos = np.repeat(starts, sizes) + (np.arange(end_of.size) - np.repeat(np.cumsum(sizes) - sizes, sizes))
    out, d = [], 1
    active = np.flatnonzero(pos + 1 < end_of)
    while active.size:
        p = pos[active]
        out.append(_verify(h, layout, table, order[p], order[p + d]))
        d += 1
        active = active[pos[active] + d < end_of[active]]
    return out


def _table_pairs(
    h: np.ndarray, layout: Layout, table: int, key_lo: int, key_hi: int, max_bucket: int,
    depth: int = 0,
) -> Pairs:
    """Pairs emitted by one table over the keys in [key_lo, key_hi): a pure, independent task."""
    key = layout.key(h, table)
    if key_lo == 0 and key_hi >= 1 << layout.key_bits(table):
        order = np.argsort(key)
    else:
        sel = np.flatnonzero((key >= U64(key_lo)) & (key < U64(key_hi)))
        order = sel[np.argsort(key[sel])]
    starts, ends = _run_bounds(key[order])
    sizes = ends - starts
    small = (sizes >= 2) & (sizes <= max_bucket)
    out = _pairs_in_runs(h, layout, table, order, starts[small], ends[small])
    for s, e in zip(starts[sizes > max_bucket], ends[sizes > max_bucket]):
        out.append(_big_bucket(h, layout, table, order[s:e], max_bucket, depth))
    return Pairs.concat(out)


def _dense_pairs(h: np.ndarray, layout: Layout, table: int, members: np.ndarray) -> Pairs:
    """All pairs of one bucket, compared in row chunks of at most DENSE_CHUNK candidates."""
    s, out = members.size, []
    rows = max(1, DENSE_CHUNK // max(s, 1))
    for r0 in range(0, s - 1, rows):
        r = np.arange(r0, min(r0 + rows, s - 1))
        a, b = np.nonzero(r[:, None] < np.arange(s)[None, :])
        out.append(_verify(h, layout, table, members[r[a]], members[b]))
    return Pairs.concat(out)


def _big_bucket(h: np.ndarray, layout: Layout, table: int, members: np.ndarray,
                max_bucket: int, depth: int) -> Pairs:
    """Recurse on the bits outside the key (members agree on the key bits, and are distinct)."""
    rest_width = layout.width - layout.key_bits(table)
    if depth >= MAX_DEPTH or rest_width < 2 * (layout.radius + 1):
        return _dense_pairs(h, layout, table, members)
    sub = search_distinct(layout.rest(h[members], table), layout.radius, rest_width, max_bucket,
                          depth + 1)
    a, b = members[sub.i], members[sub.j]
    mine = layout.first_table[layout.equal_mask(h[a] ^ h[b])] == table
    a, b = a[mine], b[mine]
    return Pairs(np.minimum(a, b), np.maximum(a, b), sub.dist[mine])


@dataclass(frozen=True)
class SearchTask:
    """One independent unit of work: a table and a half-open range of its key values."""

    width: int
    radius: int
    q: int
    table: int
    key_lo: int
    key_hi: int


def plan_tasks(n: int, radius: int, width: int = 64, parts_per_table: int = 1,
               q: int | None = None) -> list[SearchTask]:
    """Split the search over n distinct hashes into (table, key range) tasks."""
    q = q or choose_match_blocks(n, radius, width)
    layout = layout_for(width, radius, q)
    tasks = []
    for t in range(len(layout.tables)):
        span = 1 << layout.key_bits(t)
        cuts = [span * p // parts_per_table for p in range(parts_per_table + 1)]
        tasks += [SearchTask(width, radius, q, t, lo, hi) for lo, hi in zip(cuts, cuts[1:]) if hi > lo]
    return tasks


def run_task(distinct: np.ndarray, task: SearchTask, max_bucket: int = DEFAULT_MAX_BUCKET,
             depth: int = 0) -> Pairs:
    """Pairs (indices into `distinct`) that this task emits; pure, so any executor can run it."""
    layout = layout_for(task.width, task.radius, task.q)
    h = np.asarray(distinct, dtype=U64)
    return _table_pairs(h, layout, task.table, task.key_lo, task.key_hi, max_bucket, depth)


def search_distinct(distinct: np.ndarray, radius: int, width: int = 64,
                    max_bucket: int = DEFAULT_MAX_BUCKET, depth: int = 0) -> Pairs:
    """All pairs of *distinct* hashes within `radius` (distance >= 1), each once, i < j."""
    h = np.asarray(distinct, dtype=U64)
    if h.size < 2 or radius == 0:
        return Pairs.empty()
    tasks = plan_tasks(h.size, radius, width)
    return Pairs.concat([run_task(h, t, max_bucket, depth) for t in tasks])


def groups_of(inverse: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Members of each group, contiguous: (order, start, count)."""
    order = np.argsort(inverse, kind="stable")
    count = np.bincount(inverse, minlength=n_groups).astype(np.int64)
    return order, np.cumsum(count) - count, count


def cross_pairs(ga: tuple, gb: tuple, ui: np.ndarray, uj: np.ndarray, ud: np.ndarray) -> Pairs:
    """Every (member of group ui, member of group uj) for each group pair: the output size."""
    (oa, sa, ca), (ob, sb, cb) = ga, gb
    ci, cj = ca[ui], cb[uj]
    total = ci * cj
    k = np.repeat(np.arange(ui.size), total)
    t = np.arange(k.size) - np.repeat(np.cumsum(total) - total, total)
    a = oa[sa[ui][k] + t // cj[k]]
    b = ob[sb[uj][k] + t % cj[k]]
    return Pairs(a, b, np.repeat(ud, total))


def _within(groups: tuple) -> Pairs:
    """All pairs inside each group of identical hashes (distance 0), by triangular indexing."""
    order, start, count = groups
    tri = count * (count - 1) // 2
    g = np.repeat(np.arange(count.size), tri)
    t = np.arange(g.size) - np.repeat(np.cumsum(tri) - tri, tri)
    y = ((1 + np.sqrt(1 + 8 * t.astype(np.float64))) // 2).astype(np.int64)
    y -= (y * (y - 1) // 2) > t  # float rounding: bring y back to the row holding t
    y += ((y + 1) * y // 2) <= t
    x = t - y * (y - 1) // 2
    return Pairs(order[start[g] + x], order[start[g] + y], np.zeros(g.size, np.int32))


def expand_pairs(inverse: np.ndarray, n_distinct: int, distinct_pairs: Pairs) -> Pairs:
    """Pairs of items from pairs of distinct hashes (+ the distance-0 pairs inside each group)."""
    groups = groups_of(np.asarray(inverse), n_distinct)
    cross = cross_pairs(groups, groups, distinct_pairs.i, distinct_pairs.j, distinct_pairs.dist)
    cross = Pairs(np.minimum(cross.i, cross.j), np.maximum(cross.i, cross.j), cross.dist)
    return Pairs.concat([cross, _within(groups)])


def find_pairs(hashes: np.ndarray, radius: int,
               max_bucket: int = DEFAULT_MAX_BUCKET) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (i, j, dist), i < j, with Hamming(hashes[i], hashes[j]) <= radius, each exactly once.

    Sorted by (i, j). Identical hashes are collapsed first, so a million blank images cost a
    sort, not a million squared comparisons (the output itself can still be that large: use
    `collapse` + `search_distinct` for the compact form).
    """
    uniq, inverse = collapse(hashes)
    distinct = search_distinct(uniq, radius, 64, max_bucket) if radius > 0 else Pairs.empty()
    return expand_pairs(inverse, uniq.size, distinct).sorted().as_tuple()
