"""The streaming training loader: a release's shards -> decoded, augmented, well-mixed samples.

    ds = ShardDataset("s3://bucket/releases/r1", split="train", rank=0, world_size=8, seed=0)
    for sample in ds: ...          # {"image": HxWx3 uint8, "label", "key", "synset", "bboxes"}

Why it works this way:
- The order is one global sequence per (release, split, seed, epoch), computed on indices by
  `shuffle.epoch_order` (a canonical partition into `streams`, each interleaving `open_shards`
  synset shards through a `buffer_size` shuffle buffer), the same whatever the number of ranks
  and workers. A rank, and a worker inside it, take fixed positions of it (`slot_positions`).
- Samples are read by position through the shard indexes (`index/*.idx.parquet`: byte offset and
  size of every sample), one ranged read each (`loader_read`), and decoded by `threads` reader
  threads `read_ahead` samples ahead, in order: 8 for an object store, 2 for local files in the
  main process, none (inline) inside a DataLoader worker. The decode (`augment`, `jpeg`) is
  pixel-exact with a plain Pillow decode but decodes only the rows the crop needs.
- The state is which positions are consumed (`loader_state`): it resumes bit-identically on the
  same shape and, from rank 0's state alone, exactly once on any other shape.
- A corrupt sample or an unreadable shard is counted in `stats`, logged, and replaced by the
  sample at a deterministic other position (`shuffle.replacement`), so every rank yields the same
  count and DDP never waits on a short rank. Programming errors still raise.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import os
from typing import Any, Iterable, Iterator, Literal

import numpy as np
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from .augment import DECODE_ERRORS, AugmentOptions, HookFn, augment
from .layout import ShardEntry, ShardError
from .loader_read import ShardReader, in_order
from .loader_state import LoaderState, LoaderStats, Shape, StateError, collect, consumed_positions
from .release import Release, open_release
from .shuffle import EpochOrder, Remainder, epoch_order, remaining, replacement, samples_per_rank
from .shuffle import from_ranges, slot_positions, to_ranges

log = logging.getLogger(__name__)
READ_ERRORS = (ShardError, OSError, EOFError, ValueError, pa.ArrowException)
MAX_REPLACEMENTS = 16  # tries for a stand-in before the loader gives up on a bad epoch
# Reader threads (threads=None): remote reads overlap their latency with 8, one sample a task;
# local files in the main process decode on up to 2 threads, 8 samples a task (Pillow's JPEG
# decoder releases the GIL); inside a DataLoader worker (the workers are the parallelism)
# inline, no hand-over.
READ_THREADS = 8
LOCAL_THREADS = min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
LOCAL_CHUNK = 8


class ShardDataset:
    """Iterable over one rank's samples of a release split (see the module doc)."""

    _left: int | None  # positions the loaded state leaves (for len, computed once)

    def __init__(
        self, uri: str, split: str = "train", *, rank: int = 0, world_size: int = 1, seed: int = 0,
        shuffle: bool = True, image_size: int = 224, synsets: Iterable[str] | None = None,
        hierarchy: Any = None, transform: Literal["train", "eval"] | None = None,
        hook: HookFn | None = None, remainder: Remainder = "drop", streams: int = 64,
        open_shards: int = 4, buffer_size: int = 256, read_ahead: int = 64,
        threads: int | None = None, storage_options: dict[str, Any] | None = None,
        release: Release | None = None,
    ) -> None:  # fmt: skip
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        if remainder not in ("drop", "pad"):
            raise ValueError(f"remainder must be 'drop' or 'pad', got {remainder!r}")
        self.release = release or open_release(uri, storage_options)
        self.split, self.rank, self.world_size, self.seed = split, rank, world_size, seed
        self.shuffle, self.remainder, self.hook = shuffle, remainder, hook
        self.streams, self.open_shards = max(1, streams), max(1, open_shards)
        self.buffer_size, self.read_ahead = max(1, buffer_size), max(1, read_ahead)
        self.threads = threads
        mode = transform or ("train" if split == "train" and shuffle else "eval")
        self.augment = AugmentOptions(image_size=image_size, mode=mode)
        self.labels = {c["synset"]: int(c["label"]) for c in self.release.manifest.classes}
        self.shards = _select_shards(self.release, split, synsets, hierarchy)
        self.sizes = [e.samples for e in self.shards]
        self.total = int(sum(self.sizes))
        self.stats = LoaderStats()
        self._paths = [_stable_int(e.path) for e in self.shards]
        self._reader: ShardReader | None = None
        self._order: tuple[int, EpochOrder] | None = None
        self.set_epoch(0)

    # -- order -----------------------------------------------------------------------------
    def __len__(self) -> int:
        """Samples `iter(self)` yields on this rank now (the same on every rank): the epoch's
        share after `set_epoch`; after `load_state_dict`, what is left of the loaded epoch for
        this rank at this world size, whatever shape saved the state (a StateError if it holds
        only some of its workers: the rest of the epoch is unknown then)."""
        if self._loaded is None:
            return samples_per_rank(self.total, self.world_size, self.remainder)
        left = self._left
        if left is None:
            done = consumed_positions(self._loaded, self.total, self.remainder)
            left = self._left = int(len(remaining(self.total, done)))
        return samples_per_rank(left, self.world_size, self.remainder)

    def fingerprint(self) -> str:
        """Identifies everything that shapes the global order (not the shape), so a state
        cannot resume on another release, split or options."""
        parts = [self.release.manifest.fingerprint, self.split, self.shuffle, self.remainder,
                 self.streams, self.open_shards, self.buffer_size, [e.path for e in self.shards]]  # fmt: skip
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def order(self) -> EpochOrder:
        """The current epoch's global sequence (cached; the same on every rank and worker)."""
        if self._order is None or self._order[0] != self.epoch:
            self._order = (self.epoch, epoch_order(
                self.sizes, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle,
                streams=self.streams, open_shards=self.open_shards, buffer_size=self.buffer_size,
            ))  # fmt: skip
        return self._order[1]

    def positions(self, worker: int = 0, num_workers: int = 1, batch_size: int = 1) -> np.ndarray:
        """The global positions one worker of this rank yields this epoch, in order (after a
        loaded state: from where it stands)."""
        mine, start = self._plan(Shape(self.world_size, num_workers, batch_size), worker)
        return mine[start:]

    def _plan(self, shape: Shape, worker: int) -> tuple[np.ndarray, int]:
        left, start = self._resume_point(shape, worker)
        idx = slot_positions(len(left), rank=self.rank, world_size=self.world_size, worker=worker,
                             num_workers=shape.num_workers, batch_size=shape.batch_size,
                             remainder=self.remainder)  # fmt: skip
        return left[idx], start

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning (call before each epoch, as with DistributedSampler)."""
        self.epoch = int(epoch)
        self._loaded: LoaderState | None = None
        self._left = None
        self._base: list[list[int]] = []
        self._slot: tuple[Shape, int] | None = None
        self._yielded = 0

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where iteration stands (torchdata's Stateful protocol): resume with
        `load_state_dict`, on this shape or another (see `loader_state`)."""
        if self._slot is None:
            if self._loaded is not None:
                return self._loaded.to_dict()
            return LoaderState(self.epoch, self.seed, self.fingerprint()).to_dict()
        shape, worker = self._slot
        state = LoaderState(self.epoch, self.seed, self.fingerprint(),
                            tuple((a, b) for a, b in self._base), shape, {worker: self._yielded})  # fmt: skip
        return state.to_dict()

    def load_state_dict(self, state: Any) -> None:
        """Resume from `state_dict()`, a list of worker states, or a `StatefulDataLoader`'s
        state dict (any rank's: ranks advance in lockstep)."""
        (s,) = collect(state)
        s.check(self.seed, self.fingerprint())
        self.set_epoch(s.epoch)
        self._loaded = s

    def _resume_point(self, shape: Shape, worker: int) -> tuple[np.ndarray, int]:
        """(positions not consumed before this shape's segment, samples this worker already
        yielded in it); sets the base that `state_dict` reports."""
        s = self._loaded
        if s is None:
            self._base = []
            return np.arange(self.total), 0
        if s.shape == shape and worker in s.yielded:
            self._base = [list(r) for r in s.consumed]
            return remaining(self.total, from_ranges(s.consumed)), s.yielded[worker]
        done = consumed_positions(s, self.total, self.remainder)
        self._base = to_ranges(done)
        return remaining(self.total, done), 0

    # -- iteration -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        """This rank's samples for the current epoch, from the loaded state on."""
        return self.iter_worker(0, 1)

    def iter_worker(self, worker: int, num_workers: int, batch_size: int = 1,
                    in_worker_process: bool = False) -> Iterator[dict[str, Any]]:  # fmt: skip
        """Worker `worker` of `num_workers`' samples (blocks of `batch_size` rank steps each,
        in turn: match the DataLoader's batch size to get the rank's samples in sequence order).
        `in_worker_process`: running in a DataLoader worker (local files then decode inline)."""
        shape = Shape(self.world_size, num_workers, batch_size)
        mine, start = self._plan(shape, worker)
        self._slot, self._yielded = (shape, worker), start
        order = self.order()
        threads, chunk = self._threads(in_worker_process)
        for sample in in_order(mine[start:].tolist(), self._load, threads, self.read_ahead, chunk):
            position = sample.pop("_position")
            if self.hook:
                rng = self._rng(order, position)
                assert rng is not None  # a hook always gets its sample's generator
                sample = self.hook(sample, rng)
            self._yielded += 1
            self.stats.yielded += 1
            yield sample

    def batches(self, batch_size: int, drop_last: bool = False) -> Iterator[dict[str, Any]]:
        """Stacked batches: `image` (B x H x W x 3 uint8), `label` (B int64), `key`, `synset`
        and `bboxes` as lists."""
        batch: list[dict[str, Any]] = []
        for sample in self:
            batch.append(sample)
            if len(batch) == batch_size:
                yield collate(batch)
                batch = []
        if batch and not drop_last:
            yield collate(batch)

    def map_view(self) -> "ShardMapView":
        """`view[i]`: sample `i` of the split (shards in manifest order, samples in file order),
        read through the shard indexes, for code that needs a sampler."""
        return ShardMapView(self)

    # -- reading ---------------------------------------------------------------------------
    def _rng(self, order: EpochOrder, position: int) -> np.random.Generator | None:
        """The sample's own generator (so augmentations do not depend on the shape); None when
        nothing random runs (eval crops, no hook): building one costs more than a crop."""
        if self.augment.mode == "eval" and self.hook is None:
            return None
        return sample_rng(self.seed, self.epoch, self._paths[int(order.shards[position])],
                          int(order.offsets[position]))  # fmt: skip

    def _load(self, position: int) -> dict[str, Any]:
        """The sample at a global position, or the deterministic stand-in for a bad one."""
        order = self.order()
        for attempt in range(MAX_REPLACEMENTS + 1):
            p = position if not attempt else replacement(position, attempt, self.total, self.seed, self.epoch)
            sample = self.sample_at(int(order.shards[p]), int(order.offsets[p]), self._rng(order, p))
            if sample is not None:
                if attempt:
                    self.stats.stand_in(position, p)
                sample["_position"] = p
                return sample
        raise ShardError(f"{MAX_REPLACEMENTS} stand-ins for position {position} were bad too: "
                         f"the release is damaged; run `synshard verify {self.release.root}`")  # fmt: skip

    def sample_at(self, shard: int, offset: int, rng: np.random.Generator | None) -> dict[str, Any] | None:
        """Read, decode and augment one sample; None (counted and logged) when it is bad."""
        if self._reader is None:
            # a span for every piece being read at once, and the threads' read-ahead
            spans = self.streams * self.open_shards + 2 * max(self.threads or 0, READ_THREADS)
            self._reader = ShardReader(self.release, self.shards, cache_blocks=spans)
        entry = self.shards[shard]
        try:
            key, data, meta_bytes = self._reader.read(shard, offset)
        except READ_ERRORS as exc:
            self.stats.note("unreadable", f"{entry.path}#{offset}: {type(exc).__name__}: {exc}")
            return None
        try:
            meta = json.loads(meta_bytes) if meta_bytes else {}
            image, boxes = augment(data, meta.get("bboxes"), self.augment, rng)
        except (KeyError, AttributeError, *DECODE_ERRORS) as exc:
            self.stats.note("corrupt", f"{entry.path}: {key}: {type(exc).__name__}: {exc}")
            return None
        return {"image": image, "label": self.labels.get(entry.synset, -1), "key": key,
                "synset": entry.synset, "bboxes": boxes}  # fmt: skip

    def _reader_local(self) -> bool:
        return isinstance(self.release.fs, LocalFileSystem)

    def _threads(self, in_worker_process: bool) -> tuple[int, int]:
        """(reader threads, samples a task) for this iteration (see READ_THREADS)."""
        if not self._reader_local():
            return self.threads or READ_THREADS, 1
        if self.threads is not None:
            return self.threads, LOCAL_CHUNK
        return (1 if in_worker_process else LOCAL_THREADS), LOCAL_CHUNK

    def __getstate__(self) -> dict[str, Any]:  # worker processes open their own files
        return {**vars(self), "_reader": None}


