"""The per-batch work of a build's Ray tasks, as plain functions (Ray calls them, tests too).

- `run_task`: one read task, start to finish: read -> synset filter -> transform -> stage, then
  its metadata written to the journal (the task's commit point). Reading and transforming in the
  same task keeps the original bytes out of Ray's object store (they never leave the worker).
- `read_candidates`: one read task (files, tar slice or URL-list chunk) -> candidate batches,
  boxes attached; fetch statistics are written beside the staging area, never lost.
- `transform_and_stage`: candidates -> synset filter -> transform -> staged records + metadata.
"""
from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synshard.config import BuildConfig
from synshard.ingest.boxes import boxes_for_sources
from synshard.ingest.fetch_options import FetchOptions, FetchStats
from synshard.ingest.sources import read_task
from synshard.ingest.urltasks import UrlTask
from synshard.builder.staging import Staging
from synshard.shards.staging import META_SCHEMA
from synshard.transforms.process import transform_batch
from synshard.transforms.schema import CANDIDATE_SCHEMA

if TYPE_CHECKING:
    from synshard.ingest.http import Fetcher


@lru_cache(maxsize=4)
def _fetcher(opts: FetchOptions) -> Fetcher:
    """One fetcher per worker process: its robots.txt cache and host rates outlive a task.
    (Imported here: aiohttp and the fetcher cost a worker ~0.5 CPU-s that folder builds skip.)"""
    from synshard.ingest.http import Fetcher

    return Fetcher(opts)


def run_task(index: int, task: Any, cfg: BuildConfig, staging: Staging,
             idle: Callable[[], None] | None = None) -> Iterator[int]:
    """Run read task `index`; yields rows settled so far (for progress), journals the metadata.

    `idle`, when given, is called while a URL-list task has nothing to transform but slow URLs
    to wait for (the scheduler's way to lend the task's CPU to other work meanwhile)."""
    metas = []
    for candidates in read_candidates(task, cfg, staging, idle, index):
        for start in range(0, candidates.num_rows, cfg.batch_size):
            meta = transform_and_stage(candidates.slice(start, cfg.batch_size), cfg, staging)
            metas.append(meta)
            yield meta.num_rows
    table = pa.concat_tables(metas) if metas else META_SCHEMA.empty_table()
    staging.write_task_meta(index, table.cast(META_SCHEMA))


def read_candidates(task: Any, cfg: BuildConfig, staging: Staging,
                    idle: Callable[[], None] | None = None, index: int | None = None
                    ) -> Iterator[pa.Table]:
    options = dict(cfg.storage_options)
    if isinstance(task, UrlTask):
        # Streamed: the chunk's URLs are fetched on the worker's fetch thread while the batches
        # already fetched are transformed here (no drain between batches). Its slow URLs are
        # deferred to the crawl's retry tasks (journalled before the task's metadata).
        defer = index is not None and not task.retry
        stream = _fetcher(cfg.fetch).stream(task.urls, cfg.batch_size, idle=idle, defer=defer)
        for table in stream:
            if table.num_rows:
                yield table.replace_schema_metadata(None).select(CANDIDATE_SCHEMA.names)
        if defer and index is not None:
            staging.write_deferred(index, stream.deferred)
        staging.write_stats(task.name, {"fetch": json.loads(stream.stats.to_json())}, task.uri)
        return
    problems: Counter = Counter()
    for batch in read_task(task, storage_options=options):
        if cfg.boxes:
            batch = attach_boxes(batch, cfg.boxes, problems)
        yield batch
    if problems:
        staging.write_stats(f"boxes-{task.start:012d}", {"boxes": dict(problems)}, task.uri)


def attach_boxes(batch: pa.Table, boxes_dir: str, problems: Counter) -> pa.Table:
    lookup = boxes_for_sources(boxes_dir, batch["source"].to_pylist(),
                               batch["synset"].to_pylist())
    problems.update(p for p in lookup.problems if p)
    problems["with boxes"] += sum(b is not None for b in lookup.boxes)
    column = pa.array(lookup.boxes, CANDIDATE_SCHEMA.field("bboxes").type)
    return batch.set_column(batch.schema.get_field_index("bboxes"), "bboxes", column)


def transform_and_stage(batch: pa.Table, cfg: BuildConfig, staging: Staging) -> pa.Table:
    """Filter synsets, transform, stage; returns metadata (TRANSFORMED_SCHEMA minus image, ...)."""
    batch, filtered = filter_synsets_batch(batch, cfg)
    out = transform_batch(batch, cfg.transform)
    if filtered.any():
        stage = np.where(filtered, "synsets", out["stage"].to_numpy(zero_copy_only=False))
        out = out.set_column(out.schema.get_field_index("stage"), "stage",
                             pa.array(stage.tolist(), pa.string()))
    return staging.stage(out)


def filter_synsets_batch(batch: pa.Table, cfg: BuildConfig) -> tuple[pa.Table, np.ndarray]:
    """Candidates whose synset is unknown or filtered out get a reason before any decoding."""
    readable = pc.is_null(batch["reason"]).to_numpy(zero_copy_only=False)
    has_synset = pc.is_valid(batch["synset"]).to_numpy(zero_copy_only=False)
    keep, reason = cfg.synset_filter().filter_batch(batch["synset"])
    filtered = readable & has_synset & ~keep.to_numpy(zero_copy_only=False)
    if not filtered.any():
        return batch, filtered
    reasons = np.where(filtered, reason.to_numpy(zero_copy_only=False),
                       batch["reason"].to_numpy(zero_copy_only=False))
    column = pa.array(reasons.tolist(), pa.string())
    return batch.set_column(batch.schema.get_field_index("reason"), "reason", column), filtered


def read_stats(staging: Staging) -> dict[str, Any]:
    """Merge the per-task statistics files (fetch, boxes) written during the read stage."""
    fetch, boxes = FetchStats(), Counter[str]()
    for data in staging.read_stats():
        if "fetch" in data:
            fetch = fetch.merge(FetchStats.from_json(json.dumps(data["fetch"])))
        boxes.update(data.get("boxes", {}))
    return {"fetch": json.loads(fetch.to_json()), "boxes": dict(boxes)}
