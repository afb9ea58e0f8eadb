"""The staging area of one build: its layout, its filesystem (held once), and the journal of
what a killed build has already finished. Stages, assembly and commit are handed a `Staging`.

    <release>/_staging/<sha256(fingerprint/files_per_task)[:16]>/
        <wnid>/<hash>.arrow              staged records (image bytes), written by read tasks,
                                         removed by the synset's assembly task once journalled
        _tasks/task-<NNNNNNNN>.parquet   a finished read task's metadata (the task's commit point)
        _shards/<wnid>.json              a finished synset's shard entries
        _stats/*.json                    fetch and boxes statistics

A read task writes its staged files first and its metadata file last, in one PUT; a task with a
metadata file is done and is never redone. Re-running a killed build (same inputs and options,
so the same fingerprint and staging folder) redoes only tasks and synsets without a record, and
since every file name is derived from content, redone work rewrites identical files.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synshard.shards.layout import ShardEntry, join
from synshard.shards.release import release_fs
from synshard.shards.staging import (DECIDE_COLUMNS, decide_schema, gathered, read_staged,
                                     stage_batch)
from synshard.shards.pyfiles import read_parquet
from synshard.errors import SynshardError
from synshard.builder.decide.memory import bound_heap, release

STAGING_DIR = "_staging"
TASKS_DIR = "_tasks"
SHARDS_DIR = "_shards"
STATS_DIR = "_stats"


# Task files gathered into one chunk at a time. A table read from Parquet holds its columns in
# buffers sized for the reader (~84 KB for a task of 256 rows, ~2x its values) plus per-array
# bookkeeping outside Arrow's pool; kept per task (3,907 tables at 1M images) they were 244 MiB of
# the driver's RSS for 108 MiB of gathered values. Combined a group at a time, each group is one
# tightly sized chunk and its tasks' tables are freed (and their memory reused) before the next.
GATHER_GROUP = 64


def _compact(parts: list[pa.Table]) -> pa.Table:
    """Tasks' gathered tables as one table of one chunk per column (dictionaries unified)."""
    return pa.concat_tables(parts).unify_dictionaries().combine_chunks()


