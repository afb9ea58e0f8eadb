"""Ray Data adapter: a release split as a `ray.data.Dataset` of decoded, augmented samples.

    ds = read_release("s3://bucket/releases/r1", "train", seed=0, epoch=0, image_size=224)
    trainer = TorchTrainer(..., datasets={"train": ds})   # Ray Train splits it across workers

Why a Datasource over the loader rather than `read_webdataset`: the order, mixing and
corrupt-sample handling stay the loader's (one bad JPEG is a counted skip, not a failed task),
and the read tasks are the loader's worker shares of one rank (`iter_worker(i, n)`), so the
dataset holds every sample of the split exactly once. Blocks carry `image` (a tensor column,
N x H x W x 3 uint8), `label`, `key` and `synset`. Ray is imported here only.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import ray
from ray.data import Datasource, ReadTask
from ray.data.block import BlockAccessor, BlockMetadata

from .loader import ShardDataset


class ShardDatasource(Datasource):
    """Read tasks = the loader's worker shares of the whole split (rank 0 of 1)."""

    def __init__(self, uri: str, split: str, epoch: int, block_rows: int, **options: Any) -> None:
        self.uri, self.split, self.epoch, self.block_rows = uri, split, epoch, block_rows
        self.options = options
        self._dataset = ShardDataset(uri, split, rank=0, world_size=1, **options)

    def estimate_inmemory_data_size(self) -> int | None:
        size = self._dataset.augment.image_size
        return len(self._dataset) * size * size * 3

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: Any = None) -> list[ReadTask]:  # fmt: skip
        parts = max(1, min(parallelism, len(self._dataset.shards)))
        tasks = []
        for part in range(parts):
            meta = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=None)
            tasks.append(ReadTask(self._reader(part, parts), meta))
        return tasks

    def _reader(self, part: int, parts: int) -> Any:
        uri, split, epoch, rows, options = self.uri, self.split, self.epoch, self.block_rows, self.options

        def read() -> Iterator[Any]:
            ds = ShardDataset(uri, split, rank=0, world_size=1, **options)
            ds.set_epoch(epoch)
            yield from _blocks(ds.iter_worker(part, parts), rows)

        return read


def _blocks(samples: Iterator[dict[str, Any]], rows: int) -> Iterator[Any]:
    batch: list[dict[str, Any]] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == rows:
            yield _block(batch)
            batch = []
    if batch:
        yield _block(batch)


def _block(batch: list[dict[str, Any]]) -> Any:
    return BlockAccessor.batch_to_block({
        "image": np.stack([s["image"] for s in batch]),
        "label": np.array([s["label"] for s in batch], dtype=np.int64),
        "key": np.array([s["key"] for s in batch], dtype=object),
        "synset": np.array([s["synset"] for s in batch], dtype=object),
    })  # fmt: skip


def read_release(uri: str, split: str = "train", *, epoch: int = 0, parallelism: int = -1,
                 block_rows: int = 256, **options: Any) -> "ray.data.Dataset":  # fmt: skip
    """The split as a Ray Dataset for one epoch (call again with the next epoch to reshuffle).
    `options` are ShardDataset's (seed, shuffle, image_size, synsets, storage_options, ...)."""
    source = ShardDatasource(uri, split, epoch, block_rows, **options)
    return ray.data.read_datasource(source, override_num_blocks=None if parallelism < 0 else parallelism)
