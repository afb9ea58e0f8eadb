"""Epoch orders for the training loader: pure functions on shard sizes, no I/O.

Why this shape (after mosaicml streaming's `shuffle/` and `partition.py`):

1. `shard_order`: the epoch's shards, permuted by (seed, epoch) the same way on every rank.
2. `rank_pieces`: the samples of the shards in that order form one global sequence; rank `r`
   takes the contiguous positions `[r * n, (r + 1) * n)`, where `n = len // world_size`
   (`drop`) or the ceiling (`pad`: positions past the end wrap round to the start). Every rank
   gets exactly `n` samples, each sample appears once except at most `world_size - 1` dropped or
   repeated, and a rank reads whole shards but at most two cut ones.
3. `worker_pieces`: a rank's positions split the same way among its data-loader workers.
4. `read_sequence` + `emit_order`: a worker interleaves `open_shards` of its pieces at random
   (each step reads the next sample of one piece, chosen with probability proportional to what
   is left in it), then passes the reads through a shuffle buffer of `buffer_size`. Shards are
   keyed by synset, so this interleave is what turns single-class shards into mixed batches.

The order is computed on indices only (tens of ns a sample), so the reader can follow it
exactly, and resuming at position `p` of a worker's order is just skipping `p` entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

Remainder = Literal["drop", "pad"]


@dataclass(frozen=True)
class Piece:
    """Samples `[start, stop)` of shard `shard` (an index into the loader's shard list)."""

    shard: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def _rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng([int(p) & 0xFFFFFFFF for p in parts])


def shard_order(num_shards: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The shards' reading order for an epoch: identity without shuffle, else seeded by epoch."""
    if not shuffle:
        return np.arange(num_shards)
    return _rng(seed, epoch, 0x5EED).permutation(num_shards)


def samples_per_rank(total: int, world_size: int, remainder: Remainder) -> int:
    """What every rank yields in an epoch: `total // world_size`, or the ceiling with `pad`."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if remainder == "pad":
        return -(-total // world_size)
    return total // world_size


def _cut(sizes: Sequence[int], order: Sequence[int], lo: int, hi: int) -> list[Piece]:
    """Pieces covering global positions `[lo, hi)` of the shards taken in `order` (no wrap)."""
    pieces, pos = [], 0
    for shard in order:
        size = int(sizes[shard])
        a, b = max(lo, pos), min(hi, pos + size)
        if a < b:
            pieces.append(Piece(int(shard), a - pos, b - pos))
        pos += size
        if pos >= hi:
            break
    return pieces


def span_pieces(sizes: Sequence[int], order: Sequence[int], lo: int, hi: int) -> list[Piece]:
    """Pieces for positions `[lo, hi)`, where positions at or past the total wrap to the start."""
    total = int(sum(sizes[s] for s in order))
    if total == 0 or hi <= lo:
        return []
    pieces: list[Piece] = []
    while hi > lo:
        start = lo % total
        stop = min(total, start + (hi - lo))
        pieces += _cut(sizes, order, start, stop)
        lo += stop - start
    return pieces


def rank_pieces(
    sizes: Sequence[int], order: Sequence[int], rank: int, world_size: int, remainder: Remainder
) -> list[Piece]:
    """This rank's contiguous share of the epoch's global sample sequence (see module doc)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    total = int(sum(sizes[s] for s in order))
    n = samples_per_rank(total, world_size, remainder)
    return span_pieces(sizes, order, rank * n, (rank + 1) * n)


def split_pieces(pieces: Sequence[Piece], part: int, parts: int) -> list[Piece]:
    """Part `part` of `parts` contiguous, near-equal (within one sample) shares of `pieces`."""
    if not 0 <= part < parts:
        raise ValueError(f"part {part} is not in [0, {parts})")
    total = sum(p.size for p in pieces)
    lo, hi = part * total // parts, (part + 1) * total // parts
    out, pos = [], 0
    for p in pieces:
        a, b = max(lo, pos), min(hi, pos + p.size)
        if a < b:
            out.append(Piece(p.shard, p.start + a - pos, p.start + b - pos))
        pos += p.size
    return out


def worker_pieces(pieces: Sequence[Piece], worker: int, num_workers: int) -> list[Piece]:
    """A data-loader worker's share of its rank's pieces."""
    return split_pieces(pieces, worker, num_workers)


def read_sequence(
    pieces: Sequence[Piece], rng: np.random.Generator | None, open_shards: int
) -> np.ndarray:
    """Which piece each read step takes its next sample from.

    Pieces are opened in windows of `open_shards`; within a window the steps are a uniformly
    random interleave (each piece's samples stay in file order, so a shard is read as a stream).
    Without `rng` the pieces are read one after another.
    """
    sizes = np.array([p.size for p in pieces], dtype=np.int64)
    ids = np.repeat(np.arange(len(pieces), dtype=np.int64), sizes)
    if rng is None or open_shards <= 1:
        return ids
    starts = np.concatenate([[0], np.cumsum(sizes)])
    for w in range(0, len(pieces), open_shards):
        a, b = starts[w], starts[min(w + open_shards, len(pieces))]
        ids[a:b] = rng.permutation(ids[a:b])
    return ids


def offsets_in_pieces(reads: np.ndarray, pieces: Sequence[Piece]) -> np.ndarray:
    """The shard offset each read step yields (the k-th read of a piece is `start + k`)."""
    order = np.argsort(reads, kind="stable")
    counts = np.bincount(reads, minlength=len(pieces))
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank_in_piece = np.empty(len(reads), dtype=np.int64)
    rank_in_piece[order] = np.arange(len(reads)) - np.repeat(firsts, counts)
    starts = np.array([p.start for p in pieces], dtype=np.int64)
    return starts[reads] + rank_in_piece if len(reads) else rank_in_piece


def emit_order(num_reads: int, rng: np.random.Generator | None, buffer_size: int) -> np.ndarray:
    """The read steps in the order a shuffle buffer of `buffer_size` emits them.

    The buffer fills to `buffer_size`; then each read replaces a uniformly chosen buffered one,
    which is emitted; at the end the rest leave in random order. Without `rng`: read order.
    """
    if rng is None or buffer_size <= 1 or num_reads == 0:
        return np.arange(num_reads)
    size = min(buffer_size, num_reads)
    picks = (rng.random(num_reads - size) * size).astype(np.int64).tolist()
    buf = list(range(size))
    out = []
    for i, k in zip(range(size, num_reads), picks):
        out.append(buf[k])
        buf[k] = i
    rest = np.array(buf, dtype=np.int64)[rng.permutation(size)]
    return np.concatenate([np.array(out, dtype=np.int64), rest])


@dataclass(frozen=True)
class WorkerPlan:
    """One worker's epoch: its pieces, the read steps and the emitted order (indices into reads)."""

    pieces: tuple[Piece, ...]
    reads: np.ndarray  # piece index per read step
    offsets: np.ndarray  # shard offset per read step
    emits: np.ndarray  # read-step indices, in the order samples are yielded

    def __len__(self) -> int:
        return len(self.emits)

    def samples(self) -> list[tuple[int, int]]:
        """(shard, offset) of every yielded sample, in order: what tests compare."""
        shards = np.array([p.shard for p in self.pieces], dtype=np.int64)
        if not len(self.emits):
            return []
        return list(zip(shards[self.reads[self.emits]].tolist(), self.offsets[self.emits].tolist()))


def plan_worker(
    sizes: Sequence[int], *, seed: int, epoch: int, rank: int, world_size: int, worker: int,
    num_workers: int, shuffle: bool, remainder: Remainder, open_shards: int, buffer_size: int,
) -> WorkerPlan:  # fmt: skip
    """Everything a worker needs to read its share of an epoch, deterministically."""
    order = shard_order(len(sizes), seed, epoch, shuffle)
    mine = worker_pieces(rank_pieces(sizes, order, rank, world_size, remainder), worker, num_workers)
    rng = _rng(seed, epoch, rank, worker, num_workers) if shuffle else None
    reads = read_sequence(mine, rng, open_shards)
    offsets = offsets_in_pieces(reads, mine)
    return WorkerPlan(tuple(mine), reads, offsets, emit_order(len(reads), rng, buffer_size))


def mixing_ratio(labels: Sequence[int], batch_size: int) -> float:
    """Mean distinct classes per full batch over what i.i.d. sampling at the same class
    frequencies would give: 1.0 is as mixed as random sampling, 1/batch is one class a batch."""
    labels = np.asarray(labels)
    n = len(labels) // batch_size
    if n == 0:
        raise ValueError(f"need at least one full batch of {batch_size}")
    seen = np.mean([len(np.unique(labels[i * batch_size : (i + 1) * batch_size])) for i in range(n)])
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    expected = float(np.sum(1.0 - (1.0 - p) ** batch_size))
    return float(seen / expected)
