"""The build: the pure stages wired together, streaming, with the manifest written last.

    plan read tasks ─► per task: read ─► filter ─► transform ─► stage (journalled)
      ─► decide on the driver (splits, dedup, caps, labels; metadata only)
      ─► assemble shards per synset (tasks, journalled) ─► rejects/duplicates tables,
         build.json ─► manifest.json (the commit point)

Where the tasks run: on a Ray cluster (`--ray-address`) or an embedded Ray (`--embedded-ray
always`, or where this process cannot fork); on one Linux machine otherwise, in worker processes
forked from this one, with no Ray (`local_build`: synshard/builder/forkreads.py); a build of one
read task in this process. The same functions run on the same tasks every way.

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
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, TypeVar

import pyarrow as pa

from synshard.builder.assembly import job_batches, run_jobs, synset_jobs
from synshard.config import BuildConfig
from synshard.builder.decide.steps import Decisions, decide
from synshard.builder.decide.incremental import BaseRelease, reusable_synsets
from synshard.builder.inputs import Inputs, pinned_classes, prepare
from synshard.release.lock import BuildLock, build_lock
from synshard.builder.commit import check_existing, commit_release
from synshard.builder import forkreads
from synshard.builder.localreads import local_cpus, read_here
from synshard.builder.raystart import BackgroundRay
from synshard.builder.staging import Staging
from synshard.shards.layout import MANIFEST_NAME, join
from synshard.shards.release import release_fs
from synshard.builder.stages import read_stats, run_task
from synshard.ingest.urltasks import retry_tasks
from synshard.builder.decide.votes import build_votes, with_unmatched


T = TypeVar("T")


@dataclass
class BuildResult:
    uri: str
    noop: bool
    accounting: dict[str, int]
    counts: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)


# Planning runs this long on its own before Ray starts beside it: a build whose plan is quick and
# has one read task runs in this process instead (Ray's start-up would be most of its time).
PLAN_ALONE_S = 0.5
# With `embedded_ray="auto"` where this process cannot fork (not Linux, or Ray imported: not
# a local build), a quick plan of at most RAY_NOW_TASKS read tasks does not start Ray at once:
# this process reads them (synshard/builder/localreads.py) and starts Ray only if they turn out
# to be long.
RAY_NOW_TASKS = 32
IN_PROCESS = {"address": "in-process", "cpus": 1, "nodes": 1}
LOCAL = {"address": "local-processes", "nodes": 1}  # a local build's forked workers


def run_build(cfg: BuildConfig, log: Callable[[str], None] = print) -> BuildResult:
    cfg.release_name(release_fs(cfg.out, dict(cfg.storage_options))[1])  # before any work
    cfg.synset_filter().validate()
    # A committed release may make this a no-op: then Ray starts only once there is work. A
    # local build never starts it (`local_build`).
    local = local_build(cfg)
    delay = None if local or _committed(cfg) else PLAN_ALONE_S
    with BackgroundRay(cfg, delay=delay) as background:
        inputs, seconds = _timed(prepare, cfg)
        timings = {"prepare": seconds}
        staging = Staging.for_build(cfg.out, dict(cfg.storage_options), inputs.fingerprint,
                                    cfg.files_per_task)
        with build_lock(cfg.out, dict(cfg.storage_options),
                        fingerprint=inputs.fingerprint) as lock:
            existing = check_existing(cfg, inputs.fingerprint)
            if existing is not None:
                result = BuildResult(cfg.out, True, dict(existing.accounting),
                                     dict(existing.counts))
            else:
                here = (in_process(cfg, inputs) or local) and background.cancel()
                result = _build(cfg, inputs, staging, timings, lock, log,
                                None if here else background)
                staging.clear()
    staging.remove_empty_parent()  # the lock's folder too, after a no-op
    return result


def in_process(cfg: BuildConfig, inputs: Inputs) -> bool:
    """One read task and no Ray to join or reuse: the build runs in this process, no Ray.

    One task is one core's work whatever the cluster, so Ray would add only its start-up (seconds;
    the demo's whole work is a fraction of one). The same functions run, so the release is the
    same byte for byte."""
    ray_module = sys.modules.get("ray")
    # the background thread may be importing Ray right now: a half-imported module has no
    # `is_initialized` yet (and is not initialised)
    initialized = getattr(ray_module, "is_initialized", None)
    return (len(inputs.tasks) <= 1 and not cfg.ray_address and not os.environ.get("RAY_ADDRESS")
            and not (initialized is not None and initialized()))


def local_build(cfg: BuildConfig) -> bool:
    """The build runs on this machine in worker processes forked from this one, with no Ray.

    With no cluster to join (`--ray-address`, RAY_ADDRESS) and `embedded_ray="auto"`, on Linux
    in a process that has not imported Ray. An embedded Ray on one machine adds only its cost:
    ~2 CPU-s to start on 2 cores (its import, `ray.init`, the GCS and raylet, each worker's
    imports), where forked workers inherit the driver's imports and plan and cost nothing to
    start (docs/scale.md, session 18). The same functions run on the same tasks, so the release
    is the same byte for byte."""
    return (cfg.embedded_ray == "auto" and not cfg.ray_address
            and not os.environ.get("RAY_ADDRESS") and forkreads.can_fork())


def _timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    t = time.perf_counter()
    return fn(*args), time.perf_counter() - t


def _committed(cfg: BuildConfig) -> bool:
    """A manifest is at the output: the build may be a no-op (check_existing decides)."""
    fs, root = release_fs(cfg.out, dict(cfg.storage_options))
    return bool(fs.exists(join(root, MANIFEST_NAME)))


def _build(cfg: BuildConfig, inputs: Inputs, staging: Staging, timings: dict[str, float],
           lock: BuildLock, log: Callable[[str], None],
           background: BackgroundRay | None) -> BuildResult:
    """The build on Ray (started in the `background`); or, when it is None, in worker processes
    forked from this one (a local build of more than one read task), else all in this process."""
    classes = pinned_classes(cfg)
    votes = build_votes(cfg)
    workers = forkreads.NONE
    if background is None and len(inputs.tasks) > 1:  # a local build (`local_build`)
        with lock.no_renewal():
            workers = forkreads.fork_readers(min(local_cpus(cfg), len(inputs.tasks)),
                                             inputs.tasks, cfg, staging)
        if not workers:
            log("could not fork worker processes (no memory or processes left?): building "
                "in this process, on one core")
    with contextlib.closing(workers):  # no worker outlives assembly, or a failure before it
        t = time.perf_counter()
        if workers:
            meta, rows = _stage_local(inputs.tasks, cfg, staging, timings, log, workers.read_all)
            by_node = {"local": rows}
            cluster = {**LOCAL, "cpus": len(workers), "tasks_given_back": workers.given_back}
        elif background is None:
            meta, rows = _stage_local(inputs.tasks, cfg, staging, timings, log,
                                      lambda queue, bar, tasks: _run_here(queue, tasks, cfg,
                                                                          staging, bar))
            by_node = {"driver": rows}
            cluster = dict(IN_PROCESS)
        else:
            meta, by_node, cluster = _stage(inputs.tasks, cfg, staging, log, background,
                                            timings, lock)
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
        here = cluster["address"] == IN_PROCESS["address"]
        entries, assembly = _assemble(decisions, cfg, staging, inputs.base, here=here,
                                      workers=workers)
    # the kept samples (57 MiB of Arrow columns at 1M images) are in the shards now, and the
    # commit reads only the side tables and the counts: freed before it writes them
    decisions = replace(decisions, kept=decisions.kept.schema.empty_table(), base_kept=None)
    if background is not None:
        background.release()  # Ray shuts down while the release is committed
    timings["assemble"] = time.perf_counter() - t
    t = time.perf_counter()
    stats = {"timings_s": timings, "cluster": cluster, "tasks": len(inputs.tasks),
             "images_per_s": n_inputs / max(timings["read+transform+stage"], 1e-9),
             **read_stats(staging), "votes": votes.summary, "assembly": assembly}
    lock.ensure_held()
    manifest = commit_release(staging, cfg, decisions, entries, inputs.fingerprint, stats)
    timings["commit"] = time.perf_counter() - t
    return BuildResult(cfg.out, False, dict(manifest.accounting), dict(manifest.counts), stats)


def _stage(tasks: list, cfg: BuildConfig, staging: Staging, log: Callable[[str], None],
           background: BackgroundRay, timings: dict[str, float], lock: BuildLock
           ) -> tuple[pa.Table, dict[str, int], dict[str, Any]]:
    """Run every unfinished read task; then gather all tasks' metadata from the journal.

    Until an embedded Ray is up, read tasks run in readers forked from this process before Ray
    began to start (`forkreads`), or in this process's threads (all of them, with no Ray at
    all, when they are few and quick: `localreads.read_here`); then the
    rest go to Ray as plain tasks (`_Feed`), one per read task and a CPU each, the first ones as
    soon as Ray is up, beside this process's last task; each returns two numbers, never rows
    (the metadata goes through the journal). Also returns how many inputs each Ray node settled in this run (this
    process's share under its own node's id), and the session's description."""
    done = {i for i in staging.finished_tasks() if i < len(tasks)}  # not counting retry tasks
    queue = [i for i in range(len(tasks)) if i not in done]
    if done:
        log(f"resuming: {len(done)} of {len(tasks)} read tasks already done")
    queue.reverse()  # popped from the end: in task order
    by_node: dict[str, int] = {}
    retried: int | None = None  # retry tasks, once the read tasks are done
    # while an embedded Ray starts (seconds), this process reads; joining a cluster is quick,
    # and the cluster's nodes, not the driver, are where its read tasks belong
    embedded = not (cfg.ray_address or os.environ.get("RAY_ADDRESS"))
    held = embedded and _may_wait(cfg, queue) and background.hold()
    readers = forkreads.NONE
    if not held:
        if embedded:  # readers of their own, forked before Ray exists in this process
            count = min(local_cpus(cfg), forkreads.MAX_READERS, len(queue))
            with lock.no_renewal():
                readers = background.before_start(
                    lambda: forkreads.fork_readers(count, tasks, cfg, staging)) or forkreads.NONE
        background.start()
    feed = _Feed(cfg, staging, tasks)
    with _progress(cfg) as bar, contextlib.closing(readers):  # no reader outlives this stage
        if readers:
            here = readers.run(queue, bar, background, feed)
        else:
            here = read_here(queue, tasks, cfg, staging, bar, background, feed) if embedded else 0
        if held and background.cancel():  # every read task done here, Ray never needed
            tasks, retried, queue = _with_retries(tasks, staging)
            t = time.perf_counter()
            here += _run_here(queue, tasks, cfg, staging, bar)
            if retried:
                timings["retry tasks"] = time.perf_counter() - t  # part of the read stage
            cluster = {**IN_PROCESS, "cpus": local_cpus(cfg)}  # (the driver's read threads)
            return _metadata(staging, len(tasks)), {"driver": here}, cluster
        t = time.perf_counter()
        cluster = background.wait()
        timings["waiting for Ray"] = time.perf_counter() - t
        from synshard.builder.raysession import ray

        while True:
            while queue or feed.pending:
                feed.fill(queue)
                for rows, node in feed.next_done():
                    bar(rows)
                    by_node[node] = by_node.get(node, 0) + rows
                readers.check()  # their progress, and a failed task of theirs, now
            here += readers.finish()  # their last tasks; a dead reader's task is back in queue
            if queue:
                continue
            if retried is not None:
                if retried:
                    timings["retry tasks"] = time.perf_counter() - t  # part of the read stage
                break
            tasks, retried, queue = _with_retries(tasks, staging)
            feed.tasks = tasks
            t = time.perf_counter()
    if here:  # this process's share (its threads' or readers'), under its own node
        node = ray.get_runtime_context().get_node_id()
        by_node[node] = by_node.get(node, 0) + here
    cluster = {**cluster, "read_before_ray": {"inputs": here, "forked_readers": len(readers),
                                              "tasks_given_back": readers.given_back}}
    return _metadata(staging, len(tasks)), by_node, cluster