@dataclass(frozen=True)
class Staging:
    """`path` (under the release `root`) on `fs`; picklable, so Ray tasks get it as it is."""

    fs: Any
    root: str  # the release's root, as `fs` names it
    path: str  # this build's staging folder

    @classmethod
    def for_build(cls, out: str, storage_options: dict[str, Any], fingerprint: str,
                  files_per_task: int) -> "Staging":
        """Same inputs, options and task cut -> same folder (what a resumed build finds)."""
        fs, root = release_fs(out, storage_options)
        key = hashlib.sha256(f"{fingerprint}/{files_per_task}".encode()).hexdigest()
        return cls(fs, root, join(root, f"{STAGING_DIR}/{key[:16]}"))

    # --- staged records --------------------------------------------------------------------

    def stage(self, transformed: pa.Table) -> pa.Table:
        """Write a transformed batch's accepted records; returns every row's metadata."""
        return stage_batch(transformed, self.fs, self.path)

    def read_staged(self, paths: tuple[str, ...], keep: pa.Table) -> pa.Table:
        return read_staged(self.fs, paths, keep)

    def remove_staged(self, paths: tuple[str, ...]) -> None:
        """Remove staged files once their synset is journalled (one request on object stores).

        Best effort: a failed removal (an object store's throttling, a file an earlier try of
        the task removed) must not fail a synset whose shards are written and journalled; the
        build's final clear of the staging area removes what is left."""
        if paths:
            try:
                self.fs.rm(list(paths))
            except OSError:
                pass

    # --- the journal -----------------------------------------------------------------------

    def task_path(self, index: int) -> str:
        return join(self.path, f"{TASKS_DIR}/task-{index:08d}.parquet")

    def write_task_meta(self, index: int, meta: pa.Table) -> None:
        buf = io.BytesIO()
        pq.write_table(meta, buf, compression="zstd")
        self.fs.makedirs(join(self.path, TASKS_DIR), exist_ok=True)
        self._put_record(self.task_path(index), buf.getvalue())

    def finished_tasks(self) -> set[int]:
        folder = join(self.path, TASKS_DIR)
        if not self.fs.exists(folder):
            return set()
        names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False)]
        return {int(n[5:13]) for n in names if n.startswith("task-") and n.endswith(".parquet")}

    def gather_metas(self, count: int) -> pa.Table:
        """Tasks 0..count-1's metadata, only the columns the decisions need (DECIDE_COLUMNS).

        In `decide_schema()` form (shards/staging.py `gathered`): `staged_path` and `synset`
        dictionary-encoded with one dictionary each for the whole table (each staged file's
        path once), sha256 as 32 raw bytes."""
        bound_heap()  # (decide/memory.py: freed NumPy and read buffers go back to the system)
        release()  # (what the read stage left free in the pool put aside: the C heap's from now)
        groups = [_compact([self._gathered(i) for i in range(at, min(at + GATHER_GROUP, count))])
                  for at in range(0, count, GATHER_GROUP)]
        if not groups:
            return decide_schema().empty_table()
        table = pa.concat_tables(groups).unify_dictionaries()
        del groups
        release()  # the reads' buffers, back to the OS
        return table

    def _gathered(self, index: int) -> pa.Table:
        with self.fs.open(self.task_path(index), "rb") as f:
            try:
                return gathered(read_parquet(f, columns=list(DECIDE_COLUMNS)))
            except ValueError as exc:  # a journal file this version did not write
                raise SynshardError(f"staging journal {self.task_path(index)}: {exc}; remove "
                                    f"{self.path} to build from the start") from None

    # --- deferred URLs: a URL task's slow URLs, fetched by retry tasks at the end (issue 15) --

    def write_deferred(self, index: int, rows: pa.Table) -> None:
        """URL task `index`'s deferred rows (see `ingest.urltasks.retry_tasks`), written before
        the task's metadata (its commit point); with no rows, a file of an earlier try of the
        task is removed instead."""
        path = join(self.path, f"{TASKS_DIR}/deferred-{index:08d}.parquet")
        if rows.num_rows == 0:
            if self.fs.exists(path):
                self.fs.rm(path)
            return
        buf = io.BytesIO()
        pq.write_table(rows, buf, compression="zstd")
        self.fs.makedirs(join(self.path, TASKS_DIR), exist_ok=True)
        self._put_record(path, buf.getvalue())

    def read_deferred(self, count: int) -> list[tuple[int, pa.Table]]:
        """(task index, its deferred rows) of tasks 0..count-1 that deferred any, in task order
        (one listing of the journal, then only the files there are)."""
        folder = join(self.path, TASKS_DIR)
        if not self.fs.exists(folder):
            return []
        names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False)]
        found = sorted(int(n[9:17]) for n in names
                       if n.startswith("deferred-") and n.endswith(".parquet"))
        out = []
        for i in (i for i in found if i < count):
            with self.fs.open(join(folder, f"deferred-{i:08d}.parquet"), "rb") as f:
                out.append((i, read_parquet(f)))
        return out

    def synset_path(self, synset: str) -> str:
        return join(self.path, f"{SHARDS_DIR}/{synset}.json")

    def write_synset_entries(self, synset: str, entries: list[ShardEntry]) -> None:
        self.fs.makedirs(join(self.path, SHARDS_DIR), exist_ok=True)
        data = json.dumps([e.to_dict() for e in entries], sort_keys=True).encode()
        self._put_record(self.synset_path(synset), data)

    def _put_record(self, path: str, data: bytes) -> None:
        """A journal record appears whole or not at all: an object store's PUT already is; on a
        local or mounted filesystem the bytes go to a temporary name first, then are renamed (a
        kill -9 mid-write must not leave a short file that reads as a finished task)."""
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        if "file" not in protocols and "local" not in protocols:
            self.fs.pipe_file(path, data)
            return
        tmp = f"{path}.tmp-{os.getpid()}"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, path)

    def synset_entries(self, synset: str) -> list[ShardEntry] | None:
        """A journalled synset's shard entries, or None when it is not journalled."""
        try:
            data = self.fs.cat_file(self.synset_path(synset))
        except FileNotFoundError:
            return None
        return [ShardEntry.from_dict(d) for d in json.loads(data)]

    def journalled_synsets(self) -> dict[str, list[ShardEntry]]:
        """Every finished synset's shard entries: one listing of the journal, then one read per
        finished synset only (not an existence check per synset of the build: 1,000 requests
        on an object store for a build that has journalled none)."""
        folder = join(self.path, SHARDS_DIR)
        if not self.fs.exists(folder):
            return {}
        found = {}
        for path in sorted(self.fs.ls(folder, detail=False)):
            name = path.rsplit("/", 1)[-1]
            entries = self.synset_entries(name[:-5]) if name.endswith(".json") else None
            if entries is not None:  # (not a `.json.tmp-<pid>` of a write cut short)
                found[name[:-5]] = entries
        return found

    # --- statistics of the read stage ------------------------------------------------------

    def write_stats(self, name: str, stats: dict[str, Any], uri: str) -> None:
        tag = hashlib.sha256(uri.encode()).hexdigest()[:12]
        self.fs.makedirs(join(self.path, STATS_DIR), exist_ok=True)
        self.fs.pipe_file(join(self.path, f"{STATS_DIR}/{name}-{tag}.json"),
                          json.dumps(stats).encode())

    def read_stats(self) -> list[dict[str, Any]]:
        folder = join(self.path, STATS_DIR)
        if not self.fs.exists(folder):
            return []
        return [json.loads(self.fs.cat_file(p)) for p in sorted(self.fs.ls(folder, detail=False))]

    # --- the end of a build ----------------------------------------------------------------

    def clear(self) -> None:
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)

    def remove_empty_parent(self) -> None:
        """Drop `_staging/` once nothing is left in it (after the build lock is released)."""
        parent = join(self.root, STAGING_DIR)
        try:
            if self.fs.exists(parent) and not self.fs.ls(parent):
                self.fs.rmdir(parent)
        except OSError:
            pass  # another build's staging or lock is there: leave it
