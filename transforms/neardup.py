"""Exact near-duplicate search over 64-bit perceptual hashes: every pair within Hamming radius r.

Method (multi-index hashing, a generalised pigeonhole): split the `width` bits into k = r + q
contiguous blocks. Two hashes within distance r differ in at most r blocks, so they agree exactly
on at least q of them, hence on every block of at least one q-combination. Each q-combination of
blocks is a *table*: its key is the concatenation of those blocks' bits. Within a table, hashes
with equal keys form a bucket; candidates are the pairs inside a bucket, verified by popcount.
q = 1 is the textbook r+1-block pigeonhole; q > 1 makes keys longer (fewer false candidates) at
the price of C(r+q, q) tables, and wins at millions of hashes (see `choose_match_blocks`, and
bench/bench_neardup.py for the measured comparison).

How a table is searched (profiled at 10M hashes, r=6, q=3: docs/phash.md): its hashes are
*permuted* so that the key's bits are on top (`Layout.permute`, a bijection that keeps Hamming
distances), then sorted in place. Every bucket is then a run of the sorted array and each
element still carries its whole hash, so candidates are compared where they lie: no argsort,
no gather through it. One chunked scan finds the run boundaries (same key <=> their xor is
below 2**shift) and every pair within the radius up to SCAN_OFFSETS apart (across runs too: the
first-table rule below drops those); the members of longer runs are compared size class by size
class, one vector operation per offset over all runs of that size. Only the pairs within the
radius are mapped back to indices (a binary search). In one process the tables run on a thread
per local CPU (`run_tasks(threads=)`: the sorts and vector passes release the GIL), over the
one shared array of hashes.

Each pair is emitted exactly once, with no global de-duplication: a pair is reported only by the
*first* table (in lexicographic combination order) whose blocks it agrees on, found through a
lookup from its block-equality bitmask. So every (table, key range) is an independent pure task
(`SearchTask`, `run_tasks`), which synshard/builder/neardup_ray.py runs as Ray tasks; a build
does so from `dedup.near_parallel_above` rows. The search between two sets (a release against
an evaluation set) is in neardup_between.py.

Bounds on huge buckets (flat or near-blank images):
- identical hashes are collapsed first (`collapse`); their distance-0 pairs are enumerated from
  the groups (`expand_pairs`), never compared;
- a bucket of distinct hashes larger than `max_bucket` is searched recursively with the same
  method on the bits below its key (its members agree on the key bits, so distance lives in the
  rest), so time follows the output size rather than the bucket size squared;
- memory per table is a few arrays of n (the permuted copy, run starts), whatever the buckets.
"""
from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Callable
from math import comb

import numpy as np