class ShardMapView:
    """Map-style view of a `ShardDataset`'s split: `len` samples, `view[i]` one sample."""

    def __init__(self, dataset: ShardDataset) -> None:
        self.dataset = dataset
        self.starts = np.concatenate([[0], np.cumsum(dataset.sizes)]).tolist()

    def __len__(self) -> int:
        return self.dataset.total

    def __getitem__(self, i: int) -> dict[str, Any]:
        ds = self.dataset
        if not -ds.total <= i < ds.total:
            raise IndexError(f"sample {i} is not in [0, {ds.total})")
        i %= ds.total
        for attempt in range(MAX_REPLACEMENTS + 1):
            j = i if not attempt else replacement(i, attempt, ds.total, ds.seed, -1)
            shard = bisect.bisect_right(self.starts, j) - 1
            offset = j - self.starts[shard]
            sample = ds.sample_at(shard, offset, sample_rng(ds.seed, ds.epoch, ds._paths[shard], offset))
            if sample is not None:
                return sample
        raise ShardError(f"sample {i} and {MAX_REPLACEMENTS} stand-ins are bad: the release is damaged")


def sample_rng(seed: int, epoch: int, path_hash: int, offset: int) -> np.random.Generator:
    """A generator keyed by the sample and epoch (Philox with a key: no SeedSequence, 2.5x
    cheaper than `default_rng([...])`)."""
    key = np.array([(seed & 0xFFFFFFFF) << 32 | (epoch & 0xFFFFFFFF),
                    (path_hash & 0xFFFFFFFF) << 32 | (offset & 0xFFFFFFFF)], dtype=np.uint64)  # fmt: skip
    return np.random.Generator(np.random.Philox(key=key))


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images and labels; keep keys, synsets and boxes as lists."""
    return {
        "image": np.stack([s["image"] for s in samples]),
        "label": np.array([s["label"] for s in samples], dtype=np.int64),
        "key": [s["key"] for s in samples],
        "synset": [s["synset"] for s in samples],
        "bboxes": [s["bboxes"] for s in samples],
    }


def _select_shards(
    release: Release, split: str, synsets: Iterable[str] | None, hierarchy: Any
) -> list[ShardEntry]:
    """The split's WebDataset shards, restricted to `synsets` (and, given a `hierarchy`, to
    their descendants too: a subtree)."""
    shards = release.shards(split=split, format="webdataset")
    if synsets is None:
        wanted = None
    else:
        wanted = set(synsets)
        if hierarchy is not None:
            for wnid in list(wanted):
                wanted.update(hierarchy.descendants(wnid))
        shards = [e for e in shards if e.synset in wanted]
    if not shards:
        raise ShardError(_no_shards(release, split, wanted))
    return shards


def _no_shards(release: Release, split: str, wanted: set[str] | None) -> str:
    """Why nothing is selected, and what there is: the loader streams WebDataset shards only."""
    everything = release.shards()
    webdataset = [e for e in everything if e.format == "webdataset"]
    if everything and not webdataset:
        formats = sorted({e.format for e in everything})
        return (f"release has no webdataset shards (only {', '.join(formats)}): the loader "
                "streams WebDataset shards; rebuild with --format webdataset,parquet, or read "
                "the Parquet shards with pyarrow/datasets")
    splits = sorted({e.split for e in webdataset})
    if split not in splits:
        return f"release has no split {split!r}: its splits are {', '.join(splits) or 'none'}"
    return (f"release has no webdataset shards for split {split!r} and synsets "
            f"{sorted(wanted or ())[:5]}{' ...' if len(wanted or ()) > 5 else ''}")


__all__ = ["ShardDataset", "ShardMapView", "LoaderStats", "StateError", "collate"]
