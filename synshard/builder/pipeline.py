"""The build on Ray: the pure stages wired together, streaming, with the manifest written last.

    plan read tasks ─► per task on Ray: read ─► filter ─► transform ─► stage (journalled)
      ─► decide on the driver (splits, dedup, caps, labels; metadata only)
      ─► assemble shards per synset (Ray tasks, journalled) ─► rejects/duplicates tables,
         build.json ─► manifest.json (the commit point)

Every stage is a plain function from ingest/, transforms/, shards/, stages.py or decisions.py; this
module only schedules them. The driver holds metadata (well under 100 bytes an image) and shard
lists, never images. An image's bytes are read by its read task, which also transforms them and
writes the result once to staging (the original bytes never enter Ray's object store); the
assembly task of its synset reads them back once and writes them once into their shard(s). A
killed build resumes from the journal (synshard/builder/staging.py): same command, same fingerprint.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import pyarrow as pa

from synshard.builder.assembly import run_job, synset_jobs
from synshard.config import BuildConfig
from synshard.builder.decide.steps import Decisions, decide
from synshard.builder.decide.incremental import BaseRelease, reusable_synsets
from synshard.builder.inputs import Inputs, pinned_classes, prepare
from synshard.release.lock import BuildLock, build_lock
from synshard.builder.commit import check_existing, commit_release
from synshard.builder.staging import Staging
from synshard.shards.layout import MANIFEST_NAME, join
from synshard.shards.release import release_fs
from synshard.shards.staging import META_SCHEMA
from synshard.builder.stages import read_stats, run_task
from synshard.builder.decide.votes import build_votes, with_unmatched


T = TypeVar("T")


@dataclass
class BuildResult:
    uri: str
    noop: bool
    accounting: dict[str, int]
    counts: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)


# Planning runs this long on its own before Ray is started beside it: a build whose plan is quick
# and has one read task runs in this process instead (Ray's start-up would be most of its time).
PLAN_ALONE_S = 0.5


def run_build(cfg: BuildConfig, log: Callable[[str], None] = print) -> BuildResult:
    cfg.release_name(release_fs(cfg.out, dict(cfg.storage_options))[1])  # before any work
    cfg.synset_filter().validate()
    with ThreadPoolExecutor(1, thread_name_prefix="synshard-plan") as pool, \
            contextlib.ExitStack() as stack:
        planning = pool.submit(_timed, prepare, cfg)
        # A committed release may make this a no-op: then plan fully before any Ray starts.
        wait([planning], timeout=None if _committed(cfg) else PLAN_ALONE_S)
        cluster = None
        if not planning.done():  # many inputs: Ray starts while the planning goes on
            cluster = stack.enter_context(_ray().ray_session(cfg))
        inputs, seconds = planning.result()
        timings = {"prepare": seconds}
        staging = Staging.for_build(cfg.out, dict(cfg.storage_options), inputs.fingerprint,
                                    cfg.files_per_task)
        lock = stack.enter_context(build_lock(cfg.out, dict(cfg.storage_options),
                                              fingerprint=inputs.fingerprint))
        existing = check_existing(cfg, inputs.fingerprint)
        if existing is not None:
            log(f"release at {cfg.out} is already this build: nothing to do")
            return BuildResult(cfg.out, True, dict(existing.accounting), dict(existing.counts))
        if cluster is None and not in_process(cfg, inputs):
            t = time.perf_counter()
            cluster = stack.enter_context(_ray().ray_session(cfg))
            timings["ray start"] = time.perf_counter() - t
        result = _build(cfg, inputs, staging, timings, lock, log, cluster)
        staging.clear()
    staging.remove_empty_parent()
    return result


def in_process(cfg: BuildConfig, inputs: Inputs) -> bool:
    """One read task and no Ray to join or reuse: the build runs in this process, no Ray.

    One task is one core's work whatever the cluster, so Ray would add only its start-up (seconds;
    the demo's whole work is a fraction of one). The same functions run, so the release is the
    same byte for byte."""
    ray_module = sys.modules.get("ray")
    return (len(inputs.tasks) <= 1 and not cfg.ray_address and not os.environ.get("RAY_ADDRESS")
            and not (ray_module is not None and ray_module.is_initialized()))


def _ray() -> Any:
    """synshard.builder.raysession, imported when a build uses Ray (its import alone takes ~1 s)."""
    from synshard.builder import raysession

    return raysession


def _timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    t = time.perf_counter()
    return fn(*args), time.perf_counter() - t


def _committed(cfg: BuildConfig) -> bool:
    """A manifest is at the output: the build may be a no-op (check_existing decides)."""
    fs, root = release_fs(cfg.out, dict(cfg.storage_options))
    return bool(fs.exists(join(root, MANIFEST_NAME)))


def _build(cfg: BuildConfig, inputs: Inputs, staging: Staging, timings: dict[str, float],
           lock: BuildLock, log: Callable[[str], None],
           cluster: dict[str, Any] | None) -> BuildResult:
    """The build on the Ray session `cluster` describes, or in this process when it is None."""
    classes = pinned_classes(cfg)
    votes = build_votes(cfg)
    t = time.perf_counter()
    if cluster is None:
        meta, by_node = _stage_here(inputs.tasks, cfg, staging)
        cluster = {"address": "in-process", "cpus": 1, "nodes": 1}
    else:
        meta, by_node = _stage(inputs.tasks, cfg, staging, log)
    cluster = {**cluster, "inputs_read_by_node": by_node}
    votes = with_unmatched(votes, meta)
    timings["read+transform+stage"] = time.perf_counter() - t
    t = time.perf_counter()
    decisions = decide(meta, cfg, classes=classes, posteriors=votes.posteriors,
                       base=inputs.base, takedown=inputs.takedown, external=inputs.external)
    timings["decide"] = time.perf_counter() - t
    t = time.perf_counter()
    entries, assembly = _assemble(decisions, cfg, staging, inputs.base,
                                  here=cluster["address"] == "in-process")
    timings["assemble"] = time.perf_counter() - t
    t = time.perf_counter()
    stats = {"timings_s": timings, "cluster": cluster, "tasks": len(inputs.tasks),
             "images_per_s": meta.num_rows / max(timings["read+transform+stage"], 1e-9),
             **read_stats(staging), "votes": votes.summary, "assembly": assembly}
    lock.ensure_held()
    manifest = commit_release(staging, cfg, decisions, entries, inputs.fingerprint, stats)
    timings["commit"] = time.perf_counter() - t
    return BuildResult(cfg.out, False, dict(manifest.accounting), dict(manifest.counts), stats)


def _stage(tasks: list, cfg: BuildConfig, staging: Staging, log: Callable[[str], None]
           ) -> tuple[pa.Table, dict[str, int]]:
    """Run every unfinished read task on Ray; then gather all tasks' metadata from the journal.

    Also returns how many inputs each Ray node's read tasks settled in this run, by node id.
    Plain Ray tasks, one per read task and a CPU each, at most two per CPU in flight (so a
    worker never waits for the driver); each returns two numbers, never rows (the metadata goes
    through the journal)."""
    done = staging.finished_tasks()
    todo = [i for i in range(len(tasks)) if i not in done]
    if done:
        log(f"resuming: {len(done)} of {len(tasks)} read tasks already done")
    by_node: dict[str, int] = {}
    ray = _ray().ray
    read = _ray().remote(_read_task, num_cpus=1, scheduling_strategy="SPREAD")
    cfg_ref, staging_ref = ray.put(cfg), ray.put(staging)
    limit = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    queue, pending = list(reversed(todo)), []
    with _progress(cfg) as bar:
        while queue or pending:
            while queue and len(pending) < limit:
                i = queue.pop()
                pending.append(read.remote(i, tasks[i], cfg_ref, staging_ref))
            ready, pending = ray.wait(pending, num_returns=1)
            for rows, node in ray.get(ready):
                bar(rows)
                by_node[node] = by_node.get(node, 0) + rows
    return _metadata(staging, len(tasks)), by_node


def _stage_here(tasks: list, cfg: BuildConfig, staging: Staging) -> tuple[pa.Table, dict[str, int]]:
    """`_stage` in this process (the build of one read task: see `in_process`)."""
    done = staging.finished_tasks()
    rows = sum(sum(run_task(i, task, cfg, staging)) for i, task in enumerate(tasks)
               if i not in done)
    return _metadata(staging, len(tasks)), {"driver": rows}


def _metadata(staging: Staging, count: int) -> pa.Table:
    """Every read task's metadata, from the journal."""
    metas = staging.read_task_metas(count)
    return pa.concat_tables(metas) if metas else META_SCHEMA.empty_table()


