"""The epoch order as pure functions, over a grid of ranks x workers x seeds x epochs."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synshard.shards.loader_state import positions_after_batches
from synshard.shards.shuffle import (
    emit_order,
    mixing_ratio,
    plan_worker,
    rank_pieces,
    samples_per_rank,
    shard_order,
    split_pieces,
)

SIZES = [7, 1, 13, 5, 9, 2, 11, 4, 6, 3, 8]  # 69 samples, uneven shards


def epoch_samples(sizes, seed, epoch, world, workers, remainder="drop", shuffle=True):
    """{rank: [(shard, offset), ...]} with each rank's workers concatenated."""
    out = {}
    for rank in range(world):
        out[rank] = []
        for w in range(workers):
            plan = plan_worker(sizes, seed=seed, epoch=epoch, rank=rank, world_size=world,
                               worker=w, num_workers=workers, shuffle=shuffle,
                               remainder=remainder, open_shards=3, buffer_size=10)  # fmt: skip
            out[rank] += plan.samples()
    return out


GRID = list(itertools.product([1, 2, 3, 8], [1, 2, 3], [0, 7], [0, 1]))


@pytest.mark.parametrize("world,workers,seed,epoch", GRID)
@pytest.mark.parametrize("remainder", ["drop", "pad"])
def test_exactly_once_equal_counts(world, workers, seed, epoch, remainder):
    per_rank = epoch_samples(SIZES, seed, epoch, world, workers, remainder)
    total = sum(SIZES)
    n = samples_per_rank(total, world, remainder)
    assert {len(v) for v in per_rank.values()} == {n}  # every rank the same count
    counts = Counter(s for v in per_rank.values() for s in v)
    universe = {(s, o) for s, size in enumerate(SIZES) for o in range(size)}
    assert set(counts) <= universe
    if remainder == "drop":
        assert max(counts.values()) == 1
        assert total - len(counts) == total % world < world
    else:
        assert set(counts) == universe
        assert sum(counts.values()) - total == (-total) % world < world


@pytest.mark.parametrize("world,workers", [(1, 1), (2, 2), (3, 2)])
def test_deterministic_and_epochs_differ(world, workers):
    a = epoch_samples(SIZES, 3, 0, world, workers)
    assert a == epoch_samples(SIZES, 3, 0, world, workers)
    assert a != epoch_samples(SIZES, 3, 1, world, workers)
    assert a != epoch_samples(SIZES, 4, 0, world, workers)


def test_no_shuffle_is_file_order():
    got = epoch_samples(SIZES, 0, 5, 1, 1, shuffle=False)[0]
    assert got == [(s, o) for s, size in enumerate(SIZES) for o in range(size)]


def test_shard_order_is_a_permutation_seeded_by_epoch():
    a, b = shard_order(50, 1, 0, True), shard_order(50, 1, 1, True)
    assert sorted(a) == list(range(50)) and list(a) != list(b)
    assert list(shard_order(5, 1, 0, False)) == [0, 1, 2, 3, 4]


def test_rank_reads_whole_shards_except_at_most_two_cut_ones():
    order = shard_order(len(SIZES), 0, 0, True)
    for rank in range(3):
        pieces = rank_pieces(SIZES, order, rank, 3, "drop")
        cut = [p for p in pieces if p.size != SIZES[p.shard]]
        assert len(cut) <= 2


@given(st.lists(st.integers(0, 30), min_size=1, max_size=12), st.integers(1, 5))
def test_split_pieces_partition(sizes, parts):
    order = list(range(len(sizes)))
    pieces = rank_pieces(sizes, order, 0, 1, "drop")
    shares = [split_pieces(pieces, p, parts) for p in range(parts)]
    flat = [(q.shard, o) for share in shares for q in share for o in range(q.start, q.stop)]
    assert flat == [(p.shard, o) for p in pieces for o in range(p.start, p.stop)]
    lens = [sum(q.size for q in s) for s in shares]
    assert max(lens) - min(lens) <= 1


@settings(max_examples=50)
@given(st.integers(0, 300), st.integers(1, 64), st.integers(0, 2**31))
def test_emit_order_is_a_permutation(n, buffer, seed):
    out = emit_order(n, np.random.default_rng(seed), buffer)
    assert sorted(out.tolist()) == list(range(n))


def test_mixing_on_a_synset_keyed_release():
    """100 classes, one run of shards each (as a synset-keyed release has): batches of 256 mix
    at least 0.9 of i.i.d.; reading shard by shard would give about 3 classes a batch."""
    sizes = [40 + (c % 7) for c in range(100) for _ in range(2)]  # two shards per class
    label = [c for c in range(100) for _ in range(2)]
    plan = plan_worker(sizes, seed=0, epoch=0, rank=0, world_size=1, worker=0, num_workers=1,
                       shuffle=True, remainder="drop", open_shards=128, buffer_size=2048)  # fmt: skip
    labels = [label[s] for s, _ in plan.samples()]
    assert mixing_ratio(labels, 256) >= 0.9
    sequential = [label[s] for s, size in enumerate(sizes) for _ in range(size)]
    assert mixing_ratio(sequential, 256) < 0.1


def test_positions_after_batches_round_robin():
    # two workers with 10 and 9 samples, batch 4: batches w0,w1,w0,w1,w0(2),w1(1)
    assert positions_after_batches([10, 9], 4, 0) == [0, 0]
    assert positions_after_batches([10, 9], 4, 3) == [8, 4]
    assert positions_after_batches([10, 9], 4, 5) == [10, 8]
    assert positions_after_batches([10, 9], 4, 6) == [10, 9]
    assert positions_after_batches([10, 2], 4, 3) == [8, 2]  # worker 1 ran out after one
