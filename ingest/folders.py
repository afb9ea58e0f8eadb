"""Folder sources: list a tree once at planning time, read its files in batches on workers.

Every file under the root is an input, symbolic links and special files included: a link that
resolves to a file inside the root is followed, any other link (out of the root, to a folder, to
nothing) and a special file (FIFO, socket, device) is a rejected row with its reason, never read.
Every regular file (a tar among them is planned as a tar source
standing for the folder of its stem, see `sources`); its path relative to the root gives the synset
and the split (`layout.locate`), else the labels file does, else it is rejected as `no synset`.
Reads go through `fs.cat_ranges`, which fetches a batch concurrently on object stores (S3) and
does not expand glob characters in file names, unlike `fs.cat`; a local folder's, through `open`.
"""

from __future__ import annotations

import os
import stat as stat_mode
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from synshard.transforms.errors import SynshardError

from .candidates import MAX_BYTES, MAX_ROWS, Batcher, drain
from .labels import Labels, lookup
from .layout import locate, path_parts

READ_ERRORS = (OSError, ValueError, EOFError)  # fsspec raises these for missing/unreadable files


# A folder's listing (`list_folder`): one row per file, in Arrow columns, not a Python object per
# file (those were ~400 bytes a file on the driver: 400 MiB of planning peak at 1M files).
LISTING_SCHEMA = pa.schema([
    pa.field("rel", pa.string()),  # the path relative to the source root
    pa.field("size", pa.int64()),
    pa.field("stamp", pa.string()),  # what says it changed (`stamp`)
    pa.field("reason", pa.string()),  # why it is not read (`entry_reason`); null: a file to read
])


def stamp(info: dict) -> str:
    """What says a file changed, by filesystem: an ETag where the store has one, else a mtime."""
    for key in ("ETag", "etag", "mtime", "LastModified", "last_modified", "created"):
        value = info.get(key)
        if value is not None:
            return str(value)
    return ""


@dataclass(frozen=True)
class Listing:
    """A folder's listing held once: LISTING_SCHEMA rows in walk order (`parts`, one table per
    listed folder) and `order`, their row numbers sorted by relative path. Sorting the rows
    themselves (a take of the whole listing) held it twice at planning's peak (~120 MiB more
    at 1M files); the rows of a stretch of the sorted order are gathered when asked for."""

    parts: tuple[pa.Table, ...]
    order: np.ndarray  # row numbers (into the parts, as concatenated) in `rel` order
    starts: np.ndarray = field(repr=False)  # row number of each part's first row

    @classmethod
    def of(cls, parts: Sequence[pa.Table]) -> "Listing":
        parts = tuple(parts)
        lengths = np.array([p.num_rows for p in parts], np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        if not parts:
            return cls((), np.zeros(0, np.int64), starts)
        whole = pa.concat_tables(parts)  # zero-copy: the parts' own buffers
        order = pc.sort_indices(whole, [("rel", "ascending")]).to_numpy().astype(np.int64)
        return cls(parts, order, starts)

    @property
    def num_rows(self) -> int:
        return len(self.order)

    def rows(self, start: int = 0, stop: int | None = None) -> pa.Table:
        """Rows `start`...`stop` of the sorted order, as a table of their own (LISTING_SCHEMA).

        Gathered a part at a time: a `take` over the whole chunked listing concatenates it
        first (34 s for 1M files in 256-row tasks)."""
        at = self.order[start:stop]
        if not len(at):
            return LISTING_SCHEMA.empty_table()
        part = np.searchsorted(self.starts, at, side="right") - 1
        cuts = np.flatnonzero(np.diff(part)) + 1
        pieces = []
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(at)]):
            p = int(part[a])
            pieces.append(self.parts[p].take(pa.array(at[a:b] - self.starts[p])))
        return pa.concat_tables(pieces).combine_chunks()

    def sorted_mask(self, per_part: Callable[[pa.Table], np.ndarray]) -> np.ndarray:
        """A boolean per row of the sorted order, `per_part` computed on each part (walk order)."""
        if not self.parts:
            return np.zeros(0, bool)
        walk = np.concatenate([per_part(p) for p in self.parts])
        return walk[self.order]


def list_folder(
    fs: AbstractFileSystem, root: str, skip: frozenset[str] = frozenset()
) -> pa.Table:
    """Every file under `root` (links and special files too), sorted by relative path, but those
    in `skip` (a labels file): LISTING_SCHEMA rows."""
    return walk_folder(fs, root, skip).rows()


