"""The loader's resumable state, and where each data-loader worker stands after N batches.

A worker's epoch order is a pure function of (seed, epoch, rank, world_size, worker,
num_workers, options), so the state is tiny: those, plus how many samples each worker has
yielded. Resuming recomputes the order and skips that many: the concatenation of the samples
before and after a resume equals an uninterrupted epoch.

With PyTorch's DataLoader the main process sees batches, not workers. Its in-order mode takes
batch i from worker i mod num_workers while every worker still has batches, then from those that
remain, so `positions_after_batches` recovers each worker's position from the batch count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATE_VERSION = 1


class StateError(ValueError):
    """A state dict that does not belong to this loader (other seed, world or options)."""


@dataclass(frozen=True)
class LoaderState:
    """Where a loader stands: epoch, and samples yielded by each of its workers this epoch."""

    epoch: int
    seed: int
    rank: int
    world_size: int
    fingerprint: str  # of the release and the options that shape the order
    positions: tuple[int, ...] = field(default=(0,))
    version: int = STATE_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["positions"] = list(self.positions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LoaderState":
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise StateError(f"not a loader state (version {STATE_VERSION}): {data!r}")
        try:
            return cls(
                epoch=int(data["epoch"]), seed=int(data["seed"]), rank=int(data["rank"]),
                world_size=int(data["world_size"]), fingerprint=str(data["fingerprint"]),
                positions=tuple(int(p) for p in data["positions"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"bad loader state: {exc}") from None

    def check(self, seed: int, rank: int, world_size: int, fingerprint: str) -> None:
        """Refuse a state saved by a loader that would order samples differently."""
        mine = (self.seed, self.rank, self.world_size, self.fingerprint)
        if mine != (seed, rank, world_size, fingerprint):
            raise StateError(
                f"state was saved for seed/rank/world/options {mine[:3]} {mine[3][:12]}, "
                f"this loader has {(seed, rank, world_size)} {fingerprint[:12]}"
            )


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
