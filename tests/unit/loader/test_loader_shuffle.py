"""The epoch order as pure functions, over a grid of ranks x workers x seeds x epochs."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synshard.shards.loader_state import LoaderState, Shape, merge, positions_after_batches
from synshard.shards.shuffle import (
    Piece,
    emit_order,
    epoch_order,
    from_ranges,
    interleave,
    mixing_ratio,
    remaining,
    samples_per_rank,
    shard_order,
    slot_positions,
    split_pieces,
    stream_pieces,
    to_ranges,
)

SIZES = [7, 1, 13, 5, 9, 2, 11, 4, 6, 3, 8]  # 69 samples, uneven shards
OPTS = dict(streams=4, open_shards=2, buffer_size=5)


def order(seed=0, epoch=0, shuffle=True, sizes=SIZES):
    return epoch_order(sizes, seed=seed, epoch=epoch, shuffle=shuffle, **OPTS)


def shape_positions(total, world, workers, batch, remainder="drop"):
    """{(rank, worker): positions} of one shape."""
    return {(r, k): slot_positions(total, rank=r, world_size=world, worker=k, num_workers=workers,
                                   batch_size=batch, remainder=remainder)
            for r in range(world) for k in range(workers)}  # fmt: skip


def test_epoch_order_is_a_permutation_of_every_sample():
    got = order(3, 1).samples()
    assert sorted(got) == [(s, o) for s, n in enumerate(SIZES) for o in range(n)]
    assert got == order(3, 1).samples() and got != order(3, 2).samples() and got != order(4, 1).samples()


def test_no_shuffle_is_file_order():
    assert order(0, 5, shuffle=False).samples() == [(s, o) for s, n in enumerate(SIZES) for o in range(n)]


def test_canonical_streams_are_near_equal_spans_of_the_shard_order():
    spans = stream_pieces(SIZES, shard_order(len(SIZES), 1, 0, True), 4)
    assert [sum(p.size for p in s) for s in spans] in ([17, 17, 17, 18], [17, 17, 18, 17],
                                                       [17, 18, 17, 17], [18, 17, 17, 17])  # fmt: skip


def test_interleave_takes_one_of_each_stream_in_turn():
    # streams of lengths 3, 2, 3 laid end to end: indices 0-2, 3-4, 5-7
    assert interleave([3, 2, 3]).tolist() == [0, 3, 5, 1, 4, 6, 2, 7]


GRID = list(itertools.product([1, 2, 3, 8], [1, 2, 3], [1, 4]))


@pytest.mark.parametrize("world,workers,batch", GRID)
@pytest.mark.parametrize("remainder", ["drop", "pad"])
def test_shape_partition_exactly_once_equal_counts(world, workers, batch, remainder):
    total = sum(SIZES)
    slots = shape_positions(total, world, workers, batch, remainder)
    n = samples_per_rank(total, world, remainder)
    for r in range(world):
        assert sum(len(slots[r, k]) for k in range(workers)) == n  # every rank the same count
    counts = Counter(p for v in slots.values() for p in v.tolist())
    if remainder == "drop":
        assert max(counts.values()) == 1 and set(counts) == set(range(world * n))
    else:
        assert set(counts) == set(range(total)) and sum(counts.values()) == world * n


@pytest.mark.parametrize("world,workers,batch", GRID)
def test_ranks_in_lockstep_consume_contiguous_windows(world, workers, batch):
    """Batch b of every rank together is the global window [b*B*W, (b+1)*B*W): the rank's
    workers take blocks of `batch` steps in turn, as DataLoader's round robin delivers them."""
    total = sum(SIZES)
    slots = shape_positions(total, world, workers, batch)
    for r in range(world):
        delivered = []
        per_worker = [list(slots[r, k]) for k in range(workers)]
        while any(per_worker):
            for w in per_worker:
                delivered += w[:batch]
                del w[:batch]
        assert delivered == list(range(r, world * (total // world), world))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 200), st.sampled_from([(4, 2), (2, 3), (1, 1), (3, 2)]),
       st.sampled_from([(2, 3), (4, 2), (2, 1), (3, 2)]), st.integers(1, 5), st.integers(0, 10**6))
def test_resume_onto_another_shape_is_exactly_once(total, old, new, batch, seed):
    """Any lockstep stopping point of one shape, merged, then the rest at another shape."""
    rng = np.random.default_rng(seed)
    w1, k1 = old
    slots = shape_positions(total, w1, k1, batch)
    counts = {k: int(rng.integers(0, len(slots[0, k]) + 1)) for k in range(k1)}
    state = LoaderState(0, 0, "f", (), Shape(w1, k1, batch), counts)
    done = from_ranges(merge(state, total, "drop").consumed)
    head = np.concatenate([slots[r, k][:c] for r in range(w1) for k, c in counts.items()] or [[]])
    assert sorted(done.tolist()) == sorted(head.astype(int).tolist())
    left = remaining(total, done)
    w2, k2 = new
    tail = np.concatenate([left[v] for v in shape_positions(len(left), w2, k2, batch).values()])
    seen = Counter(done.tolist() + tail.tolist())
    assert max(seen.values(), default=1) == 1
    assert total - len(seen) == len(left) % w2  # only the new shape's remainder is dropped


@given(st.lists(st.integers(0, 30), min_size=1, max_size=12), st.integers(1, 5))
def test_split_pieces_partition(sizes, parts):
    pieces = [Piece(s, 0, n) for s, n in enumerate(sizes) if n]
    shares = [split_pieces(pieces, p, parts) for p in range(parts)]
    flat = [(q.shard, o) for share in shares for q in share for o in range(q.start, q.stop)]
    assert flat == [(p.shard, o) for p in pieces for o in range(p.start, p.stop)]
    lens = [sum(q.size for q in s) for s in shares]
    assert max(lens) - min(lens) <= 1


@given(st.lists(st.integers(0, 50), max_size=40))
def test_ranges_round_trip(positions):
    p = np.array(sorted(set(positions)), dtype=np.int64)
    assert from_ranges(to_ranges(p)).tolist() == p.tolist()


@settings(max_examples=50)
@given(st.integers(0, 300), st.integers(1, 64), st.integers(0, 2**31))
def test_emit_order_is_a_permutation(n, buffer, seed):
    out = emit_order(n, np.random.default_rng(seed), buffer)
    assert sorted(out.tolist()) == list(range(n))


def test_mixing_per_global_batch_on_a_synset_keyed_release():
    """100 classes, two shards each (as a synset-keyed release has): global batches of 64 mix
    at least 0.9 of i.i.d.; reading shard by shard would give about 2 classes a batch."""
    sizes = [40 + (c % 7) for c in range(100) for _ in range(2)]
    label = [c for c in range(100) for _ in range(2)]
    seq = epoch_order(sizes, seed=0, epoch=0, shuffle=True, streams=64, open_shards=4, buffer_size=256)
    labels = [label[s] for s, _ in seq.samples()]
    for batch in (64, 256):
        assert mixing_ratio(labels, batch) >= 0.9
    sequential = [label[s] for s, size in enumerate(sizes) for _ in range(size)]
    assert mixing_ratio(sequential, 256) < 0.1


def test_positions_after_batches_round_robin():
    # two workers with 10 and 9 samples, batch 4: batches w0,w1,w0,w1,w0(2),w1(1)
    assert positions_after_batches([10, 9], 4, 0) == [0, 0]
    assert positions_after_batches([10, 9], 4, 3) == [8, 4]
    assert positions_after_batches([10, 9], 4, 5) == [10, 8]
    assert positions_after_batches([10, 9], 4, 6) == [10, 9]
    assert positions_after_batches([10, 2], 4, 3) == [8, 2]  # worker 1 ran out after one