def walk_folder(
    fs: AbstractFileSystem, root: str, skip: frozenset[str] = frozenset()
) -> Listing:
    """Every file under `root` (links and special files too) but those in `skip` (a labels
    file), in walk order with their order by relative path."""
    root = root.rstrip("/")
    parts = []
    # one folder's details at a time (what `find` collects for the whole tree first: a dict of
    # ~11 fields per file, ~1.2 KB each, 1.4 GB of the driver's peak at 1M images), each folder's
    # rows made Arrow columns before the next is listed
    local = isinstance(fs, LocalFileSystem) and os.path.isdir(root)
    folders = (_walk_local(root) if local else
               (list(files.values()) for _, _, files in fs.walk(root, detail=True)))
    for files in folders:
        infos = [info for info in files if info.get("type", "file") != "directory"
                 and info["name"].rstrip("/") not in skip]
        if infos:
            parts.append(_listing(fs, root, infos))
    if not parts and fs.isfile(root):  # `find` lists a file root as itself
        found = fs.find(root, withdirs=False, detail=True)
        parts = [_listing(fs, root, [info for path, info in found.items()
                                     if info.get("type", "file") != "directory"
                                     and path.rstrip("/") not in skip])]
    return Listing.of(parts)


def _walk_local(root: str) -> Iterator[list[dict]]:
    """What `LocalFileSystem.walk(root, detail=True)` finds, a folder's files at a time, as info
    dicts of the fields a listing reads (name, size, type, islink, mtime: the values fsspec's
    `info` gives a scandir entry, a link's size its target's), straight from `os.scandir`:
    fsspec's `info` of every entry (a path normalisation and a dict of 11 fields) was half of
    planning a 12,000-photo folder (docs/scale.md, session 19). The order is a walk's (the
    listing sorts its rows). A folder that cannot be listed, or an entry that cannot be looked
    at, stops planning with one line naming it (fsspec's walk passed over such a folder and
    every input in it, silently); one removed meanwhile is passed over."""
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as found:
                entries = list(found)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _unlisted(folder, exc) from None
        files = []
        for entry in entries:
            try:
                mode = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise _unlisted(entry.path, exc) from None
            if stat_mode.S_ISDIR(mode.st_mode):
                pending.append(entry.path)
                continue
            link = stat_mode.S_ISLNK(mode.st_mode)
            size = mode.st_size if not link else _target_size(entry.path)
            kind = "file" if stat_mode.S_ISREG(mode.st_mode) else "other"
            files.append({"name": entry.path, "size": size, "type": kind, "islink": link,
                          "mtime": mode.st_mtime})
        yield files


def _unlisted(path: str, exc: OSError) -> SynshardError:
    return SynshardError(f"cannot list {path} in a source folder: {exc.strerror or exc}; make "
                         "it readable (folders need r and x) or move it out of the source")


def _target_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _listing(fs: AbstractFileSystem, root: str, infos: list[dict]) -> pa.Table:
    """LISTING_SCHEMA rows of one folder's entries (their fsspec info dicts)."""
    local = isinstance(fs, LocalFileSystem)
    # a local listing already says what is a plain file: only the rest is looked at again
    reasons = [None if local and info.get("type") == "file" and not info.get("islink")
               else entry_reason(fs, root, info["name"]) for info in infos]
    return pa.table({
        "rel": _exact_strings([info["name"][len(root):].lstrip("/") for info in infos]),
        "size": pa.array(np.array([int(info.get("size") or 0) for info in infos], np.int64)),
        "stamp": _exact_strings([stamp(info) for info in infos]),
        "reason": (pa.nulls(len(infos), pa.string()) if not any(reasons)
                   else pa.array(reasons, pa.string())),
    }, schema=LISTING_SCHEMA)


def _exact_strings(values: list[str]) -> pa.Array:
    """A string array in buffers of exactly its size (Arrow's converter grows its buffers by
    doubling, and the allocator kept the slack: ~40 MiB of RSS more at 1M files)."""
    encoded = [v.encode("utf-8") for v in values]  # a lone surrogate: UnicodeEncodeError, as
    offsets = np.zeros(len(encoded) + 1, np.int32)  # pa.array raises
    np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), out=offsets[1:])
    return pa.StringArray.from_buffers(len(encoded), pa.py_buffer(offsets),
                                       pa.py_buffer(b"".join(encoded)))


