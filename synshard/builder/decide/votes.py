"""Crowd votes in a build: consensus once on the driver, then confidences joined per sample."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synshard.config import BuildConfig


@dataclass(frozen=True)
class BuildVotes:
    posteriors: pa.Table | None = None  # image, synset, posterior
    summary: dict[str, Any] = field(default_factory=dict)  # worker quality, for build.json


def build_votes(cfg: BuildConfig) -> BuildVotes:
    if cfg.votes is None:
        return BuildVotes()
    from synshard.cli.synsets import read_votes
    from synshard.synsets.consensus import consensus

    result = consensus(read_votes(cfg.votes), method=cfg.vote_method)
    workers = result.workers
    summary = {
        "method": cfg.vote_method, "votes_rejected": result.rejected.num_rows,
        "images": result.posteriors.num_rows, "workers": workers.num_rows,
        "spammers": int(pc.sum(workers["spammer"]).as_py() or 0),
        "mean_sensitivity": _mean(workers["sensitivity"]),
        "mean_specificity": _mean(workers["specificity"]),
        "iterations": result.iterations, "converged": result.converged,
    }
    return BuildVotes(result.posteriors.select(["image", "synset", "posterior"]), summary)


def _mean(column: pa.ChunkedArray) -> float | None:
    value = pc.mean(column).as_py()
    return None if value is None else round(float(value), 4)


def confidence_column(meta: pa.Table, posteriors: pa.Table) -> pa.Array:
    """Each sample's label posterior, matching votes by key first, then by source path or URL."""
    from synshard.synsets.consensus import confidence_batch

    images = posteriors.set_column(0, "image", posteriors["image"].cast(pa.string()))
    by_key = confidence_batch(meta["key"], meta["synset"], images)
    by_source = confidence_batch(meta["source"], meta["synset"], images)
    merged = pc.coalesce(by_key, by_source).to_numpy(zero_copy_only=False)
    return pa.array(np.asarray(merged, dtype=object).tolist(), pa.float32())