def _may_wait(cfg: BuildConfig, queue: list[int]) -> bool:
    """Ray may start later than planning, only if the read stage turns out long enough."""
    ray_module = sys.modules.get("ray")
    initialized = getattr(ray_module, "is_initialized", None)  # see `in_process`
    return (cfg.embedded_ray == "auto" and len(queue) <= RAY_NOW_TASKS
            and not (initialized is not None and initialized()))


def _run_here(queue: list[int], tasks: list, cfg: BuildConfig, staging: Staging,
              bar: Callable[[int], None]) -> int:
    """Run the read tasks of `queue` (popped from its end) in this process; inputs settled."""
    rows = 0
    for i in reversed(queue):
        for settled in run_task(i, tasks[i], cfg, staging):
            bar(settled)
            rows += settled
    return rows


class _Feed:
    """Read tasks on Ray: at most two per CPU in flight (so a worker never waits for the
    driver), submitted from a queue of task indices (popped from its end)."""

    def __init__(self, cfg: BuildConfig, staging: Staging, tasks: list) -> None:
        self.cfg, self.staging, self.tasks = cfg, staging, tasks
        self.pending: list = []
        self._ray: Any = None

    def _setup(self) -> None:
        from synshard.builder.raysession import ray, read_on_worker, remote

        self._ray = ray
        self._read = remote(read_on_worker, num_cpus=1, scheduling_strategy="SPREAD")
        self._refs = ray.put(self.cfg), ray.put(self.staging)
        self._limit = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))

    def fill(self, queue: list[int]) -> None:
        if self._ray is None:
            self._setup()
        while queue and len(self.pending) < self._limit:
            i = queue.pop()
            self.pending.append(self._read.remote(i, self.tasks[i], *self._refs))

    def next_done(self) -> list[tuple[int, str]]:
        """(inputs settled, node) of the next task to finish."""
        ready, self.pending = self._ray.wait(self.pending, num_returns=1)
        return self._ray.get(ready)