def entry_reason(fs: AbstractFileSystem, root: str, path: str) -> str | None:
    """Why the entry at `path` under `root` is not read, or None (a regular file, or a link that
    resolves to one inside the root). Only local folders have links and special files."""
    if not isinstance(fs, LocalFileSystem):
        return None
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None  # gone: reading it reports the error
    if stat_mode.S_ISREG(mode):
        return None
    if not stat_mode.S_ISLNK(mode):
        return "special file"
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([real, real_root]) != real_root:
        return "link outside the source root"
    if not os.path.isfile(real):
        return "link to a folder or to nothing"
    return None


def file_origin(rel: str, labels: Labels | None) -> tuple[str | None, str | None]:
    """(synset, split) of a file: its folders first, the labels file when no folder is a wnid."""
    synset, split = locate(path_parts(rel))
    return synset or lookup(labels, rel), split


def read_files(
    fs: AbstractFileSystem,
    root: str,
    root_uri: str,
    files: Sequence[str],
    sizes: Sequence[int],
    *,
    labels: Labels | None,
    max_bytes: int,
) -> Iterator[pa.Table]:
    """Candidate batches for `files` (relative to `root`): one row per file, in order."""
    batcher = Batcher()
    tables = _file_tables(fs, root, root_uri, files, sizes, labels, max_bytes, batcher)
    return drain(batcher, tables)


def _file_tables(fs: AbstractFileSystem, root: str, root_uri: str, files: Sequence[str],
                 sizes: Sequence[int], labels: Labels | None, max_bytes: int, batcher: Batcher
                 ) -> Iterator[pa.Table | None]:
    """One `batcher.add` per file (a table whenever a batch fills), reading a group at a time."""
    base, base_uri = root.rstrip("/"), root_uri.rstrip("/")
    for group in _groups(list(zip(files, sizes, strict=True))):
        refused = {rel: entry_reason(fs, base, f"{base}/{rel}") for rel, _ in group}
        wanted = [rel for rel, size in group if size <= max_bytes and not refused[rel]]
        fetched = dict(zip(wanted, _fetch(fs, [f"{base}/{rel}" for rel in wanted]), strict=True))
        for rel, size in group:
            synset, split = file_origin(rel, labels)
            data, reason = (None, refused[rel]) if refused[rel] else _checked(
                fetched.get(rel), size, max_bytes)
            reason = reason or (None if synset else "no synset")
            yield batcher.add(f"{base_uri}/{rel}", synset, split, data, reason)


def _groups(items: list[tuple[str, int]]) -> Iterator[list[tuple[str, int]]]:
    """Consecutive runs of files bounded like a candidate batch, so one fetch fits in memory."""
    group: list[tuple[str, int]] = []
    total = 0
    for rel, size in items:
        if group and (len(group) >= MAX_ROWS or total + size > MAX_BYTES):
            yield group
            group, total = [], 0
        group.append((rel, size))
        total += size
    if group:
        yield group


def _fetch(fs: AbstractFileSystem, paths: list[str]) -> list[bytes | BaseException]:
    """Whole-file reads of `paths`; a failed read comes back as its exception, not raised.

    A local folder's files are read with `open` (20 us a file here, against 78 through
    `cat_ranges`, whose per-file seek, size and slicing buy nothing on a local disk: ~1.4% of a
    read task's CPU, bench/bench_read_task.py)."""
    if not paths:
        return []
    if isinstance(fs, LocalFileSystem):
        return [_read_local(path) for path in paths]
    return fs.cat_ranges(paths, [0] * len(paths), [None] * len(paths), on_error="return")


def _read_local(path: str) -> bytes | BaseException:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        return exc


def _checked(
    got: bytes | BaseException | None, size: int, max_bytes: int
) -> tuple[bytes | None, str | None]:
    """(bytes, None) for a good read, else (None, reason): too large, or the read error."""
    if got is None:
        return None, f"too large: {size} bytes"
    if isinstance(got, READ_ERRORS):
        return None, f"read error: {type(got).__name__}: {got}"
    if isinstance(got, BaseException):
        raise got  # not an expected I/O failure: a programming error must surface
    if len(got) > max_bytes:
        return None, f"too large: {len(got)} bytes"
    return bytes(got), None
