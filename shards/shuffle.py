"""Epoch orders for the training loader: pure functions on shard sizes, no I/O.

One global sequence per (release, split, seed, epoch), whatever the cluster shape; each rank and
data-loader worker then takes a fixed share of it (after mosaicml streaming's `partition/orig.py`
and `shuffle/py1e.py`, without their constraint that canonical and physical node counts divide
each other, and resumable from any point, not only from a prefix).

1. `shard_order`: the epoch's shards, permuted by (seed, epoch).
2. `stream_pieces`: the shards in that order are cut into `streams` contiguous, near-equal spans
   (the canonical partition: a fixed count, independent of the shape).
3. `stream_order`: inside a stream, `open_shards` pieces at a time are interleaved at random (each
   piece's samples stay in file order), then a shuffle buffer of `buffer_size` reorders them.
4. `interleave`: the global sequence takes sample `i` of every stream in turn (i = 0, 1, ...), so
   any window of `streams` consecutive positions holds one sample of each stream: with shards
   keyed by synset, a global batch mixes as many spans of the shard order as it has samples.
5. `slot_positions`: rank `r` of `W` takes positions `r, r + W, r + 2W, ...` (so at every step
   the ranks together consume one contiguous window: lockstep under DDP); inside a rank, blocks
   of `batch_size` steps go to the workers in turn, as DataLoader's in-order round robin takes
   them, so what a rank delivers is its positions in sequence order.

A resume changes only which positions are left (`remaining`); the same functions then spread
those over the new shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

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


def stream_pieces(sizes: Sequence[int], order: Iterable[int], streams: int) -> list[list[Piece]]:
    """The canonical partition: `streams` contiguous spans of the shards taken in `order`."""
    whole = [Piece(int(s), 0, int(sizes[s])) for s in order if sizes[s] > 0]
    return [split_pieces(whole, part, streams) for part in range(streams)]


def read_sequence(
    pieces: Sequence[Piece], rng: np.random.Generator | None, open_shards: int
) -> np.ndarray:
    """Which piece each read step takes its next sample from.

    Pieces are opened in windows of `open_shards`; within a window the steps are a uniformly
    random interleave (each piece's samples stay in file order, so a shard is read front to
    back). Without `rng` the pieces are read one after another.
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


def stream_order(
    pieces: Sequence[Piece], rng: np.random.Generator | None, open_shards: int, buffer_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(shard, offset) arrays of one stream's samples in the order it emits them."""
    reads = read_sequence(pieces, rng, open_shards)
    offsets = offsets_in_pieces(reads, pieces)
    emits = emit_order(len(reads), rng, buffer_size)
    shards = np.array([p.shard for p in pieces], dtype=np.int64)
    if not len(reads):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return shards[reads[emits]], offsets[emits]


def interleave(lengths: Sequence[int]) -> np.ndarray:
    """For streams of these lengths laid end to end: the indices that take sample 0 of each
    stream, then sample 1 of each, and so on (streams that ran out are passed over)."""
    n = np.asarray(lengths, dtype=np.int64)
    if not n.sum():
        return np.zeros(0, np.int64)
    ids = np.repeat(np.arange(len(n)), n)
    step = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return np.lexsort((ids, step))


@dataclass(frozen=True)
class EpochOrder:
    """The global sample sequence of an epoch: shard index and in-shard offset per position."""

    shards: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.shards)

    def samples(self, positions: np.ndarray | None = None) -> list[tuple[int, int]]:
        """(shard, offset) at `positions` (default: all), in that order: what tests compare."""
        sel = slice(None) if positions is None else positions
        return list(zip(self.shards[sel].tolist(), self.offsets[sel].tolist()))


def epoch_order(
    sizes: Sequence[int], *, seed: int, epoch: int, shuffle: bool, streams: int, open_shards: int,
    buffer_size: int,
) -> EpochOrder:  # fmt: skip
    """The epoch's global sequence (see the module doc); without shuffle, shards in file order."""
    order = shard_order(len(sizes), seed, epoch, shuffle)
    if not shuffle:
        parts = [stream_order(stream_pieces(sizes, order, 1)[0], None, 1, 1)]
    else:
        spans = stream_pieces(sizes, order, max(1, min(streams, int(sum(sizes)) or 1)))
        parts = [stream_order(p, _rng(seed, epoch, s, 0x57), open_shards, buffer_size)
                 for s, p in enumerate(spans)]  # fmt: skip
    pick = interleave([len(s) for s, _ in parts])
    return EpochOrder(np.concatenate([s for s, _ in parts])[pick],
                      np.concatenate([o for _, o in parts])[pick])  # fmt: skip


def slot_positions(
    total: int, *, rank: int, world_size: int, worker: int = 0, num_workers: int = 1,
    batch_size: int = 1, remainder: Remainder = "drop",
) -> np.ndarray:  # fmt: skip
    """Indices into a sequence of `total` positions that one (rank, worker) yields, in order."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    if not 0 <= worker < num_workers:
        raise ValueError(f"worker {worker} is not in [0, {num_workers})")
    n = samples_per_rank(total, world_size, remainder) if total else 0
    steps = np.arange(n, dtype=np.int64)
    steps = steps[(steps // max(1, batch_size)) % num_workers == worker]
    positions = steps * world_size + rank
    return positions % total if total else positions


def remaining(total: int, consumed: np.ndarray) -> np.ndarray:
    """Positions of `range(total)` not in `consumed`, in order."""
    mask = np.ones(total, dtype=bool)
    mask[consumed[consumed < total]] = False
    return np.flatnonzero(mask)


def to_ranges(positions: np.ndarray) -> list[list[int]]:
    """Sorted unique positions as `[start, stop)` runs (a compact, JSON-able set)."""
    p = np.unique(positions)
    if not len(p):
        return []
    cuts = np.flatnonzero(np.diff(p) != 1) + 1
    starts, stops = p[np.concatenate([[0], cuts])], p[np.concatenate([cuts - 1, [len(p) - 1]])] + 1
    return [[int(a), int(b)] for a, b in zip(starts, stops)]


def from_ranges(ranges: Sequence[Sequence[int]]) -> np.ndarray:
    if not ranges:
        return np.zeros(0, np.int64)
    return np.concatenate([np.arange(int(a), int(b), dtype=np.int64) for a, b in ranges])


def replacement(position: int, attempt: int, total: int, seed: int, epoch: int) -> int:
    """The position whose sample stands in for a bad one (attempt 1, 2, ...): a pure function
    of the global position, so it is the same whatever the shape."""
    return int(_rng(seed, epoch, position, attempt, 0xBAD).integers(total))


def mixing_ratio(labels: Sequence[int], batch_size: int) -> float:
    """Mean distinct classes per full batch over what i.i.d. sampling at the same class
    frequencies would give: 1.0 is as mixed as random sampling, 1/batch is one class a batch."""
    arr = np.asarray(labels)
    n = len(arr) // batch_size
    if n == 0:
        raise ValueError(f"need at least one full batch of {batch_size}")
    seen = np.mean([len(np.unique(arr[i * batch_size : (i + 1) * batch_size])) for i in range(n)])
    _, counts = np.unique(arr, return_counts=True)
    p = counts / counts.sum()
    expected = float(np.sum(1.0 - (1.0 - p) ** batch_size))
    return float(seen / expected)