def _with_retries(tasks: list, staging: Staging) -> tuple[list, int, list[int]]:
    """After the read tasks: `tasks` plus the retry tasks of the URLs they deferred (slow URLs,
    see `ingest.urltasks.retry_tasks`), how many, and the queue of those not finished yet."""
    retries = retry_tasks(tasks, staging.read_deferred(len(tasks)))
    done = staging.finished_tasks()
    n = len(tasks)
    queue = [i for i in range(n, n + len(retries)) if i not in done]
    queue.reverse()
    return tasks + retries, len(retries), queue


def _stage_local(tasks: list, cfg: BuildConfig, staging: Staging, timings: dict[str, float],
                 log: Callable[[str], None], run: Callable[[list[int], Any, list], int]
                 ) -> tuple[pa.Table, int]:
    """`_stage` without Ray: `run(queue, bar, tasks)` runs the read tasks of `queue` (popped
    from its end): a local build's forked workers (`ForkedReaders.read_all`), or this process
    (a build of one read task: see `in_process`). The unfinished read tasks, then the retry
    tasks of the URLs they deferred; the metadata and the inputs settled."""
    done = {i for i in staging.finished_tasks() if i < len(tasks)}  # not counting retry tasks
    if done:
        log(f"resuming: {len(done)} of {len(tasks)} read tasks already done")
    with _progress(cfg) as bar:
        rows = run([i for i in reversed(range(len(tasks))) if i not in done], bar, tasks)
        tasks, retried, queue = _with_retries(tasks, staging)
        t = time.perf_counter()
        rows += run(queue, bar, tasks)  # (the workers were forked without the retry tasks)
        if retried:
            timings["retry tasks"] = time.perf_counter() - t  # part of the read stage
    return _metadata(staging, len(tasks)), rows


