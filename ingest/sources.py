"""Sources: plan once on the driver (listing, header scans), read in parallel on workers.

`plan_sources` turns source URIs (folders in ImageNet layout, tars, tars of tars, single files;
any fsspec URI) into small picklable `ReadTask`s and a fingerprint of the inputs; `read_task`
turns one task into candidate batches (CANDIDATE_SCHEMA), one row per input, bad inputs included
as rows with a reason. Sources are planned in URI order, so the same inputs give the same tasks
whatever order they are given in; `limit` keeps the first N inputs in that order.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fsspec import AbstractFileSystem
from synshard.transforms.errors import SynshardError

from .candidates import Batcher, drain
from .folders import Listing, read_files, stamp, walk_folder
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


@dataclass(frozen=True)
class ListedRun:
    """The fingerprint lines (`uri/rel<TAB>size<TAB>stamp`) of a folder listing's first `count`
    rows in its sorted order, made a slice at a time when hashed (`listing_digest`): holding
    every line until the end of planning was ~90 MB at 1M files, more than the listing."""

    uri: str
    listed: Listing
    count: int

    def sorted_lines(self) -> Iterator[str]:
        """The lines in sorted order: the listing's, unless a path holds a character that
        sorts before the tab (then `rel` order and line order may differ: sorted here)."""
        if any(pc.any(pc.match_substring_regex(p["rel"], "[\\x00-\\x09]")).as_py()
               for p in self.listed.parts):
            yield from _sorted(pa.chunked_array(
                [_lines(self.uri, self.listed.rows(at, min(at + LINE_ROWS, self.count)))
                 for at in range(0, self.count, LINE_ROWS)], pa.string()))
            return
        for at in range(0, self.count, RUN_ROWS):
            yield from _lines(self.uri, self.listed.rows(at, min(at + RUN_ROWS, self.count))
                              ).to_pylist()


def _lines(uri: str, part: pa.Table) -> pa.Array:
    """The fingerprint lines of LISTING_SCHEMA rows, made in Arrow."""
    paths = pc.binary_join_element_wise(uri, part["rel"], "/")
    return pc.binary_join_element_wise(paths, pc.cast(part["size"], pa.string()), part["stamp"],
                                       "\t")


def _sorted(lines: pa.ChunkedArray) -> Iterator[str]:
    """`lines` sorted (Arrow sorts UTF-8 by bytes: the code point order Python sorts `str` by),
    a slice at a time."""
    order = pc.sort_indices(lines)
    for at in range(0, len(order), RUN_ROWS):
        yield from lines.take(order.slice(at, RUN_ROWS)).to_pylist()


@dataclass
class _Planner:
    """Accumulates tasks and the fingerprint listing while sources are planned in order."""

    labels: str | None
    remaining: int | None
    files_per_task: int
    tasks: list[ReadTask]
    listing: list[str | pa.Array | ListedRun]  # lines `uri<TAB>size<TAB>stamp`, or a folder's

    def note(self, uri: str, size: int, change: str) -> None:
        self.listing.append(f"{uri}\t{size}\t{change}")


LINE_ROWS = 1 << 20  # fingerprint lines made (and hashed) this many at a time
RUN_ROWS = 4096  # a folder's lines made this many at a time while they are merged and hashed


def listing_digest(lines: Sequence[str | pa.Array | ListedRun]) -> str:
    """sha256 of the lines sorted and joined by newlines, hashed a slice at a time: the driver
    never holds the whole text, nor every line (a folder's are made from its listing, already
    in order, as they are merged), nor a Python string per input file."""
    runs: list[Iterator[str]] = [iter(sorted(x for x in lines if isinstance(x, str)))]
    runs += [_sorted(pa.chunked_array([x], pa.string())) for x in lines
             if isinstance(x, pa.Array)]
    runs += [x.sorted_lines() for x in lines if isinstance(x, ListedRun)]
    digest = hashlib.sha256()
    merged = heapq.merge(*runs)
    first = True
    while part := list(itertools.islice(merged, LINE_ROWS // 16)):
        text = "\n".join(part)
        digest.update((text if first else f"\n{text}").encode())
        first = False
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
    between two such tars are cut into tasks, a run at a time, from the listing's sorted order.
    The fingerprint notes the listing's first rows in that order, as many as were planned.
    """
    listed = walk_folder(fs, path, skip)
    tars = np.flatnonzero(listed.sorted_mask(_is_tar)).tolist()
    at = 0
    for stop in [*tars, listed.num_rows]:
        if planner.remaining == 0:
            break
        take = stop - at if planner.remaining is None else min(stop - at, planner.remaining)
        _plan_files(planner, uri, listed, at, at + take)
        at += take
        _consume(planner, take)
        if stop == listed.num_rows or planner.remaining == 0:
            break
        rel = listed.rows(stop, stop + 1)["rel"][0].as_py()
        _plan_tar(planner, f"{uri}/{rel}", fs, f"{path.rstrip('/')}/{rel}", tar_stem(rel))
        at = stop + 1
    planner.listing.append(ListedRun(uri, listed, at))


def _is_tar(listed: pa.Table) -> np.ndarray:
    """Per listed row: a tar (by its name) that can be read (no reason against it)."""
    lower = pc.utf8_lower(listed["rel"])
    named = np.zeros(listed.num_rows, bool)
    for suffix in TAR_SUFFIXES:
        named |= pc.ends_with(lower, suffix).to_numpy(zero_copy_only=False)
    return named & pc.is_null(listed["reason"]).to_numpy(zero_copy_only=False)


def _plan_files(planner: _Planner, uri: str, listed: Listing, start: int, stop: int) -> None:
    """Files tasks for the listing's sorted rows `start`...`stop` (consecutive files)."""
    n = planner.files_per_task
    for at in range(start, stop, n):
        part = listed.rows(at, min(at + n, stop))
        files = Files.of(part["rel"].to_pylist(), part["size"].to_numpy())
        planner.tasks.append(ReadTask(uri, at, "files", files, labels=planner.labels))


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
