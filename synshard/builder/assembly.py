"""Assembly: each synset's shards, written from its staged records (and its base samples).

`synset_jobs` plans one job per synset of the release (pure); `run_job` does one job's I/O
(it runs as a Ray task): either copy the base release's shards of that synset as they are, or
merge the base's records (bytes untouched, labels updated) with the newly staged ones, sort by
key and write the shards of each split. A finished job is journalled, so a resumed build skips it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synshard.builder.decide.steps import Decisions
from synshard.builder.staging import Staging
from synshard.shards.atomic import copy_file, put_file
from synshard.shards.layout import ShardEntry, join
from synshard.shards.parquet import read_parquet_shard, write_parquet_shards
from synshard.shards.release import release_fs
from synshard.shards.webdataset import write_webdataset_shards
from synshard.transforms.schema import RECORD_SCHEMA

WRITERS = {"webdataset": write_webdataset_shards, "parquet": write_parquet_shards}


@dataclass(frozen=True)
class SynsetJob:
    synset: str
    staged_paths: tuple[str, ...]  # staging files holding its new records
    keep: pa.Table  # new records to write: JOB_COLUMNS (staged file and row, the decisions)
    base_shards: tuple[ShardEntry, ...] = ()  # the base's entries of this synset (all formats)
    base_keep: pa.Table | None = None  # base samples to carry: key, label
    reuse: bool = False  # copy base_shards as they are


def synset_jobs(decisions: Decisions, base_entries: list[ShardEntry],
                reusable: set[str]) -> list[SynsetJob]:
    kept, base = decisions.kept, decisions.base_kept
    by_synset = _rows_by_synset(kept)
    synsets = set(by_synset)
    synsets |= set(base["synset"].to_pylist()) if base is not None else set()
    locator = kept.select(list(JOB_COLUMNS))
    jobs = []
    for synset in sorted(synsets):
        rows = _own_dictionary(locator.take(by_synset.get(synset, pa.array([], pa.int64()))))
        shards = tuple(e for e in base_entries if e.synset == synset)
        base_keep = None
        if base is not None:
            base_keep = base.filter(pc.equal(base["synset"], synset)).select(["key", "label"])
        paths = pc.unique(pc.cast(rows["staged_path"], pa.string())).to_pylist()
        jobs.append(SynsetJob(synset, tuple(sorted(paths)), rows, shards, base_keep,
                              synset in reusable))
    return jobs


# What an assembly task is told of each new record: where it is staged, and the decisions.
JOB_COLUMNS = ("staged_path", "staged_row", "split", "label", "confidence")


def _own_dictionary(rows: pa.Table) -> pa.Table:
    """`rows` with `staged_path` re-encoded against a dictionary of its own paths only.

    A slice of a dictionary column keeps the whole dictionary (every staged file of the build),
    and pickling it ships all of it: with one job per synset, each job carried every staged
    path (~200 KB at 50,000 images), past Ray's inline limit, so the driver put 1,000 copies
    into the object store (198 MiB of shared memory in its RSS at 50,000 images)."""
    at = rows.schema.get_field_index("staged_path")
    paths = pc.dictionary_encode(pc.cast(rows["staged_path"], pa.string()))
    return rows.set_column(at, "staged_path", paths)


def _rows_by_synset(kept: pa.Table) -> dict[str, pa.Array]:
    """Row indices of `kept` per synset, in row order (one sort, not a scan per synset)."""
    if not kept.num_rows:
        return {}
    codes = pc.dictionary_encode(kept["synset"]).combine_chunks()
    ids = codes.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(ids, kind="stable")
    bounds = np.flatnonzero(np.diff(ids[order])) + 1
    groups = np.split(order, bounds)
    names = codes.dictionary.to_pylist()
    return {names[ids[g[0]]]: pa.array(g, pa.int64()) for g in groups}


def job_batches(jobs: list[SynsetJob], parts: int) -> list[list[SynsetJob]]:
    """The jobs, largest first, cut into runs of about 1/`parts` of all their rows each (one Ray
    task per run: a thousand small synsets are a few tasks, not a thousand; a large synset is a
    run of its own). The last runs are the smallest, so every CPU stays busy to the end."""
    jobs = sorted(jobs, key=lambda j: (-_rows(j), j.synset))
    target = max(1, -(-sum(_rows(j) for j in jobs) // max(parts, 1)))
    batches: list[list[SynsetJob]] = []
    size = target
    for job in jobs:
        if size >= target:
            batches.append([])
            size = 0
        batches[-1].append(job)
        size += _rows(job)
    return batches


def _rows(job: SynsetJob) -> int:
    """A job's weight: the samples it writes (a reused synset copies files: weight 1)."""
    carried = job.base_keep.num_rows if job.base_keep is not None else 0
    return 1 if job.reuse else max(1, job.keep.num_rows + carried)


