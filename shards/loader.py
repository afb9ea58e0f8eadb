"""The streaming training loader: a release's shards -> decoded, augmented, well-mixed samples.

    ds = ShardDataset("s3://bucket/releases/r1", split="train", rank=0, world_size=8, seed=0)
    for sample in ds: ...          # {"image": HxWx3 uint8, "label", "key", "synset", "bboxes"}

Why it works this way:
- It opens the release through its manifest only (no bucket listing) and reads WebDataset tars
  as streams through fsspec. Each shard piece being read has a background thread that opens the
  file and parses samples ahead into a small queue, and the next `read_ahead` pieces start before
  they are needed, so object-store latency overlaps with decoding (PIL releases the GIL).
- The order comes from `shuffle.plan_worker` (pure, on indices): seeded per epoch, the same on
  every machine, exactly once across ranks x workers, interleaving `open_shards` synset shards
  through a `buffer_size` shuffle buffer so batches mix classes. The reader follows that plan, so
  resuming from `state_dict()` is skipping the samples already yielded.
- A corrupt sample or an unreadable shard is skipped, counted in `stats` and logged; it never
  stops the training loop. Programming errors still raise.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import queue
import tarfile
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Literal

import numpy as np
from fsspec.implementations.local import LocalFileSystem

from .augment import DECODE_ERRORS, AugmentOptions, HookFn, augment
from .layout import ShardEntry, ShardError, join
from .loader_state import LoaderState
from .release import Release, open_release
from .shuffle import Piece, Remainder, WorkerPlan, plan_worker, samples_per_rank

log = logging.getLogger(__name__)
READ_ERRORS = (ShardError, OSError, EOFError, tarfile.TarError, ValueError)
IMAGE_EXTS = ("jpg", "webp", "png")
_END = object()
BATCH = 16  # samples per hand-over from a reader thread


@dataclass
class LoaderStats:
    """Counts of what was skipped, so a training job can report (or alert on) bad data."""

    yielded: int = 0
    corrupt: int = 0  # samples whose image or metadata did not decode
    unreadable: int = 0  # samples lost because their shard could not be read
    errors: list[str] = field(default_factory=list)  # the first few reasons

    def note(self, kind: str, reason: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.errors) < 20:
            self.errors.append(reason)
            log.warning("skipped a sample (%s): %s", kind, reason)


class _Stream(threading.Thread):
    """Reads one piece of a tar shard in the background into a bounded queue."""

    def __init__(self, fs: Any, path: str, piece: Piece, depth: int, open_kwargs: dict) -> None:
        super().__init__(daemon=True, name=f"synshard-read-{piece.shard}")
        self.fs, self.path, self.piece, self.open_kwargs = fs, path, piece, open_kwargs
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop_event = threading.Event()
        self.failure: BaseException | None = None
        self.ready: collections.deque = collections.deque()  # the consumer's side of a batch

    def _put(self, item: Any) -> bool:
        while not self.stop_event.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        from .webdataset import iter_tar_samples

        got, batch = 0, []
        try:
            with self.fs.open(self.path, "rb", **self.open_kwargs) as f:
                for i, sample in enumerate(iter_tar_samples(f, self.path)):
                    if i >= self.piece.stop or self.stop_event.is_set():
                        break
                    if i >= self.piece.start:
                        batch.append(sample)
                    if len(batch) == BATCH:  # hand samples over in batches: fewer lock trips
                        got += len(batch) if self._put(batch) else 0
                        batch = []
            if batch:
                got += len(batch) if self._put(batch) else 0
                batch = []
            if got < self.piece.size and not self.stop_event.is_set():
                raise ShardError(f"{self.path}: ended after {self.piece.start + got} samples")
        except BaseException as exc:  # handed to the consumer, which re-raises unexpected ones
            self.failure = exc
            if batch:  # the samples read before the failure still count
                self._put(batch)
        self._put(_END)

    def next(self) -> dict[str, Any] | BaseException:
        """The next sample, or the exception that ended the stream early."""
        if self.ready:
            return self.ready.popleft()
        item = self.queue.get()
        if isinstance(item, list):
            self.ready.extend(item)
            return self.ready.popleft()
        if item is _END:
            self.queue.put(_END)  # every later call sees the end too
            return self.failure or ShardError(f"{self.path}: read past the end of its piece")
        return item


class _Streams:
    """Starts piece streams in order of first need, at most `limit` alive at once."""

    def __init__(self, ds: "ShardDataset", plan: WorkerPlan, schedule: list[int]) -> None:
        self.ds, self.plan, self.schedule = ds, plan, schedule
        self.limit = ds.open_shards + ds.read_ahead
        self.live: dict[int, _Stream] = {}
        self.left = {j: plan.pieces[j].size for j in schedule}
        self.next_start = 0
        self._fill()

    def _fill(self) -> None:
        while len(self.live) < self.limit and self.next_start < len(self.schedule):
            j = self.schedule[self.next_start]
            self.next_start += 1
            self.live[j] = self.ds._stream(self.plan.pieces[j])
            self.live[j].start()

    def take(self, j: int) -> dict[str, Any] | BaseException:
        while j not in self.live:  # the window is wider than the limit: open one more
            if self.next_start >= len(self.schedule):
                raise RuntimeError(f"piece {j} is not scheduled")
            self.limit = len(self.live) + 1
            self._fill()
        item = self.live[j].next()
        self.left[j] -= 1
        if self.left[j] == 0:
            self.live.pop(j).stop_event.set()
            self._fill()
        return item

    def close(self) -> None:
        for stream in self.live.values():
            stream.stop_event.set()
        self.live.clear()


class ShardDataset:
    """Iterable over one rank's samples of a release split (see the module doc)."""

    def __init__(
        self, uri: str, split: str = "train", *, rank: int = 0, world_size: int = 1, seed: int = 0,
        shuffle: bool = True, image_size: int = 224, synsets: Iterable[str] | None = None,
        hierarchy: Any = None, transform: Literal["train", "eval"] | None = None,
        hook: HookFn | None = None, remainder: Remainder = "drop", open_shards: int = 128,
        buffer_size: int = 2048, read_ahead: int = 8, queue_depth: int = 16,
        storage_options: dict[str, Any] | None = None, release: Release | None = None,
    ) -> None:  # fmt: skip
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        if remainder not in ("drop", "pad"):
            raise ValueError(f"remainder must be 'drop' or 'pad', got {remainder!r}")
        self.release = release or open_release(uri, storage_options)
        self.split, self.rank, self.world_size, self.seed = split, rank, world_size, seed
        self.shuffle, self.remainder, self.hook = shuffle, remainder, hook
        self.open_shards, self.buffer_size = max(1, open_shards), max(1, buffer_size)
        self.read_ahead, self.queue_depth = max(0, read_ahead), max(1, queue_depth)
        mode = transform or ("train" if split == "train" and shuffle else "eval")
        self.augment = AugmentOptions(image_size=image_size, mode=mode)
        self.labels = {c["synset"]: int(c["label"]) for c in self.release.manifest.classes}
        self.shards = _select_shards(self.release, split, synsets, hierarchy)
        self.sizes = [e.samples for e in self.shards]
        self.epoch, self.positions, self.stats = 0, [0], LoaderStats()
        self._remote = not isinstance(self.release.fs, LocalFileSystem)

    # -- order -----------------------------------------------------------------------------
    def __len__(self) -> int:
        """Samples this rank yields per epoch (the same on every rank)."""
        return samples_per_rank(sum(self.sizes), self.world_size, self.remainder)

    def fingerprint(self) -> str:
        """Identifies everything that shapes the order, so a state cannot resume elsewhere."""
        parts = [self.release.manifest.fingerprint, self.split, self.shuffle, self.remainder,
                 self.open_shards, self.buffer_size, [e.path for e in self.shards]]  # fmt: skip
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def plan(self, worker: int = 0, num_workers: int = 1) -> WorkerPlan:
        """The deterministic order of one worker's share of this rank in the current epoch."""
        return plan_worker(
            self.sizes, seed=self.seed, epoch=self.epoch, rank=self.rank,
            world_size=self.world_size, worker=worker, num_workers=num_workers,
            shuffle=self.shuffle, remainder=self.remainder, open_shards=self.open_shards,
            buffer_size=self.buffer_size,
        )  # fmt: skip

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning (call before each epoch, as with DistributedSampler)."""
        self.epoch, self.positions = int(epoch), [0]

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where iteration stands: resume with `load_state_dict` in a fresh loader."""
        state = LoaderState(self.epoch, self.seed, self.rank, self.world_size,
                            self.fingerprint(), tuple(self.positions))  # fmt: skip
        return state.to_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        s = LoaderState.from_dict(state)
        s.check(self.seed, self.rank, self.world_size, self.fingerprint())
        self.epoch, self.positions = s.epoch, list(s.positions)

    # -- iteration -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        """This rank's samples for the current epoch, from the saved position on."""
        if len(self.positions) != 1:
            raise ValueError("state has several worker positions: iterate with the torch adapter")
        for sample in self.iter_worker(0, 1, self.positions[0], self.positions):
            yield sample

    def iter_worker(
        self, worker: int, num_workers: int, start: int = 0, positions: list[int] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Worker `worker`'s samples, skipping the first `start` of its order. `positions[worker]`
        (if given) is kept at the position after the last yielded sample; skipped corrupt samples
        count as positions too, so resumes stay exact."""
        plan = self.plan(worker, num_workers)
        emit_pos = np.empty(len(plan), dtype=np.int64)
        emit_pos[plan.emits] = np.arange(len(plan))
        kept = emit_pos >= start
        schedule = list(dict.fromkeys(plan.reads[kept].tolist()))
        needed = set(schedule)
        streams = _Streams(self, plan, schedule)
        stash: dict[int, Any] = {}
        r = 0
        try:
            for e in range(start, len(plan)):
                target = int(plan.emits[e])
                while target not in stash:
                    j = int(plan.reads[r])
                    if kept[r]:
                        stash[r] = streams.take(j)
                    elif j in needed:  # already yielded before a resume: read past it
                        streams.take(j)
                    r += 1
                sample = self._finish(stash.pop(target), plan, target)
                if positions is not None:
                    positions[worker] = e + 1
                if sample is not None:
                    self.stats.yielded += 1
                    yield sample
        finally:
            streams.close()

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

    # -- reading ---------------------------------------------------------------------------
    def _stream(self, piece: Piece) -> _Stream:
        entry = self.shards[piece.shard]
        kwargs = {"block_size": 8 << 20, "cache_type": "readahead"} if self._remote else {}
        return _Stream(self.release.fs, join(self.release.root, entry.path), piece,
                       self.queue_depth, kwargs)  # fmt: skip

    def _finish(self, item: Any, plan: WorkerPlan, read: int) -> dict[str, Any] | None:
        """Decode and augment one read sample; None (counted) when it is bad."""
        entry = self.shards[plan.pieces[plan.reads[read]].shard]
        offset = int(plan.offsets[read])
        if isinstance(item, BaseException):
            if not isinstance(item, READ_ERRORS):
                raise item
            self.stats.note("unreadable", f"{entry.path}#{offset}: {item}")
            return None
        key = item.get("__key__", "?")
        # Per-sample generator: augmentations do not depend on how work is split.
        rng = np.random.default_rng([self.seed, self.epoch, _stable_int(entry.path), offset])
        try:
            data = next(item[ext] for ext in IMAGE_EXTS if ext in item)
            meta = json.loads(item["json"]) if "json" in item else {}
            image, boxes = augment(data, meta.get("bboxes"), self.augment, rng)
        except (StopIteration, KeyError, *DECODE_ERRORS) as exc:
            self.stats.note("corrupt", f"{entry.path}: {key}: {type(exc).__name__}: {exc}")
            return None
        sample = {"image": image, "label": self.labels.get(entry.synset, -1), "key": key,
                  "synset": entry.synset, "bboxes": boxes}  # fmt: skip
        return self.hook(sample, rng) if self.hook else sample


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
        raise ShardError(f"release has no webdataset shards for split {split!r}"
                         + (f" and synsets {sorted(wanted)[:5]}" if wanted else ""))  # fmt: skip
    return shards
