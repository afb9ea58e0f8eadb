"""Sources: plan once on the driver (listing, header scans), read in parallel on workers.

`plan_sources` turns source URIs (folders in ImageNet layout, tars, tars of tars, single files;
any fsspec URI) into small picklable `ReadTask`s and a fingerprint of the inputs; `read_task`
turns one task into candidate batches (CANDIDATE_SCHEMA), one row per input, bad inputs included
as rows with a reason. Sources are planned in URI order, so the same inputs give the same tasks
whatever order they are given in; `limit` keeps the first N inputs in that order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import fsspec
import pyarrow as pa
from fsspec import AbstractFileSystem
from synshard.transforms.errors import SynshardError

from .candidates import Batcher, drain
from .folders import Listed, list_folder, read_files, stamp
from .labels import cached_labels, read_labels
from .layout import tar_kind, tar_stem
from .tarplan import plan_tar
from .tars import read_tar
from .tasks import ReadTask

__all__ = ["ReadTask", "SourcePlan", "plan_sources", "read_task"]

DEFAULT_MAX_MEMBER_BYTES = 64 << 20
# Header scans jump from header to header: on object stores a small read block keeps a scan of a
# tar of tars (headers ~100 MB apart) from fetching a whole default block (s3fs: 50 MiB) each.
SCAN_BLOCK_BYTES = 1 << 20
MIN_READ_BLOCK_BYTES, MAX_READ_BLOCK_BYTES = 64 << 10, 16 << 20


@dataclass(frozen=True)
class SourcePlan:
    """The read tasks of a build, in input order, and a fingerprint of everything they read."""

    tasks: list[ReadTask]
    fingerprint: str  # sha256 over the sorted (uri, size, stamp) listing of inputs + labels


@dataclass
class _Planner:
    """Accumulates tasks and the fingerprint listing while sources are planned in order."""

    labels: str | None
    remaining: int | None
    files_per_task: int
    tasks: list[ReadTask]
    listing: list[str]

    def note(self, uri: str, size: int, change: str) -> None:
        self.listing.append(f"{uri}\t{size}\t{change}")


def plan_sources(
    uris: Sequence[str],
    *,
    labels: str | None = None,
    limit: int | None = None,
    storage_options: dict | None = None,
    files_per_task: int = 256,
) -> SourcePlan:
    """Plan reading `uris`; a missing source or labels file raises SynshardError."""
    if files_per_task < 1 or (limit is not None and limit < 0):
        raise SynshardError("files_per_task must be >= 1 and limit >= 0")
    options = dict(storage_options or {})
    opened = [(uri, *_open_source(uri, options)) for uri in sorted({_trim(u) for u in uris})]
    planner = _Planner(labels, limit, files_per_task, [], [])
    skip = _plan_labels(planner, labels, options)
    for uri, fs, path, info in opened:
        if planner.remaining == 0:
            break
        _plan_one(planner, uri, fs, path, info, skip.get(_protocol(fs), frozenset()))
    if limit is not None:
        planner.listing.append(f"limit={limit}")
    digest = hashlib.sha256("\n".join(sorted(planner.listing)).encode()).hexdigest()
    return SourcePlan(sorted(planner.tasks, key=lambda t: t.order), digest)


def _open_source(uri: str, options: Mapping) -> tuple[AbstractFileSystem, str, dict]:
    """(filesystem, path, info) of a source; one-line SynshardError when it cannot be found."""
    try:
        fs, path = fsspec.core.url_to_fs(uri, **options)
        return fs, path, fs.info(path)
    except FileNotFoundError:
        raise SynshardError(f"source not found: {uri}") from None
    except (OSError, ValueError, ImportError) as exc:
        raise SynshardError(f"cannot open source {uri}: {type(exc).__name__}: {exc}") from None


def _protocol(fs: AbstractFileSystem) -> str:
    return fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]


def _plan_labels(planner: _Planner, labels: str | None, options: Mapping) -> dict:
    """Validate the labels file now (not on every worker) and fingerprint it.

    Returns {protocol: {its path}}: a labels file inside a source folder is not an input.
    """
    if labels is None:
        return {}
    read_labels(labels, options)
    fs, path, info = _open_source(labels, options)
    planner.note(labels, int(info.get("size") or 0), stamp(info))
    return {_protocol(fs): frozenset({path.rstrip("/")})}


def _plan_one(planner: _Planner, uri: str, fs: AbstractFileSystem, path: str, info: dict,
              skip: frozenset) -> None:
    """Plan one source by its kind: folder, tar, or a single file."""
    if info.get("type") == "directory":
        _plan_folder(planner, uri, fs, path, skip)
        return
    size = int(info.get("size") or 0)
    planner.note(uri, size, stamp(info))
    if tar_kind(path)[0]:
        _plan_tar(planner, uri, fs, path)
        return
    parent, _, name = uri.rpartition("/")  # a lone file: its synset can only come from labels
    planner.tasks.append(
        ReadTask(parent or ".", 0, "files", (name,), (size,), labels=planner.labels)
    )
    _consume(planner, 1)


def _plan_tar(planner: _Planner, uri: str, fs: AbstractFileSystem, path: str,
              prefix: str = "") -> None:
    """Scan a tar's headers (or, with a limit, count a compressed one) into read tasks."""
    base = ReadTask(uri, kind="tar", labels=planner.labels, prefix=prefix)
    try:
        with fs.open(path, "rb", block_size=SCAN_BLOCK_BYTES) as f:
            tasks = plan_tar(f, base, path, planner.remaining, planner.files_per_task)
    except OSError as exc:
        raise SynshardError(f"cannot read source {uri}: {type(exc).__name__}: {exc}") from None
    planner.tasks.extend(tasks)
    _consume(planner, sum(t.count or 0 for t in tasks))


