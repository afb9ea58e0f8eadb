"""The build journal under the staging area: what a killed build has already finished.

    <release>/_staging/<build fingerprint[:16]>/
        <wnid>/<hash>.parquet            staged records (image bytes), written by read tasks
        _tasks/task-<NNNNNNNN>.parquet   a finished read task's metadata (the task's commit point)
        _shards/<wnid>.json              a finished synset's shard entries
        _stats/*.json                    fetch and boxes statistics

A read task writes its staged files first and its metadata file last, in one PUT; a task with a
metadata file is done and is never redone. Re-running a killed build (same inputs and options,
so the same fingerprint and staging folder) redoes only tasks and synsets without a record, and
since every file name is derived from content, redone work rewrites identical files.
"""
from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synshard.shards.layout import ShardEntry, join
from synshard.shards.pyfiles import read_parquet

TASKS_DIR = "_tasks"
SHARDS_DIR = "_shards"


def task_path(staging: str, index: int) -> str:
    return join(staging, f"{TASKS_DIR}/task-{index:08d}.parquet")


def write_task_meta(fs: Any, staging: str, index: int, meta: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(meta, buf, compression="zstd")
    fs.makedirs(join(staging, TASKS_DIR), exist_ok=True)
    fs.pipe_file(task_path(staging, index), buf.getvalue())


def finished_tasks(fs: Any, staging: str) -> set[int]:
    folder = join(staging, TASKS_DIR)
    if not fs.exists(folder):
        return set()
    names = [p.rsplit("/", 1)[-1] for p in fs.ls(folder, detail=False)]
    return {int(n[5:13]) for n in names if n.startswith("task-") and n.endswith(".parquet")}


def read_task_metas(fs: Any, staging: str, count: int) -> list[pa.Table]:
    out = []
    for i in range(count):
        with fs.open(task_path(staging, i), "rb") as f:
            out.append(read_parquet(f))
    return out


def synset_path(staging: str, synset: str) -> str:
    return join(staging, f"{SHARDS_DIR}/{synset}.json")


def write_synset_entries(fs: Any, staging: str, synset: str, entries: list[ShardEntry]) -> None:
    fs.makedirs(join(staging, SHARDS_DIR), exist_ok=True)
    data = json.dumps([e.to_dict() for e in entries], sort_keys=True).encode()
    fs.pipe_file(synset_path(staging, synset), data)


def read_synset_entries(fs: Any, staging: str, synset: str) -> list[ShardEntry] | None:
    path = synset_path(staging, synset)
    if not fs.exists(path):
        return None
    return [ShardEntry.from_dict(d) for d in json.loads(fs.cat_file(path))]
