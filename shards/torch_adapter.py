"""PyTorch adapter: a `ShardDataset` as an `IterableDataset` that splits work across workers.

    from synshard.shards.torch_adapter import data_loader
    loader = data_loader(ShardDataset(uri, rank=rank, world_size=world, seed=0), batch_size=256,
                         num_workers=8)              # a torchdata StatefulDataLoader
    for epoch in ...: loader.dataset.set_epoch(epoch); for batch in loader: ...
    checkpoint["data"] = loader.state_dict()          # rank 0's is enough for every rank

Resume on the same shape with `loader.load_state_dict(saved)` (bit-identical); on another shape
(other world size or worker count) load it into the dataset before building the new loader:
`ds.load_state_dict(saved); loader = data_loader(ds, ...)` (exactly once over the epoch).

Each DataLoader worker (from `get_worker_info`) reads blocks of `batch_size` of its rank's steps
in turn (`ShardDataset.iter_worker`), so with the DataLoader's batch size the rank's batches come
in global-sequence order. The dataset speaks torchdata's `Stateful` protocol (`state_dict()`,
`load_state_dict()`), which `StatefulDataLoader` calls in every worker. With a plain DataLoader,
`state_dict(batches_seen=...)` recovers every worker's state from the batch count (in-order round
robin, `loader_state.positions_after_batches`). torch is imported here only.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .loader import ShardDataset
from .loader_state import LoaderState, Shape, merge, positions_after_batches


class TorchShardDataset(IterableDataset):
    """A `ShardDataset` for `torch.utils.data.DataLoader` or torchdata's `StatefulDataLoader`."""

    def __init__(self, dataset: ShardDataset, batch_size: int = 1) -> None:
        super().__init__()
        self.dataset, self.batch_size = dataset, max(1, batch_size)

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        yield from self.dataset.iter_worker(worker, workers, self.batch_size, in_worker_process=info is not None)

    def state_dict(self, batches_seen: int | None = None, batch_size: int | None = None,
                   num_workers: int = 0, drop_last: bool = False) -> Any:  # fmt: skip
        """Without arguments, this worker's state (what StatefulDataLoader stores). With a plain
        DataLoader: the state after the main process took `batches_seen` batches of
        `batch_size` (default: this adapter's) from `num_workers` workers."""
        if batches_seen is None:
            return self.dataset.state_dict()
        ds, workers = self.dataset, max(1, num_workers)
        shape = Shape(ds.world_size, workers, self.batch_size)
        plans = [ds._plan(shape, k) for k in range(workers)]
        taken = positions_after_batches([len(m) - s for m, s in plans], batch_size or self.batch_size,
                                        batches_seen, drop_last)  # fmt: skip
        counts = {k: s + t for k, ((_, s), t) in enumerate(zip(plans, taken))}
        state = LoaderState(ds.epoch, ds.seed, ds.fingerprint(), tuple((a, b) for a, b in ds._base), shape, counts)
        # Shape-free: a fresh DataLoader starts its round robin at worker 0 again, and the
        # positions left, spread anew, continue the rank's sequence in order.
        return merge(state, ds.total, ds.remainder).to_dict()

    def load_state_dict(self, state: Any) -> None:
        self.dataset.load_state_dict(state)


def data_loader(dataset: ShardDataset | TorchShardDataset, batch_size: int, num_workers: int = 0,
                stateful: bool = True, **kwargs: Any) -> Any:  # fmt: skip
    """A DataLoader over `dataset` whose workers take blocks of `batch_size` (so batches come in
    sequence order): torchdata's `StatefulDataLoader` (default) or torch's `DataLoader`."""
    tds = dataset if isinstance(dataset, TorchShardDataset) else TorchShardDataset(dataset, batch_size)
    if tds.batch_size != batch_size:
        raise ValueError(f"the dataset takes blocks of {tds.batch_size}, the loader batches {batch_size}")
    if stateful:
        from torchdata.stateful_dataloader import StatefulDataLoader as Loader
    else:
        Loader = torch.utils.data.DataLoader
    kwargs.setdefault("collate_fn", collate)
    return Loader(tds, batch_size=batch_size, num_workers=num_workers, **kwargs)


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch as tensors: `image` uint8 N x H x W x 3, `label` int64; `key`, `synset` lists;
    `bboxes` a list of float32 N_i x 4 numpy arrays (boxes per image differ in number; as
    tensors, each would be its own shared-memory segment on the way from a worker, which
    measured 145 us an image, as much as handing over the image batch; `torch.from_numpy` of
    an array is free)."""
    return {
        "image": stack_images([s["image"] for s in samples]),
        "label": torch.tensor([s["label"] for s in samples], dtype=torch.int64),
        "key": [s["key"] for s in samples],
        "synset": [s["synset"] for s in samples],
        "bboxes": [np.ascontiguousarray(s["bboxes"], dtype=np.float32) for s in samples],
    }


def stack_images(images: list[np.ndarray]) -> torch.Tensor:
    """One N x H x W x 3 tensor; in a DataLoader worker stacked straight into shared memory (as
    torch's default_collate does), saving the copy that sharing a finished tensor makes."""
    shape = (len(images), *images[0].shape)
    elem = torch.from_numpy(np.empty(0, dtype=images[0].dtype))  # a hook may change the dtype
    if get_worker_info() is None:
        out = torch.empty(shape, dtype=elem.dtype)
    else:
        out = elem.new(elem._typed_storage()._new_shared(int(np.prod(shape)))).resize_(shape)
    np.stack(images, out=out.numpy())
    return out