def _plan_folder(planner: _Planner, uri: str, fs: AbstractFileSystem, path: str,
                 skip: frozenset) -> None:
    """Files in path order, `files_per_task` to a task (the first `remaining` with a limit).

    A tar in the folder (say `train/n01440764.tar`, from unpacking ImageNet's training tar once)
    is read as a tar standing for the folder of its stem, not as one opaque input.
    """
    run: list[tuple[int, Listed]] = []
    for index, item in enumerate(list_folder(fs, path, skip)):
        if planner.remaining == 0:
            break
        planner.note(f"{uri}/{item.rel}", item.size, item.stamp)
        if tar_kind(item.rel)[0] and item.reason is None:
            _flush_files(planner, uri, run)
            full = f"{path.rstrip('/')}/{item.rel}"
            _plan_tar(planner, f"{uri}/{item.rel}", fs, full, tar_stem(item.rel))
            continue
        run.append((index, item))
        _consume(planner, 1)
        if len(run) >= planner.files_per_task:
            _flush_files(planner, uri, run)
    _flush_files(planner, uri, run)


def _flush_files(planner: _Planner, uri: str, run: list[tuple[int, Listed]]) -> None:
    """One files task for a run of consecutive listed files; empties the run."""
    if run:
        files, sizes = tuple(i.rel for _, i in run), tuple(i.size for _, i in run)
        planner.tasks.append(ReadTask(uri, run[0][0], "files", files, sizes, labels=planner.labels))
        run.clear()


def _consume(planner: _Planner, used: int) -> None:
    if planner.remaining is not None:
        planner.remaining = max(0, planner.remaining - used)


def _read_block(task: ReadTask) -> int | None:
    """Read-ahead block for a tar task: its extent when known, so a task reading a 1 MB inner tar
    does not fetch a whole default block (s3fs: 50 MiB); capped, so memory stays bounded."""
    if task.length is None:
        return None
    return min(max(task.length, MIN_READ_BLOCK_BYTES), MAX_READ_BLOCK_BYTES)


def _trim(uri: str) -> str:
    """A folder URI without its trailing slash (but `memory://` stays a root)."""
    trimmed = uri.rstrip("/")
    return uri if trimmed.endswith(":") else trimmed


def read_task(
    task: ReadTask,
    storage_options: dict | None = None,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
) -> Iterator[pa.Table]:
    """Candidate batches (<= 256 rows, <= 64 MiB of bytes) of one task: one row per input."""
    options = dict(storage_options or {})
    labels = cached_labels(task.labels, options) if task.labels else None
    fs, path = fsspec.core.url_to_fs(task.uri, **options)
    if task.kind == "files":
        yield from read_files(
            fs, path, task.uri, task.files, task.sizes, labels=labels, max_bytes=max_member_bytes
        )
        return
    try:
        f = fs.open(path, "rb", block_size=_read_block(task))
    except OSError as exc:  # the tar went away (or lost permissions) since planning
        source = task.uri if task.inner is None else f"{task.uri}::{task.inner}"
        batcher = Batcher()
        batcher.add(source, None, None, None, f"read error: {type(exc).__name__}: {exc}")
        yield from drain(batcher, iter(()))
        return
    with f:
        yield from read_tar(f, task, labels, max_member_bytes)
