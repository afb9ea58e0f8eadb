"""The torch adapter under real DataLoaders with two worker processes: torch's DataLoader and
torchdata's StatefulDataLoader (same-shape resume bit-identical, other-shape exactly once)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchdata")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "loader"))
import releasegen  # noqa: E402

from synshard.shards import ShardDataset  # noqa: E402
from synshard.shards.torch_adapter import TorchShardDataset, collate, data_loader  # noqa: E402

OPTS = dict(image_size=8, streams=8, open_shards=2, buffer_size=16, seed=5)
BATCH = 8


@pytest.fixture(scope="module")
def rel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rel")
    releasegen.build(root, 5, 21, target_bytes=30_000)  # 109 samples
    return root


def dataset(rel, rank=0, world=1, epoch=2):
    ds = ShardDataset(str(rel), "train", rank=rank, world_size=world, **OPTS)
    ds.set_epoch(epoch)
    return ds


def keys(batches):
    return [k for b in batches for k in b["key"]]


def test_plain_dataloader_two_ranks_two_workers_exactly_once(rel):
    universe = {s["key"] for s in ShardDataset(str(rel), "train", shuffle=False, **OPTS)}
    per_rank = []
    for rank in range(2):
        ds = dataset(rel, rank, 2)
        batches = list(data_loader(ds, BATCH, num_workers=2, stateful=False))
        assert batches[0]["image"].dtype == torch.uint8 and batches[0]["image"].shape[1:] == (8, 8, 3)
        assert batches[0]["label"].dtype == torch.int64
        per_rank.append(keys(batches))
        assert len(per_rank[-1]) == len(ds)
        # batches come in the rank's sequence order, whatever the number of workers
        assert per_rank[-1] == [s["key"] for s in dataset(rel, rank, 2)]
    counts = Counter(k for r in per_rank for k in r)
    assert max(counts.values()) == 1 and len(universe) - len(counts) == 1


def test_plain_dataloader_resume_from_batch_count(rel):
    expected = keys(data_loader(dataset(rel), BATCH, num_workers=2, stateful=False))
    tds = TorchShardDataset(dataset(rel), BATCH)
    head = list(data_loader(tds, BATCH, num_workers=2, stateful=False))[:5]
    state = tds.state_dict(batches_seen=5, num_workers=2)
    again = dataset(rel)
    again.load_state_dict(state)
    assert keys(head) + keys(data_loader(again, BATCH, num_workers=2, stateful=False)) == expected


def test_stateful_dataloader_same_shape_resume_is_bit_identical(rel):
    def content(batches):
        return [(k, img.numpy().tobytes()) for b in batches for k, img in zip(b["key"], b["image"])]

    expected = content(data_loader(dataset(rel, 1, 2), BATCH, num_workers=2))
    first = data_loader(dataset(rel, 1, 2), BATCH, num_workers=2)
    head = []
    for i, batch in enumerate(first):
        head.append(batch)
        if i == 2:
            break
    state = first.state_dict()
    second = data_loader(dataset(rel, 1, 2), BATCH, num_workers=2)
    second.load_state_dict(state)
    assert content(head) + content(second) == expected


def test_stateful_dataloader_state_resumes_onto_another_shape(rel):
    """Two ranks x two workers stop after 3 batches; rank 0's loader state alone resumes one
    rank x three workers (and it would any other shape): every sample once."""
    head, state = [], None
    for rank in range(2):
        loader = data_loader(dataset(rel, rank, 2), BATCH, num_workers=2)
        for i, batch in enumerate(loader):
            head += batch["key"]
            if i == 2:
                break
        state = loader.state_dict() if rank == 0 else state
    ds = dataset(rel, 0, 1)
    ds.load_state_dict(state)
    tail = keys(data_loader(ds, BATCH, num_workers=3))
    seen = Counter(head + tail)
    assert len(head) == 2 * 3 * BATCH and max(seen.values()) == 1 and len(seen) == 109


def test_map_view_under_a_sampler(rel):
    view = dataset(rel).map_view()
    sampler = torch.utils.data.distributed.DistributedSampler(view, num_replicas=2, rank=0, seed=0)
    loader = torch.utils.data.DataLoader(view, batch_size=BATCH, sampler=sampler, collate_fn=collate)
    got = keys(loader)
    assert len(got) == len(sampler) and len(set(got)) == len(got)
