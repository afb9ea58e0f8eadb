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

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from synshard.builder.assembly import run_job, synset_jobs
from synshard.config import BuildConfig
from synshard.builder.decide.steps import Decisions, decide
from synshard.builder.decide.incremental import BaseRelease, reusable_synsets
from synshard.builder.inputs import Inputs, pinned_classes, prepare
from synshard.release.lock import BuildLock, build_lock
from synshard.builder.raysession import ray, ray_session, remote
from synshard.builder.commit import check_existing, commit_release
from synshard.builder.staging import Staging
from synshard.shards.release import release_fs
from synshard.builder.stages import read_stats, run_task
from synshard.builder.decide.votes import build_votes, with_unmatched


@dataclass
class BuildResult:
    uri: str
    noop: bool
    accounting: dict[str, int]
    counts: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)


def run_build(cfg: BuildConfig, log: Callable[[str], None] = print) -> BuildResult:
    t0 = time.perf_counter()
    cfg.release_name(release_fs(cfg.out, dict(cfg.storage_options))[1])  # before any work
    inputs = prepare(cfg)
    staging = Staging.for_build(cfg.out, dict(cfg.storage_options), inputs.fingerprint,
                                cfg.files_per_task)
    with build_lock(cfg.out, dict(cfg.storage_options), fingerprint=inputs.fingerprint) as lock:
        existing = check_existing(cfg, inputs.fingerprint)
        if existing is not None:
            log(f"release at {cfg.out} is already this build: nothing to do")
            return BuildResult(cfg.out, True, dict(existing.accounting), dict(existing.counts))
        cfg.synset_filter().validate()
        result = _build(cfg, inputs, staging, {"prepare": time.perf_counter() - t0}, lock, log)
        staging.clear()
    staging.remove_empty_parent()
    return result


def _build(cfg: BuildConfig, inputs: Inputs, staging: Staging, timings: dict[str, float],
           lock: BuildLock, log: Callable[[str], None]) -> BuildResult:
    classes = pinned_classes(cfg)
    votes = build_votes(cfg)
    with ray_session(cfg) as cluster:
        t = time.perf_counter()
        meta, by_node = _stage(inputs.tasks, cfg, staging, log)
        cluster = {**cluster, "inputs_read_by_node": by_node}
        votes = with_unmatched(votes, meta)
        timings["read+transform+stage"] = time.perf_counter() - t
        t = time.perf_counter()
        decisions = decide(meta, cfg, classes=classes, posteriors=votes.posteriors,
                           base=inputs.base, takedown=inputs.takedown, external=inputs.external)
        n_inputs = meta.num_rows
        del meta  # the gathered table: what assembly and commit read is in the decisions
        timings["decide"] = time.perf_counter() - t
        t = time.perf_counter()
        entries, assembly = _assemble(decisions, cfg, staging, inputs.base)
        timings["assemble"] = time.perf_counter() - t
    t = time.perf_counter()
    stats = {"timings_s": timings, "cluster": cluster, "tasks": len(inputs.tasks),
             "images_per_s": n_inputs / max(timings["read+transform+stage"], 1e-9),
             **read_stats(staging), "votes": votes.summary, "assembly": assembly}
    lock.ensure_held()
    manifest = commit_release(staging, cfg, decisions, entries, inputs.fingerprint, stats)
    timings["commit"] = time.perf_counter() - t
    return BuildResult(cfg.out, False, dict(manifest.accounting), dict(manifest.counts), stats)


def _stage(tasks: list, cfg: BuildConfig, staging: Staging, log: Callable[[str], None]
           ) -> tuple[pa.Table, dict[str, int]]:
    """Run every unfinished read task on Ray; then gather all tasks' metadata from the journal.

    Also returns how many inputs each Ray node's read tasks settled in this run, by node id."""
    done = staging.finished_tasks()
    todo = [i for i in range(len(tasks)) if i not in done]
    if done:
        log(f"resuming: {len(done)} of {len(tasks)} read tasks already done")

    def run(batch: dict) -> Any:
        node = ray.get_runtime_context().get_node_id()
        for i in batch["task"].tolist():
            for rows in run_task(i, tasks[i], cfg, staging):
                yield {"rows": np.array([rows], dtype=np.int64), "node": np.array([node])}

    by_node: dict[str, int] = {}
    if todo:
        ds = ray.data.from_items([{"task": i} for i in todo], override_num_blocks=len(todo))
        ds = ds.map_batches(run, batch_size=1, batch_format="numpy",  # type: ignore[assignment]
                            num_cpus=1)
        with _progress(cfg) as bar:
            for block in ds.iter_batches(batch_size=None, batch_format="numpy"):
                bar(int(block["rows"].sum()))
                for node, rows in zip(block["node"].tolist(), block["rows"].tolist()):
                    by_node[node] = by_node.get(node, 0) + rows
    return staging.gather_metas(len(tasks)), by_node


def _assemble(decisions: Decisions, cfg: BuildConfig, staging: Staging,
              base: BaseRelease | None) -> tuple[list, dict[str, int]]:
    """One Ray task per synset (synshard/builder/assembly.py); journalled synsets are not redone."""
    base_entries = list(base.release.manifest.shards) if base else []
    reusable = set()
    if base is not None:
        reusable = reusable_synsets(base, decisions.base_kept,
                                    set(decisions.kept["synset"].to_pylist()), cfg.formats)
    jobs = synset_jobs(decisions, base_entries, reusable)
    job = remote(run_job)
    entries, futures = [], []
    for j in jobs:
        journalled = staging.read_synset_entries(j.synset)
        if journalled is not None:
            entries.extend(journalled)
            continue
        futures.append(job.remote(j, staging, dict(cfg.storage_options),
                                  base.uri if base else None, cfg.formats, cfg.shard_bytes))
    for result in ray.get(futures):
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
