"""Elastic determinism on a real (tiny) release: one global sequence whatever the shape, resume
onto another shape from rank 0's state, equal rank counts with a corrupt sample, mixing per
global batch. Each (rank, worker) is its own ShardDataset, as in separate processes."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

import releasegen
from synshard.shards import ShardDataset
from synshard.shards.loader_state import positions_after_batches
from synshard.shards.shuffle import mixing_ratio

OPTS = dict(image_size=8, streams=8, open_shards=2, buffer_size=16, seed=11)
BATCH = 4
SHAPES = [(1, 1), (2, 1), (2, 3), (4, 2), (3, 2)]


@pytest.fixture(scope="module")
def rel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("elastic")
    releasegen.build(root, 6, 29, target_bytes=20_000)  # 180 samples in 18 shards
    return root


def dataset(root, rank=0, world=1, **kw):
    return ShardDataset(str(root), "train", rank=rank, world_size=world, **{**OPTS, **kw})


def global_sequence(root, world, workers, state=None):
    """{global position: key} of what every rank and worker yields at one shape."""
    out = {}
    for r in range(world):
        for k in range(workers):
            ds = dataset(root, r, world)
            if state is not None:
                ds.load_state_dict(state)
            positions = ds.positions(k, workers, BATCH)
            got = [s["key"] for s in ds.iter_worker(k, workers, BATCH)]
            assert len(got) == len(positions)
            out.update(zip(positions.tolist(), got))
    return out


@pytest.mark.parametrize("world,workers", SHAPES)
def test_the_same_global_sequence_whatever_the_shape(rel, world, workers):
    reference = global_sequence(rel, 1, 1)
    got = global_sequence(rel, world, workers)
    assert len(reference) == 180 and len(got) == 180 // world * world
    assert all(reference[p] == key for p, key in got.items())
    for rank in range(world):  # every rank the same count, its workers' shares adding up
        ds = dataset(rel, rank, world)
        assert sum(len(ds.positions(k, workers, BATCH)) for k in range(workers)) == len(ds)


def stop_at(root, world, workers, batches):
    """Every rank's DataLoader took `batches` batches: (keys consumed by all ranks, rank 0's
    worker states)."""
    consumed, states = [], []
    for r in range(world):
        sizes = [len(dataset(root, r, world).positions(k, workers, BATCH)) for k in range(workers)]
        counts = positions_after_batches(sizes, BATCH, batches)
        for k, count in enumerate(counts):
            ds = dataset(root, r, world)
            it = ds.iter_worker(k, workers, BATCH)
            consumed += [next(it)["key"] for _ in range(count)]
            if r == 0:
                states.append(ds.state_dict())
    return consumed, states


@pytest.mark.parametrize("old,new", [((4, 2), (2, 3)), ((2, 3), (4, 2)), ((3, 2), (1, 1))])
def test_resume_onto_another_shape_is_exactly_once(rel, old, new):
    universe = set(global_sequence(rel, 1, 1).values())
    batches = random.Random(f"{old}{new}").randrange(1, 180 // (old[0] * BATCH))
    head, states = stop_at(rel, *old, batches)
    assert len(head) == old[0] * BATCH * batches
    tail = list(global_sequence(rel, *new, state=states).values())
    seen = Counter(head + tail)
    assert max(seen.values()) == 1  # nothing twice
    assert len(universe - set(seen)) == (180 - len(head)) % new[0]  # only the new remainder left


@pytest.mark.parametrize("remainder", ["drop", "pad"])
@pytest.mark.parametrize("old,new", [((4, 2), (3, 2)), ((2, 3), (4, 1)), ((3, 2), (3, 2))])
def test_len_after_a_resume_is_what_each_rank_yields(rel, old, new, remainder):
    """len(ds) after load_state_dict: the samples left of the epoch for this rank at the new
    world size (before: the whole epoch's share at the new world size)."""
    world, workers = old
    states = []
    for k in range(workers):  # rank 0's workers stop part-way, as a StatefulDataLoader's do
        ds = dataset(rel, 0, world, remainder=remainder)
        it = ds.iter_worker(k, workers, BATCH)
        for _ in range(3 * BATCH + k):
            next(it)
        states.append(ds.state_dict())
    consumed = world * sum(3 * BATCH + k for k in range(workers))
    for rank in range(new[0]):
        fresh = dataset(rel, rank, new[0], remainder=remainder)
        assert len(fresh) == (180 // new[0] if remainder == "drop" else -(-180 // new[0]))
        resumed = dataset(rel, rank, new[0], remainder=remainder)
        resumed.load_state_dict(states)
        left = 180 - consumed
        assert len(resumed) == (left // new[0] if remainder == "drop" else -(-left // new[0]))
        yielded = 0
        for k in range(new[1]):  # each worker in its own dataset, as in its own process
            ds = dataset(rel, rank, new[0], remainder=remainder)
            ds.load_state_dict(states)
            yielded += sum(1 for _ in ds.iter_worker(k, new[1], BATCH))
        assert yielded == len(resumed)
        resumed.set_epoch(1)  # a new epoch: its whole share again
        assert len(resumed) == len(fresh)


def test_same_shape_resume_continues_bit_identically(rel):
    full = [(s["key"], s["image"].tobytes()) for s in dataset(rel, 1, 2).iter_worker(1, 2, BATCH)]
    ds = dataset(rel, 1, 2)
    it = ds.iter_worker(1, 2, BATCH)
    head = [next(it) for _ in range(9)]
    again = dataset(rel, 1, 2)
    again.load_state_dict(ds.state_dict())
    got = [(s["key"], s["image"].tobytes()) for s in head + list(again.iter_worker(1, 2, BATCH))]
    assert got == full


def test_one_corrupt_sample_gives_equal_rank_counts(tmp_path):
    releasegen.build(tmp_path, 3, 10, target_bytes=30_000, corrupt={4}, size=(8, 8))
    ranks = [ShardDataset(str(tmp_path), "train", rank=r, world_size=3, **OPTS) for r in range(3)]
    counts = [sum(1 for _ in ds) for ds in ranks]
    assert counts == [len(ranks[0])] * 3 == [11] * 3  # 10 + 11 + 12 samples over 3 ranks
    assert sum(ds.stats.corrupt for ds in ranks) >= 1
    assert sum(ds.stats.replaced for ds in ranks) == 3  # one corrupt image in each class


def test_mixing_per_global_batch_on_100_classes(tmp_path):
    releasegen.build(tmp_path, 100, 20, target_bytes=30_000, size=(8, 8))
    world, per_rank = 4, 16
    labels = {}
    for r in range(world):
        ds = ShardDataset(str(tmp_path), "train", rank=r, world_size=world, image_size=4, seed=1)
        labels.update(zip(ds.positions().tolist(), (s["label"] for s in ds)))
    sequence = [labels[p] for p in sorted(labels)]
    assert len(sequence) >= 2000
    assert mixing_ratio(sequence, world * per_rank) >= 0.9
    naive = [s["label"] for s in ShardDataset(str(tmp_path), "train", shuffle=False, image_size=4)]
    assert mixing_ratio(naive, world * per_rank) < 0.2


def test_map_view_reads_through_the_indexes(rel):
    ds = dataset(rel, transform="eval")
    view = ds.map_view()
    in_order = [s["key"] for s in dataset(rel, shuffle=False)]
    assert len(view) == 180 and [view[i]["key"] for i in (0, 17, 179, -1)] == [in_order[i] for i in (0, 17, 179, -1)]
    assert view[5]["image"].shape == (8, 8, 3)
    with pytest.raises(IndexError):
        view[180]
