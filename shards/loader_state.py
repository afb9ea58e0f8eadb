"""The loader's resumable state, which positions of the epoch's sequence are consumed; its stats.

A state is small and shape-free at heart: the epoch, the seed, a fingerprint of everything that
shapes the order, and `consumed`, the positions already delivered as `[start, stop)` runs. A
state saved inside a running loader also says where its worker stands in the shape it runs
under (`world_size`, `num_workers`, `batch_size`, and `yielded`: samples each worker yielded
since the last resume); that is what makes a same-shape resume continue bit-identically.

Ranks advance in lockstep under DDP, so rank 0's workers' counts hold for every rank: `merge`
turns them into the positions every rank consumed, which any other shape can resume from.
`collect` accepts what a training loop has at hand: `ShardDataset.state_dict()`, a list of such
states, or `StatefulDataLoader.state_dict()` (its per-worker `dataset_state`s).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .shuffle import Remainder, from_ranges, remaining, slot_positions, to_ranges

STATE_VERSION = 2
log = logging.getLogger("synshard.shards.loader")


class StateError(ValueError):
    """A state dict that does not belong to this loader (other seed, release or options)."""


@dataclass(frozen=True)
class Shape:
    world_size: int
    num_workers: int
    batch_size: int


@dataclass(frozen=True)
class LoaderState:
    """Consumed positions of one epoch, plus (optionally) worker counts under one shape."""

    epoch: int
    seed: int
    fingerprint: str
    consumed: tuple[tuple[int, int], ...] = ()
    shape: Shape | None = None
    yielded: dict[int, int] = field(default_factory=dict)  # worker -> samples since `consumed`

    def to_dict(self) -> dict[str, Any]:
        shape = None if self.shape is None else vars(self.shape).copy()
        return {"version": STATE_VERSION, "epoch": self.epoch, "seed": self.seed,
                "fingerprint": self.fingerprint, "consumed": [list(r) for r in self.consumed],
                "shape": shape, "yielded": {str(k): v for k, v in self.yielded.items()}}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Any) -> "LoaderState":
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise StateError(f"not a synshard loader state (version {STATE_VERSION}): {str(data)[:200]}")
        try:
            shape = data.get("shape")
            return cls(
                epoch=int(data["epoch"]), seed=int(data["seed"]), fingerprint=str(data["fingerprint"]),
                consumed=tuple((int(a), int(b)) for a, b in data["consumed"]),
                shape=None if shape is None else Shape(**{k: int(v) for k, v in shape.items()}),
                yielded={int(k): int(v) for k, v in data.get("yielded", {}).items()},
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"bad loader state: {type(exc).__name__}: {exc}") from None

    def check(self, seed: int, fingerprint: str) -> None:
        """Refuse a state saved by a loader that would order samples differently."""
        if (self.seed, self.fingerprint) != (seed, fingerprint):
            raise StateError(
                f"state was saved for seed {self.seed}, options {self.fingerprint[:12]}; "
                f"this loader has seed {seed}, options {fingerprint[:12]} (same release, split "
                f"and order options needed)"
            )


def collect(state: Any) -> list[LoaderState]:
    """The loader states inside `state` (see the module doc), at least one."""
    if isinstance(state, dict) and "_snapshot" in state:  # StatefulDataLoader, num_workers > 0
        workers = state["_snapshot"].get("_worker_snapshots", {})
        found = [w.get("dataset_state") for _, w in sorted(workers.items())]
    elif isinstance(state, dict) and "dataset_state" in state:  # StatefulDataLoader, in-process
        found = [state["dataset_state"]]
    elif isinstance(state, (list, tuple)):
        found = list(state)
    else:
        found = [state]
    states = [LoaderState.from_dict(s) for s in found if s is not None]
    if not states:
        raise StateError("the state holds no synshard loader state (was the loader ever iterated?)")
    first = states[0]
    for s in states[1:]:
        if (s.epoch, s.seed, s.fingerprint, s.consumed, s.shape) != (
            first.epoch, first.seed, first.fingerprint, first.consumed, first.shape
        ):  # fmt: skip
            raise StateError("the worker states disagree (saved by different loaders or epochs)")
    yielded: dict[int, int] = {}
    for s in states:
        yielded.update(s.yielded)
    return [replace(first, yielded=yielded)]


def consumed_positions(state: LoaderState, total: int, remainder: Remainder) -> np.ndarray:
    """Every position consumed by all ranks of the state's shape (lockstep: each rank's worker
    `k` yielded what rank 0's did), as global positions, with `state.consumed` included."""
    base = from_ranges(state.consumed)
    if state.shape is None or not state.yielded:
        return base
    shape = state.shape
    missing = [k for k in range(shape.num_workers) if k not in state.yielded]
    if missing:
        raise StateError(f"the state lacks workers {missing} of {shape.num_workers}: pass every "
                         "worker's state (StatefulDataLoader.state_dict() has them all)")  # fmt: skip
    left = remaining(total, base)
    taken = [base]
    for k, count in state.yielded.items():
        for r in range(shape.world_size):
            idx = slot_positions(len(left), rank=r, world_size=shape.world_size, worker=k,
                                 num_workers=shape.num_workers, batch_size=shape.batch_size,
                                 remainder=remainder)[:count]  # fmt: skip
            taken.append(left[idx])
    return np.unique(np.concatenate(taken))


def merge(state: LoaderState, total: int, remainder: Remainder) -> LoaderState:
    """The shape-free state: every consumed position as runs, no worker counts."""
    runs = to_ranges(consumed_positions(state, total, remainder))
    return LoaderState(state.epoch, state.seed, state.fingerprint, tuple((int(a), int(b)) for a, b in runs))


def batches_per_worker(samples: list[int], batch_size: int, drop_last: bool) -> list[int]:
    """How many batches each worker yields from its sample count."""
    if drop_last:
        return [n // batch_size for n in samples]
    return [-(-n // batch_size) for n in samples]


def positions_after_batches(
    samples: list[int], batch_size: int, batches: int, drop_last: bool = False
) -> list[int]:
    """Samples each worker had yielded when the main process had taken `batches` batches
    (DataLoader in-order round robin over the workers that still have batches)."""
    left = batches_per_worker(samples, batch_size, drop_last)
    taken = [0] * len(samples)
    while batches > 0 and any(left):
        for w in range(len(samples)):
            if batches == 0:
                break
            if left[w]:
                taken[w] += 1
                left[w] -= 1
                batches -= 1
    return [min(t * batch_size, n) for t, n in zip(taken, samples)]


@dataclass
class LoaderStats:
    """Counts of what was skipped, so a training job can report (or alert on) bad data."""

    yielded: int = 0
    corrupt: int = 0  # samples whose image or metadata did not decode
    unreadable: int = 0  # samples lost because their shard or index could not be read
    replaced: int = 0  # bad samples whose place another sample took
    errors: list[str] = field(default_factory=list)  # the first few reasons
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def note(self, kind: str, reason: str) -> None:
        with self._lock:
            setattr(self, kind, getattr(self, kind) + 1)
            if len(self.errors) < 20:
                self.errors.append(reason)
                log.warning("skipped a sample (%s): %s", kind, reason)

    def stand_in(self, position: int, other: int) -> None:
        with self._lock:
            self.replaced += 1
        log.info("position %d: took the sample of position %d in place of a bad one", position, other)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state, _lock=threading.Lock())
