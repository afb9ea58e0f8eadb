"""The torch adapter under a real DataLoader with two worker processes."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "loader"))
import releasegen  # noqa: E402

from synshard.shards import ShardDataset  # noqa: E402
from synshard.shards.torch_adapter import TorchShardDataset, collate  # noqa: E402

OPTS = dict(image_size=8, open_shards=8, buffer_size=40)


@pytest.fixture(scope="module")
def rel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rel")
    releasegen.build(root, 5, 21, target_bytes=30_000)
    return root


def run(tds, batch_size=8):
    loader = torch.utils.data.DataLoader(tds, batch_size=batch_size, num_workers=2, collate_fn=collate)
    return list(loader)


def test_two_ranks_two_workers_exactly_once(rel):
    universe = {s["key"] for s in ShardDataset(str(rel), "train", shuffle=False, **OPTS)}
    per_rank = []
    for rank in range(2):
        ds = ShardDataset(str(rel), "train", rank=rank, world_size=2, **OPTS)
        batches = run(TorchShardDataset(ds))
        assert batches[0]["image"].dtype == torch.uint8 and batches[0]["image"].shape[1:] == (8, 8, 3)
        assert batches[0]["label"].dtype == torch.int64
        per_rank.append([k for b in batches for k in b["key"]])
        assert len(per_rank[-1]) == len(ds)
    assert len(per_rank[0]) == len(per_rank[1])
    counts = Counter(k for r in per_rank for k in r)
    assert max(counts.values()) == 1 and len(universe) - len(counts) <= 1


def test_resume_mid_epoch_matches_uninterrupted(rel):
    full = TorchShardDataset(ShardDataset(str(rel), "train", seed=5, **OPTS))
    full.set_epoch(2)
    expected = [k for b in run(full) for k in b["key"]]
    first = TorchShardDataset(ShardDataset(str(rel), "train", seed=5, **OPTS))
    first.set_epoch(2)
    head = run(first)[:5]
    state = first.state_dict(batches_seen=5, batch_size=8, num_workers=2)
    second = TorchShardDataset(ShardDataset(str(rel), "train", seed=5, **OPTS))
    second.load_state_dict(state)
    got = [k for b in head + run(second) for k in b["key"]]
    assert sorted(got) == sorted(expected) and len(got) == len(expected)