U64 = np.uint64
DEFAULT_MAX_BUCKET = 2048
DENSE_CHUNK = 1 << 22  # candidate pairs per step when a bucket is compared pairwise
MAX_DEPTH = 1  # recursion levels for oversized buckets; deeper ones are compared pairwise
OFFSET_LOOP_MAX = 32  # runs up to this size: compared one offset at a time, all runs at once
SCAN_OFFSETS = 8  # pairs this close in a sorted table are found by one chunked scan
SCAN_CHUNK = 1 << 15  # hashes per step of the scan
PERMUTE_CHUNK = 1 << 16  # hashes per step of Layout.permute (its temporaries stay in cache)


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

    @cached_property
    def _pieces(self) -> tuple[tuple[tuple[int, int, int], ...], ...]:
        """Per table, the bit moves of `permute`: (source shift, bits, destination shift),
        neighbouring blocks that stay neighbours moved as one piece."""
        out = []
        for key in self.tables:
            moves: list[tuple[int, int, int]] = []
            dst = 0
            for b in [b for b in range(len(self.blocks)) if b not in key] + list(key):
                src, bits = self.blocks[b]
                last = moves[-1] if moves else (-1, 0, -1)
                if last[0] + last[1] == src and last[2] + last[1] == dst:  # both contiguous
                    moves[-1] = (last[0], last[1] + bits, last[2])
                else:
                    moves.append((src, bits, dst))
                dst += bits
            out.append(tuple(moves))
        return tuple(out)

    def permute(self, h: np.ndarray, table: int, inverse: bool = False) -> np.ndarray:
        """A bijection of the hashes with the table's key in the top bits (the other blocks
        below it, in order): sorting these sorts by key and keeps the whole hash, and Hamming
        distances are unchanged. Worked in cache-sized chunks (a dozen passes each)."""
        h = np.asarray(h, dtype=U64)
        moves = [(d, b, s) if inverse else (s, b, d) for s, b, d in self._pieces[table]]
        out = np.empty(h.shape, dtype=U64)
        flat_in, flat_out = h.reshape(-1), out.reshape(-1)
        tmp = np.empty(min(flat_in.size, PERMUTE_CHUNK), dtype=U64)
        for c0 in range(0, flat_in.size, PERMUTE_CHUNK):
            src_c, out_c = flat_in[c0:c0 + PERMUTE_CHUNK], flat_out[c0:c0 + PERMUTE_CHUNK]
            for k, (src, bits, dst) in enumerate(moves):
                t = out_c if k == 0 else tmp[:src_c.size]  # the first move writes the output
                if src > dst:
                    np.right_shift(src_c, U64(src - dst), out=t)
                elif src < dst:
                    np.left_shift(src_c, U64(dst - src), out=t)
                else:
                    t[:] = src_c
                np.bitwise_and(t, U64(((1 << bits) - 1) << dst), out=t)
                if k:
                    np.bitwise_or(out_c, t, out=out_c)
        return out

    def unpermute(self, p: np.ndarray, table: int) -> np.ndarray:
        """The inverse of `permute` (also maps xors: the permutation is linear over xor)."""
        return self.permute(p, table, inverse=True)


@lru_cache(maxsize=256)
def layout_for(width: int, radius: int, q: int) -> Layout:
    """Shared Layout instances, so the lookup tables are built once per shape."""
    return Layout(width, radius, q)


# Cost model constants (seconds), measured on the 2-core dev machine by bench/bench_neardup.py
# --compare-q (1M hashes, r=6: q=2 2.0 s, q=3 2.8 s, q=4 6.2 s CPU): per hash per table
# (permute, sort, find the runs) and per candidate pair (xor, popcount, compare).
SORT_COST = 3.0e-8
PAIR_COST = 6.0e-9


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


FILTER_BITS = 24  # sorted_members: a 16 MiB table of flags on the low bits