def _metadata(staging: Staging, count: int) -> pa.Table:
    """Every read task's metadata, from the journal (only the columns decide reads)."""
    return staging.gather_metas(count)


ASSEMBLY_TASKS_PER_CPU = 4


def _cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _assemble(decisions: Decisions, cfg: BuildConfig, staging: Staging,
              base: BaseRelease | None, here: bool = False,
              workers: forkreads.ForkedReaders = forkreads.NONE) -> tuple[list, dict[str, int]]:
    """Ray tasks of synsets (synshard/builder/assembly.py `job_batches`), or batches of about
    one synset each in a local build's forked `workers`, or all in this process (`here`);
    journalled synsets are not redone. The largest synsets go first, so that the last task to
    start is a small one and every CPU stays busy to the end."""
    base_entries = list(base.release.manifest.shards) if base else []
    reusable = set()
    if base is not None:
        reusable = reusable_synsets(base, decisions.base_kept,
                                    set(decisions.kept["synset"].to_pylist()), cfg.formats)
    jobs = synset_jobs(decisions, base_entries, reusable)
    entries, todo = [], []
    journalled = staging.journalled_synsets()  # one listing, not a request per synset
    for j in jobs:
        if j.synset in journalled:
            entries.extend(journalled[j.synset])
        else:
            todo.append(j)
    args = (staging, dict(cfg.storage_options), base.uri if base else None, cfg.formats,
            cfg.shard_bytes)
    if workers:  # a message a batch costs next to nothing: batches of about a synset each
        batches = job_batches(todo, len(todo))
        results: Iterable[list] = (r for done in workers.assemble(batches, args) for r in done)
    elif here:
        results = run_jobs(sum(job_batches(todo, 1), []), *args)  # largest first
    else:
        from synshard.builder.raysession import ray, remote

        # batches of synsets, largest first: a few tasks per CPU (Ray's per-task cost is paid
        # per batch, not per synset), small enough that the CPUs finish together; their
        # entries consumed as each batch finishes
        batches = job_batches(todo, ASSEMBLY_TASKS_PER_CPU * _cpus(ray))
        results = (r for done in _run_jobs(remote(run_jobs), batches, args, ray) for r in done)
    for result in results:
        entries.extend(result)
    stats = {"synsets_reused": sum(j.reuse for j in jobs),
             "synsets_written": sum(not j.reuse for j in jobs)}
    return sorted(entries, key=lambda e: e.path), stats


def _run_jobs(job: Any, todo: list, args: tuple, ray: Any) -> Iterator[list]:
    """Each job's shard entries as its task finishes, at most two tasks per CPU in flight (the
    driver holds the arguments and results of those only, not of every synset at once)."""
    limit = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    queue = list(reversed(todo))
    pending: list = []
    while queue or pending:
        while queue and len(pending) < limit:
            pending.append(job.remote(queue.pop(), *args))
        ready, pending = ray.wait(pending, num_returns=1)
        yield from ray.get(ready)


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
