"""Crowd votes in a build: consensus once on the driver, then confidences joined per sample."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from synshard.config import BuildConfig
from synshard.errors import SynshardError
from synshard.shards.pyfiles import read_parquet
from synshard.shards.staging import SOURCE_PARTS, derive_keys, derive_sources

VOTE_KEYS = ["image", "synset", "worker"]


@dataclass(frozen=True)
class BuildVotes:
    posteriors: pa.Table | None = None  # image, synset, posterior, yes, no
    summary: dict[str, Any] = field(default_factory=dict)  # worker quality, for build.json


def build_votes(cfg: BuildConfig) -> BuildVotes:
    if cfg.votes is None:
        return BuildVotes()
    from synshard.synsets.consensus import consensus

    result = consensus(_sources_spelled_once(read_votes(cfg.votes)), method=cfg.vote_method)
    workers = result.workers
    summary = {
        "method": cfg.vote_method, "votes_rejected": result.rejected.num_rows,
        "images": result.posteriors.num_rows, "workers": workers.num_rows,
        "spammers": int(pc.sum(workers["spammer"]).as_py() or 0),
        "mean_sensitivity": _mean(workers["sensitivity"]),
        "mean_specificity": _mean(workers["specificity"]),
        "iterations": result.iterations, "converged": result.converged,
    }
    return BuildVotes(result.posteriors.select(["image", "synset", "posterior", "yes", "no"]),
                      summary)


def read_votes(uri: str) -> pa.Table:
    """A votes table from Parquet or CSV; the key columns come dictionary-encoded (faster EM)."""
    import fsspec

    try:
        with fsspec.open(uri, "rb") as f:
            if uri.endswith(".csv") or uri.endswith(".csv.gz"):
                types = {k: pa.dictionary(pa.int32(), pa.string()) for k in VOTE_KEYS}
                opts = pacsv.ConvertOptions(column_types={**types, "vote": pa.string()})
                return pacsv.read_csv(pa.BufferReader(f.read()), convert_options=opts,
                                      read_options=pacsv.ReadOptions(use_threads=True))
            schema_names = pq.read_schema(f).names
            f.seek(0)
            keys = [k for k in VOTE_KEYS if k in schema_names]
            return read_parquet(f, read_dictionary=keys)
    except FileNotFoundError as exc:
        raise SynshardError(f"no votes table at {uri}") from exc
    except (pa.ArrowInvalid, OSError) as exc:
        raise SynshardError(f"unreadable votes table {uri}: {exc}") from exc


def with_unmatched(votes: BuildVotes, meta: pa.Table) -> BuildVotes:
    """Count the votes on images that are none of this build's inputs (by key or source), for
    the summary and build.json: "N votes for images not in this build"."""
    if votes.posteriors is None:
        return votes
    images = votes.posteriors["image"].cast(pa.string())
    keys = meta["key"] if "key" in meta.column_names else \
        derive_keys(meta["synset"], meta["sha256"])  # as gathered (shards/staging.py)
    sources = meta["source"] if "source" in meta.column_names else \
        derive_sources(*(meta[c] for c in SOURCE_PARTS))  # as gathered
    ours = pa.concat_arrays([keys.combine_chunks().cast(pa.string()),
                             sources.combine_chunks().cast(pa.string())])
    missing = votes.posteriors.filter(pc.invert(pc.is_in(images, value_set=ours)))
    n_votes = int(pc.sum(pc.add(missing["yes"], missing["no"])).as_py() or 0)
    n_images = len(set(missing["image"].cast(pa.string()).to_pylist()))
    summary = {**votes.summary, "votes_not_in_build": n_votes, "images_not_in_build": n_images}
    return BuildVotes(votes.posteriors, summary)


def _sources_spelled_once(votes: pa.Table) -> pa.Table:
    """Votes keyed by path, spelled as sources are recorded (absolute; `./a/b.jpg` and
    `/here/a/b.jpg` are one image); keys (no `/`) and URLs stay as they are."""
    from synshard.builder.inputs import absolute_uri

    if "image" not in votes.column_names:
        return votes  # the consensus reports the missing column
    images = votes["image"].cast(pa.string())
    distinct = pc.unique(images)
    spelled = pa.array([v if v is None or ("/" not in v and "::" not in v) else absolute_uri(v)
                        for v in distinct.to_pylist()], pa.string())
    column = pc.take(spelled, pc.index_in(images, value_set=distinct)).dictionary_encode()
    return votes.set_column(votes.column_names.index("image"), "image", column)


def _mean(column: pa.ChunkedArray) -> float | None:
    value = pc.mean(column).as_py()
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def confidence_column(meta: pa.Table, posteriors: pa.Table) -> pa.Array:
    """Each sample's label posterior, matching votes by key first, then by source path or URL."""
    from synshard.synsets.consensus import confidence_batch

    images = posteriors.set_column(0, "image", posteriors["image"].cast(pa.string()))
    by_key = confidence_batch(meta["key"], meta["synset"], images)
    by_source = confidence_batch(meta["source"], meta["synset"], images)
    # null where nobody voted (never NaN: a record's JSON is strict)
    return pc.cast(pc.coalesce(by_key, by_source), pa.float32())