def sorted_members(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Positions of the x (uint64) that are among `values` (distinct, ascending), ascending.

    A table of flags on the low bits passes the members and a few percent of the rest (~0.6%
    at 100,000 values), and only those are binary-searched: at 10M x, ~0.1 s against 1.4 s for
    searching them all. For uniform bits (hash blocks, perceptual hashes); any bits are exact."""
    x = np.asarray(x, dtype=U64)
    if values.size == 0:
        return np.empty(0, np.int64)
    mask = U64((1 << FILTER_BITS) - 1)
    flags = np.zeros(1 << FILTER_BITS, dtype=bool)
    flags[(values & mask).astype(np.intp)] = True
    maybe = np.flatnonzero(flags[(x & mask).astype(np.intp)])
    at = np.minimum(np.searchsorted(values, x[maybe]), values.size - 1)
    return maybe[values[at] == x[maybe]]


def collapse(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct hashes (sorted) and, per input, the index of its distinct hash."""
    uniq, inverse = np.unique(np.asarray(hashes, dtype=U64), return_inverse=True)
    return uniq, inverse.reshape(-1)


def _key_shift(layout: Layout, table: int) -> int:
    """Where the key starts in the table's permuted hash (`Layout.permute`)."""
    return layout.width - layout.key_bits(table)


def _close(x: np.ndarray, radius: int) -> np.ndarray:
    """popcount(x) <= radius, without widening the counts (numpy>=2: one pass)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x) <= radius
    return popcount64(x.ravel()).reshape(x.shape) <= radius


def _scan(ph: np.ndarray, shift: int, radius: int, offsets: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass over the sorted permuted array in cache-sized chunks: the run starts, and the
    pairs (a, a + d) within radius at offsets d = 1..offsets, inside a run and across runs.

    Same key (the bits from `shift` up) <=> the xor is below 2**shift, so the runs come from
    offset 1 alone. The pairs are not checked for a shared key (two passes fewer an offset,
    ~30% of the scan): a pair within radius whose key differs here is dropped by the caller's
    first-table rule (`_table_pairs`: this table's blocks do not all agree, so it is not the
    pair's first table), and offsets this small hold most of the candidates."""
    lim, n = U64(1 << shift), ph.size
    breaks, out_a, out_b = [np.zeros(1, np.int64)], [], []
    for c0 in range(0, max(n - 1, 0), SCAN_CHUNK):
        c = ph[c0:c0 + SCAN_CHUNK + offsets]
        m = min(SCAN_CHUNK, n - 1 - c0)
        for d in range(1, offsets + 1):
            k = min(m, c.size - d)
            if k <= 0:
                break
            x = c[d:d + k] ^ c[:k]
            if d == 1:
                breaks.append(np.flatnonzero(x >= lim) + (c0 + 1))
            hit = np.flatnonzero(_close(x, radius)) + c0
            out_a.append(hit)
            out_b.append(hit + d)
    return _cat(breaks), _cat(out_a), _cat(out_b)


def _class_pairs(ph: np.ndarray, starts: np.ndarray, size: int, radius: int, first: int = 1
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs within radius inside runs that all have `size` members, members at least `first`
    apart: positions (a < b).

    The runs' values form a (size, m) matrix, member k of every run in row k, so each offset
    (or, for big runs, each block of member pairs) is one vector operation along contiguous
    rows of all these runs at once."""
    members = np.arange(size, dtype=np.int64)[:, None]
    out_a, out_b = [], []
    if size <= OFFSET_LOOP_MAX:
        v = ph[starts[None, :] + members]
        for d in range(first, size):
            rr, cc = np.nonzero(_close(v[d:] ^ v[:-d], radius))
            out_a.append(starts[cc] + rr)
            out_b.append(starts[cc] + rr + d)
    else:
        ii, jj = np.triu_indices(size, first)
        cols = max(1, DENSE_CHUNK // ii.size)
        for c0 in range(0, starts.size, cols):
            s = starts[c0:c0 + cols]
            v = ph[s[None, :] + members]
            rr, cc = np.nonzero(_close(v[ii] ^ v[jj], radius))
            out_a.append(s[cc] + ii[rr])
            out_b.append(s[cc] + jj[rr])
    return _cat(out_a), _cat(out_b)


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64, copy=False) if parts else np.empty(0, np.int64)


def _run_pairs(ph: np.ndarray, shift: int, radius: int, max_bucket: int, depth: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Every pair within radius inside a run of equal keys of the sorted permuted array ph,
    as positions (a < b). Runs above max_bucket recurse on the bits below the key."""
    starts, near_a, near_b = _scan(ph, shift, radius, SCAN_OFFSETS)
    sizes = np.diff(np.append(starts, ph.size))
    big = np.flatnonzero(sizes > max_bucket)
    if big.size:  # their pairs come from the recursion below, not from the scan
        run = np.searchsorted(starts, near_a, "right") - 1
        mine = sizes[run] <= max_bucket
        near_a, near_b = near_a[mine], near_b[mine]
    small = np.flatnonzero((sizes > SCAN_OFFSETS + 1) & (sizes <= max_bucket))
    by_size = sizes[small]
    dtype = np.uint16 if max_bucket < 1 << 16 else np.int64  # uint16: a radix sort
    small = small[np.argsort(by_size.astype(dtype), kind="stable")]
    counts = np.bincount(by_size)
    bounds = np.cumsum(counts)
    out_a, out_b = [near_a], [near_b]
    for size in np.flatnonzero(counts).tolist():
        lo, hi = bounds[size - 1], bounds[size]
        a, b = _class_pairs(ph, starts[small[lo:hi]], size, radius, SCAN_OFFSETS + 1)
        out_a.append(a)
        out_b.append(b)
    for s in big.tolist():
        a, b = _big_run(ph[starts[s]:starts[s] + sizes[s]], shift, radius, max_bucket, depth)
        out_a.append(a + starts[s])
        out_b.append(b + starts[s])
    return _cat(out_a), _cat(out_b)


def _big_run(run: np.ndarray, shift: int, radius: int, max_bucket: int, depth: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """One oversized run: its members agree on the key and are distinct, so the distances live
    in the `shift` bits below it: search those recursively (sorted, distinct), or pairwise."""
    if depth >= MAX_DEPTH or shift < 2 * (radius + 1):
        ii, jj = np.triu_indices(run.size, 1)
        out_a, out_b = [], []
        for c0 in range(0, ii.size, DENSE_CHUNK):
            a, b = ii[c0:c0 + DENSE_CHUNK], jj[c0:c0 + DENSE_CHUNK]
            ok = _close(run[a] ^ run[b], radius)
            out_a.append(a[ok])
            out_b.append(b[ok])
        return _cat(out_a), _cat(out_b)
    rest = run & U64((1 << shift) - 1)  # ascending and distinct, like the run itself
    sub = search_distinct(rest, radius, shift, max_bucket, depth + 1, threads=1)
    return sub.i, sub.j


Indexer = Callable[[np.ndarray], np.ndarray]


def _indexer(h: np.ndarray) -> Indexer:
    """values -> their index in h (h distinct): a binary search, after sorting if need be."""
    if h.size < 2 or bool(np.all(h[1:] > h[:-1])):
        return lambda v: _sorted_search(h, v)
    order = np.argsort(h, kind="stable")
    hs = h[order]
    return lambda v: order[_sorted_search(hs, v)]


def _sorted_search(h: np.ndarray, v: np.ndarray) -> np.ndarray:
    """np.searchsorted with the needles in order (neighbouring searches share cache lines)."""
    order = np.argsort(v)
    out = np.empty(v.size, np.int64)
    out[order] = np.searchsorted(h, v[order])
    return out


def _table_pairs(h: np.ndarray, layout: Layout, table: int, key_lo: int, key_hi: int,
                 max_bucket: int, depth: int = 0, index_of: Indexer | None = None) -> Pairs:
    """Pairs emitted by one table over the keys in [key_lo, key_hi): a pure, independent task.

    The table's permuted hashes (key on top) are sorted, so every bucket is a run and the full
    hashes come along: candidates are compared where they lie, with no gather through an
    argsort. Only pairs within radius are mapped back to indices (a binary search)."""
    shift = _key_shift(layout, table)
    ph = layout.permute(h, table)
    if key_lo > 0 or key_hi < 1 << layout.key_bits(table):
        key = ph >> U64(shift)
        ph = ph[(key >= U64(key_lo)) & (key < U64(key_hi))]
        del key
    ph.sort()
    a, b = _run_pairs(ph, shift, layout.radius, max_bucket, depth)
    va, vb = ph[a], ph[b]
    del ph
    x = layout.unpermute(va ^ vb, table)
    mine = layout.first_table[layout.equal_mask(x)] == table
    index_of = index_of or _indexer(h)
    ij = index_of(layout.unpermute(np.concatenate([va[mine], vb[mine]]), table))
    i, j = ij[:ij.size // 2], ij[ij.size // 2:]
    return Pairs(np.minimum(i, j), np.maximum(i, j), popcount64(x[mine]))


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


def local_cpus() -> int:
    """The CPUs this process may run on: its affinity mask, not the machine's count, and no more
    than its cgroup's CPU quota (a container's `--cpus`, a Kubernetes pod's limit), as Ray
    counts them."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _cgroup_quota() or cpus))


def _cgroup_quota(path: str = "/sys/fs/cgroup/cpu.max") -> int | None:
    """The cgroup v2 CPU quota, rounded up to whole CPUs ("max": none; None where unreadable)."""
    try:
        quota, period = open(path).read().split()[:2]
        return None if quota == "max" else max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        return None


def spare_cpus() -> int:
    """The local CPUs not already kept busy by other processes (the 1-minute load average,
    less this process's own one), at least 1. Measured on the 2-core dev machine at load ~18:
    near_dedup on 1M rows took 2.3 CPU-s / 6.1-7.0 s on one thread and 3.0-3.2 CPU-s /
    8.5-10.1 s on two, so threads only pay on cores that are free."""
    cpus = local_cpus()
    try:
        others = os.getloadavg()[0] - 1.0
    except (AttributeError, OSError):  # no load average here
        return cpus
    return max(1, min(cpus, int(cpus - others + 0.5)))


def run_tasks(distinct: np.ndarray, tasks: list[SearchTask],
              max_bucket: int = DEFAULT_MAX_BUCKET, depth: int = 0, threads: int = 1) -> Pairs:
    """Pairs (indices into `distinct`) that these tasks emit, in task order whatever the
    executor; pure, so any executor can run them (synshard/builder/neardup_ray.py: a few
    tables per Ray task). `threads` > 1 runs the tables on that many threads of this process:
    the sort and the vector passes release the GIL, so a table per core runs side by side
    on the one shared copy of the hashes (memory: a permuted copy of them per thread)."""
    h = np.asarray(distinct, dtype=U64)
    index_of = _indexer(h)

    def one(t: SearchTask) -> Pairs:
        return _table_pairs(h, layout_for(t.width, t.radius, t.q), t.table, t.key_lo,
                            t.key_hi, max_bucket, depth, index_of)

    if threads <= 1 or len(tasks) < 2:
        return Pairs.concat([one(t) for t in tasks])
    with ThreadPoolExecutor(min(threads, len(tasks)), thread_name_prefix="neardup") as pool:
        return Pairs.concat(list(pool.map(one, tasks)))


def run_task(distinct: np.ndarray, task: SearchTask, max_bucket: int = DEFAULT_MAX_BUCKET,
             depth: int = 0) -> Pairs:
    """Pairs (indices into `distinct`) that this task emits; pure, so any executor can run it."""
    return run_tasks(distinct, [task], max_bucket, depth)


PARALLEL_ABOVE = 200_000  # distinct hashes from which search_distinct uses the free local CPUs


def search_distinct(distinct: np.ndarray, radius: int, width: int = 64,
                    max_bucket: int = DEFAULT_MAX_BUCKET, depth: int = 0,
                    threads: int | None = None) -> Pairs:
    """All pairs of *distinct* hashes within `radius` (distance >= 1), each once, i < j.

    `threads`: tables searched side by side in this process; by default, from PARALLEL_ABOVE
    hashes, one per local CPU that other processes leave free (`spare_cpus`); the pairs and
    their order do not depend on it.
    """
    h = np.asarray(distinct, dtype=U64)
    if h.size < 2 or radius == 0:
        return Pairs.empty()
    if threads is None:
        threads = spare_cpus() if depth == 0 and h.size >= PARALLEL_ABOVE else 1
    return run_tasks(h, plan_tasks(h.size, radius, width), max_bucket, depth, threads)


def groups_of(inverse: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Members of each group, contiguous: (order, start, count)."""
    order = np.argsort(inverse, kind="stable")
    count = np.bincount(inverse, minlength=n_groups).astype(np.int64)
    return order, np.cumsum(count) - count, count


def cross_pairs(ga: tuple, gb: tuple, ui: np.ndarray, uj: np.ndarray, ud: np.ndarray) -> Pairs:
    """Every (member of group ui, member of group uj) for each group pair: the output size."""
    (oa, sa, ca), (ob, sb, cb) = ga, gb
    total = ca[ui] * cb[uj]
    start = np.cumsum(total) - total  # each group pair's first output
    a = np.empty(int(start[-1] + total[-1]) if total.size else 0, np.int64)
    b = np.empty_like(a)
    one = total == 1  # most pairs (one member a side): no per-output index arithmetic
    a[start[one]], b[start[one]] = oa[sa[ui[one]]], ob[sb[uj[one]]]
    del one
    many = np.flatnonzero(total > 1)
    if many.size:
        k = np.repeat(many, total[many])
        t = np.arange(k.size)
        t -= np.repeat(np.cumsum(total[many]) - total[many], total[many])
        cj, at = cb[uj[k]], start[k] + t
        a[at], b[at] = oa[sa[ui[k]] + t // cj], ob[sb[uj[k]] + t % cj]
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
