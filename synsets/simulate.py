"""Simulated crowds with known truth, for the consensus tests and benchmark.

`simulate_crowd(CrowdSpec(...), seed) -> (votes: pa.Table, truth: pa.Table)`. The crowd mixes four
kinds of worker, as ImageNet's Mechanical Turk crowd did: reliable workers (right with probability
`accuracy` on both classes), always-yes spammers, random clickers (yes with probability 1/2), and an
adversarial minority (wrong with probability `accuracy`). Every image gets `votes_per_image` votes
from distinct-ish workers drawn uniformly. `truth` has `image`, `synset`, `shows` (bool).

Vectorised numpy throughout, so ten million votes take about a second to make.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class CrowdSpec:
    images: int = 10_000
    synsets: int = 10
    votes_per_image: int = 5
    workers: int = 200
    reliable: float = 0.6  # shares of the workers; the rest are...
    always_yes: float = 0.2
    random: float = 0.1
    adversarial: float = 0.1
    accuracy: float = 0.85  # of a reliable worker (and error rate of an adversarial one)
    positive_rate: float = 0.3  # share of candidate images that really show the synset


def worker_kinds(spec: CrowdSpec) -> np.ndarray:
    """0 reliable, 1 always-yes, 2 random, 3 adversarial, in blocks by share."""
    shares = np.array([spec.reliable, spec.always_yes, spec.random, spec.adversarial])
    counts = np.floor(shares / shares.sum() * spec.workers).astype(int)
    counts[0] += spec.workers - counts.sum()
    return np.repeat(np.arange(4), counts)


def simulate_crowd(spec: CrowdSpec, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """(votes, truth) for a simulated crowd; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    shows = rng.random(spec.images) < spec.positive_rate
    synset = rng.integers(0, spec.synsets, spec.images)
    image = np.repeat(np.arange(spec.images), spec.votes_per_image)
    worker = rng.integers(0, spec.workers, len(image))
    kind = worker_kinds(spec)[worker]
    truth = shows[image]
    right = rng.random(len(image)) < spec.accuracy
    vote = np.select(
        [kind == 0, kind == 1, kind == 2],
        [truth == right, np.ones_like(truth), rng.random(len(image)) < 0.5],
        default=truth != right,
    )
    names = _names("img", spec.images)
    wnids = _names("n0", spec.synsets, width=7)  # wnid-shaped, not real synsets
    votes = pa.table(
        {
            "image": names.take(pa.array(image)),
            "synset": wnids.take(pa.array(synset[image])),
            "worker": _names("w", spec.workers).take(pa.array(worker)),
            "vote": pa.array(vote),
        }
    )
    return votes, pa.table({"image": names, "synset": wnids.take(pa.array(synset)),
                            "shows": pa.array(shows)})


def _names(prefix: str, n: int, width: int = 8) -> pa.Array:
    digits = pa.array(np.arange(n)).cast(pa.string())
    return pa.array([f"{prefix}{d.zfill(width)}" for d in digits.to_pylist()])
