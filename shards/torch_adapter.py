"""PyTorch adapter: a `ShardDataset` as an `IterableDataset` that splits work across workers.

    from synshard.shards.torch_adapter import TorchShardDataset, collate
    tds = TorchShardDataset(ShardDataset(uri, rank=rank, world_size=world, seed=0))
    loader = DataLoader(tds, batch_size=256, num_workers=8, collate_fn=collate)
    for epoch in ...: tds.set_epoch(epoch); for batch in loader: ...

Each DataLoader worker (from `get_worker_info`) reads its own contiguous share of the rank's
samples (`ShardDataset.iter_worker`), so the rank's epoch is still exactly once. Resume: the main
process sees batches, not workers, so `state_dict(batches_seen, batch_size)` recovers each
worker's position from DataLoader's in-order round robin (`loader_state.positions_after_batches`).
torch is an optional extra: this module is the only one in `synshard.shards` importing it.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .loader import ShardDataset
from .loader_state import positions_after_batches


class TorchShardDataset(IterableDataset):
    """A `ShardDataset` for `torch.utils.data.DataLoader` (any `num_workers`)."""

    def __init__(self, dataset: ShardDataset, num_workers: int | None = None) -> None:
        super().__init__()
        self.dataset = dataset
        self.num_workers = num_workers  # None: taken from get_worker_info at iteration

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        positions = self.dataset.positions
        start = positions[worker] if len(positions) == workers else 0
        if len(positions) not in (1, workers) or (len(positions) == 1 and workers > 1 and positions[0]):
            raise ValueError(f"state saved for {len(positions)} workers, loader has {workers}")
        yield from self.dataset.iter_worker(worker, workers, start)

    def worker_samples(self, num_workers: int) -> list[int]:
        """Samples each of `num_workers` workers yields this epoch."""
        return [len(self.dataset.plan(w, num_workers)) for w in range(num_workers)]

    def state_dict(self, batches_seen: int, batch_size: int, num_workers: int,
                   drop_last: bool = False) -> dict[str, Any]:  # fmt: skip
        """The state after the main process took `batches_seen` batches of this epoch.

        Exact when no sample was skipped as corrupt (a skipped one shifts its worker's batches).
        """
        workers = max(1, num_workers)
        samples = self.worker_samples(workers)
        starts = list(self.dataset.positions) if len(self.dataset.positions) == workers else [0] * workers
        left = [n - s for n, s in zip(samples, starts)]
        taken = positions_after_batches(left, batch_size, batches_seen, drop_last)
        state = self.dataset.state_dict()
        state["positions"] = [s + t for s, t in zip(starts, taken)]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dataset.load_state_dict(state)


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch as tensors: `image` uint8 N x H x W x 3, `label` int64; `key`, `synset` lists;
    `bboxes` a list of float32 N_i x 4 tensors (boxes per image differ in number)."""
    return {
        "image": torch.from_numpy(np.stack([s["image"] for s in samples])),
        "label": torch.tensor([s["label"] for s in samples], dtype=torch.int64),
        "key": [s["key"] for s in samples],
        "synset": [s["synset"] for s in samples],
        "bboxes": [torch.from_numpy(np.ascontiguousarray(s["bboxes"])) for s in samples],
    }