def run_jobs(jobs: list[SynsetJob], *args: Any) -> list[list]:
    """`run_job` for each job (one Ray task): the entries of each, in job order."""
    return [run_job(job, *args) for job in jobs]


def run_job(job: SynsetJob, staging: Staging, storage_options: dict, base_uri: str | None,
            formats: tuple[str, ...], shard_bytes: int) -> list:
    fs, root = staging.fs, staging.root
    if job.reuse:
        assert base_uri is not None  # only base synsets are reused
        entries = _copy_base(job, fs, root, base_uri, storage_options, formats)
    else:
        try:
            records = staging.read_staged(job.staged_paths, job.keep)
        except FileNotFoundError:
            done = staging.synset_entries(job.synset)
            if done is None:
                raise
            return done  # an earlier try of this task wrote and journalled it, then freed its files
        _check_found(job.synset, "staged", records.num_rows, job.keep.num_rows)
        if job.base_keep is not None and job.base_keep.num_rows and base_uri is not None:
            base = _base_records(job, base_uri, storage_options)
            _check_found(job.synset, "base", base.num_rows, job.base_keep.num_rows)
            records = _merge(records, base)
        entries = []
        for split in sorted(set(records["split"].to_pylist())):
            group = records.filter(pc.equal(records["split"], split))
            for fmt in formats:
                entries.extend(WRITERS[fmt](fs, root, group, shard_bytes))
    staging.write_synset_entries(job.synset, entries)
    # journalled: a resumed build skips this synset, so its staged records are not read again;
    # removed here, in the task, rather than by the driver's final clear of the whole staging area
    staging.remove_staged(job.staged_paths)
    return entries


def _check_found(synset: str, where: str, found: int, decided: int) -> None:
    """Every sample the decisions kept must reach a shard: never drop one silently."""
    if found != decided:
        raise RuntimeError(f"{synset}: {decided} {where} samples were kept but {found} found "
                           "(staging or base release changed during the build?)")


def _copy_base(job: SynsetJob, fs: Any, root: str, base_uri: str, storage_options: dict,
               formats: tuple[str, ...]) -> list[ShardEntry]:
    base_fs, base_root = release_fs(base_uri, storage_options)
    entries = [e for e in job.base_shards if e.format in formats]
    for entry in entries:
        for rel in filter(None, (entry.path, entry.index)):
            src, dst = join(base_root, rel), join(root, rel)
            fs.makedirs(dst.rsplit("/", 1)[0], exist_ok=True)
            if base_fs is fs or type(base_fs) is type(fs):
                copy_file(fs, src, dst)  # object stores copy server-side
            else:
                put_file(fs, dst, base_fs.cat_file(src))
    return entries


def _base_records(job: SynsetJob, base_uri: str, storage_options: dict) -> pa.Table:
    """The base's records of this synset that stay, with their new labels (bytes untouched)."""
    base_fs, base_root = release_fs(base_uri, storage_options)
    assert job.base_keep is not None
    labels = dict(zip(job.base_keep["key"].to_pylist(), job.base_keep["label"].to_pylist()))
    parts = []
    for entry in job.base_shards:
        if entry.format != "parquet":
            continue
        records = read_parquet_shard(base_fs, join(base_root, entry.path))
        records = records.filter(pc.is_in(records["key"], value_set=job.base_keep["key"]))
        new_labels = pa.array([labels[k] for k in records["key"].to_pylist()], pa.int32())
        parts.append(records.set_column(records.schema.get_field_index("label"), "label",
                                        new_labels))
    return pa.concat_tables(parts) if parts else RECORD_SCHEMA.empty_table()


def _merge(new: pa.Table, base: pa.Table) -> pa.Table:
    merged = pa.concat_tables([base.cast(RECORD_SCHEMA), new.cast(RECORD_SCHEMA)])
    return merged.sort_by([("key", "ascending"), ("source", "ascending")])
