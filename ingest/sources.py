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
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fsspec import AbstractFileSystem
from synshard.transforms.errors import SynshardError

from .candidates import Batcher, drain
from .folders import list_folder, read_files, stamp
from .labels import cached_labels, read_labels
from .layout import TAR_SUFFIXES, tar_kind, tar_stem
from .tarplan import plan_tar
from .tars import read_tar
from .tasks import Files, ReadTask

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
    listing: list[str | pa.Array]  # lines `uri<TAB>size<TAB>stamp`: one, or a folder's column

    def note(self, uri: str, size: int, change: str) -> None:
        self.listing.append(f"{uri}\t{size}\t{change}")

    def note_listed(self, uri: str, listed: pa.Table) -> None:
        """The lines of a folder's listed files (LISTING_SCHEMA rows), made in Arrow."""
        for at in range(0, listed.num_rows, LINE_ROWS):  # each chunk's text well under 2 GiB
            part = listed.slice(at, LINE_ROWS)
            paths = pc.binary_join_element_wise(uri, part["rel"], "/")
            lines = pc.binary_join_element_wise(paths, pc.cast(part["size"], pa.string()),
                                                part["stamp"], "\t")
            self.listing.extend(lines.chunks)


LINE_ROWS = 1 << 20  # fingerprint lines made (and hashed) this many at a time


def listing_digest(lines: list[str | pa.Array]) -> str:
    """sha256 of the lines sorted and joined by newlines (Arrow sorts UTF-8 by bytes, which is
    the code point order Python sorts `str` by), hashed a slice at a time: the driver never
    holds the whole text once more, nor a Python string per input file."""
    every = pa.chunked_array([pa.array([x for x in lines if isinstance(x, str)], pa.string())]
                             + [x for x in lines if not isinstance(x, str)], pa.string())
    order = pc.sort_indices(every)
    digest = hashlib.sha256()
    for at in range(0, len(order), LINE_ROWS // 16):
        text = "\n".join(every.take(order.slice(at, LINE_ROWS // 16)).to_pylist())
        digest.update((f"\n{text}" if at else text).encode())
    return digest.hexdigest()


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
    return SourcePlan(sorted(planner.tasks, key=lambda t: t.order), listing_digest(planner.listing))


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
        ReadTask(parent or ".", 0, "files", Files.of((name,), (size,)), labels=planner.labels)
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
    is read as a tar standing for the folder of its stem, not as one opaque input: the files
    between two such tars are cut into tasks, a run at a time, from the listing's columns.
    """
    listed = list_folder(fs, path, skip)
    tars = np.flatnonzero(_is_tar(listed)).tolist()
    at = 0
    for stop in [*tars, listed.num_rows]:
        if planner.remaining == 0:
            break
        take = stop - at if planner.remaining is None else min(stop - at, planner.remaining)
        _plan_files(planner, uri, listed.slice(at, take), at)
        _consume(planner, take)
        if stop == listed.num_rows or planner.remaining == 0:
            break
        rel = listed["rel"][stop].as_py()
        planner.note_listed(uri, listed.slice(stop, 1))
        _plan_tar(planner, f"{uri}/{rel}", fs, f"{path.rstrip('/')}/{rel}", tar_stem(rel))
        at = stop + 1


def _is_tar(listed: pa.Table) -> np.ndarray:
    """Per listed row: a tar (by its name) that can be read (no reason against it)."""
    lower = pc.utf8_lower(listed["rel"])
    named = np.zeros(listed.num_rows, bool)
    for suffix in TAR_SUFFIXES:
        named |= pc.ends_with(lower, suffix).to_numpy(zero_copy_only=False)
    return named & pc.is_null(listed["reason"]).to_numpy(zero_copy_only=False)


def _plan_files(planner: _Planner, uri: str, run: pa.Table, start: int) -> None:
    """Files tasks for a run of consecutive listed files (listing rows `start`...), noted."""
    planner.note_listed(uri, run)
    n = planner.files_per_task
    for at in range(0, run.num_rows, n):
        part = run.slice(at, n)
        files = Files.of(part["rel"].to_pylist(), part["size"].to_numpy())
        planner.tasks.append(ReadTask(uri, start + at, "files", files, labels=planner.labels))


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
        files, sizes = task.listed.unpack()  # once: `files` and `sizes` each unpack
        yield from read_files(
            fs, path, task.uri, files, sizes, labels=labels, max_bytes=max_member_bytes
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