def _read_task(index: int, task: Any, cfg: BuildConfig, staging: Staging) -> tuple[int, str]:
    """Read task `index` on a Ray worker: (inputs it settled, the node it ran on)."""
    rows = sum(run_task(index, task, cfg, staging))
    return rows, _ray().ray.get_runtime_context().get_node_id()


def _assemble(decisions: Decisions, cfg: BuildConfig, staging: Staging,
              base: BaseRelease | None, here: bool = False) -> tuple[list, dict[str, int]]:
    """One Ray task per synset (synshard/builder/assembly.py), or all in this process (`here`);
    journalled synsets are not redone. The largest synsets go first, so that the last job to
    start is a small one and every CPU stays busy to the end."""
    base_entries = list(base.release.manifest.shards) if base else []
    reusable = set()
    if base is not None:
        reusable = reusable_synsets(base, decisions.base_kept,
                                    set(decisions.kept["synset"].to_pylist()), cfg.formats)
    jobs = synset_jobs(decisions, base_entries, reusable)
    entries, todo = [], []
    for j in jobs:
        journalled = staging.read_synset_entries(j.synset)
        if journalled is not None:
            entries.extend(journalled)
        else:
            todo.append(j)
    todo.sort(key=lambda j: (-j.keep.num_rows, j.synset))
    args = (staging, dict(cfg.storage_options), base.uri if base else None, cfg.formats,
            cfg.shard_bytes)
    if here:
        results = [run_job(j, *args) for j in todo]
    else:
        raysession = _ray()
        job = raysession.remote(run_job)
        results = raysession.ray.get([job.remote(j, *args) for j in todo])
    for result in results:
        entries.extend(result)
    stats = {"synsets_reused": sum(j.reuse for j in jobs),
             "synsets_written": sum(not j.reuse for j in jobs)}
    return sorted(entries, key=lambda e: e.path), stats


class _progress:
    """A progress line on stderr (tqdm) when enabled; counts inputs settled by the transform."""

    def __init__(self, cfg: BuildConfig) -> None:
        self.enabled = cfg.progress

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from tqdm import tqdm
        self.bar = tqdm(desc="images", unit="img", smoothing=0.1, mininterval=0.5)
        return self.bar.update

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.bar.close()
