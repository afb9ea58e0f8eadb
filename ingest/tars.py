"""Tar sources, streamed and never extracted: plain tars, compressed tars, and tars of tars.

Planning scans an uncompressed tar's headers once (cheap: `tarfile` seeks past member data) and
cuts it into runs of members found by header offset, plus one task per inner tar, located by its
data offset, so a cluster reads ImageNet's training tar (a tar of per-synset tars) in parallel
with ranged reads. Compressed tars cannot be entered in the middle: one streamed task each, whose
nested tars are opened as streams within the stream.

Hostile members become rows with a reason: `unsafe path`, `link member`, `special file`,
`too large: N bytes`; an archive that cannot be read on becomes a `bad tar: ...` row. The
stretch from an invalid header to the next valid one (found at 512-byte steps, as GNU tar's
"skipping to next header") is one `bad tar` row with its byte range, and the members after it are
read: planned around in an uncompressed tar, read on in a stream or an inner tar.
"""

from __future__ import annotations

import io
import lzma
import re
import tarfile
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from itertools import islice
from typing import IO, Literal, Protocol, Self

import pyarrow as pa

from .candidates import Batcher, drain
from .labels import Labels, lookup
from .layout import is_inner_tar, is_input, locate, member_reason, path_parts, tar_kind, tar_stem
from .tasks import ReadTask

# What reading a damaged or hostile archive raises (zlib/lzma errors escape tarfile's stream).
TAR_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)
Nested = Literal["skip", "open", "plain"]
Row = tuple[str, tuple[str, ...], "bytes | None", "str | None"]  # source, path parts, data, reason


class TarSource(Protocol):
    """What `tarfile.open` reads an archive from (typeshed's private `tarfile._Fileobj`): an
    open file, a `Window` on one, a `_Chain`, or the file object of an archive read on."""

    def read(self, size: int, /) -> bytes: ...
    def write(self, b: bytes, /) -> object: ...
    def tell(self) -> int: ...
    def seek(self, pos: int, /) -> object: ...
    def close(self) -> object: ...


class Window(io.RawIOBase):
    """Bytes `[start, start + length)` of a seekable file, as a file: an inner tar in place."""

    def __init__(self, f: IO[bytes], start: int, length: int) -> None:
        super().__init__()
        self._f, self._start, self._length, self._pos = f, start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, self._length - self._pos)
        size = left if size is None or size < 0 else min(size, left)
        self._f.seek(self._start + self._pos)
        data = self._f.read(size)
        self._pos += len(data)
        return data


@dataclass(frozen=True)
class Scope:
    """How to name and place the members of one archive."""

    source: str  # `<tar uri>` or `<outer uri>::<inner name>`: prefix of member sources
    folders: tuple[str, ...] = ()  # path parts the archive stands for (an inner tar's stem)
    nested: Nested = "plain"  # inner tars: skip (own task), open (stream them) or plain member
    streamed: bool = False  # member data cannot be skipped by seeking


@dataclass(frozen=True)
class Entry:
    """One input found by a header scan: where its header starts, and if a tar, where its data."""

    offset: int
    name: str
    inner: bool
    data_offset: int
    size: int


@dataclass(frozen=True)
class Gap:
    """Bytes `[start, stop)` of a tar lost to an invalid header: from it to the next valid one."""

    start: int
    stop: int


def scan_entries(f: IO[bytes]) -> tuple[list[Entry], list[Gap]] | None:
    """(inputs in archive order, stretches lost to invalid headers), from headers only; None when
    `f` is not a tar at all.

    `tarfile` ends iteration quietly at an invalid header after the first. Like GNU tar
    ("skipping to next header"), the scan then looks for the next valid header at 512-byte steps
    and reads on from there; the lost stretch is one `Gap`, so nothing after it is dropped.
    """
    entries: list[Entry] = []
    gaps: list[Gap] = []
    start = 0
    while True:
        f.seek(start)
        try:
            tf = tarfile.open(fileobj=f, mode="r:")  # noqa: SIM115 (closed below; `f` stays open)
        except TAR_ERRORS:
            if start == 0:
                return None
            stop = start  # a valid first block whose follow-up header (a long name) is not
        else:
            with tf:
                entries += _scan(tf)
                stop = tf.offset
        f.seek(stop)
        if not f.read(tarfile.BLOCKSIZE).strip(b"\0"):
            return entries, gaps  # end-of-archive zeros, or the end of the file: intact
        found = next_header(f, stop)
        gaps.append(Gap(stop, found if found is not None else f.seek(0, io.SEEK_END)))
        if found is None:
            return entries, gaps
        start = found


def _scan(tf: tarfile.TarFile) -> list[Entry]:
    entries = []
    for info in _members(tf):
        if isinstance(info, Exception):
            break  # a truncated tar ends here too: only bytes that follow make it broken
        if is_input(info):
            inner = is_inner_tar(info)
            entries.append(Entry(info.offset, info.name, inner, info.offset_data, info.size))
    return entries


_CHKSUM = re.compile(rb"[0-7 \0]{8}")  # a header's checksum field: octal digits, space, NUL
_SCAN_CHUNK = 1 << 20


def next_header(f: IO[bytes], offset: int) -> int | None:
    """Offset of the first valid tar header after the block at `offset`, at 512-byte steps; None
    when the file ends first."""
    pos = offset + tarfile.BLOCKSIZE
    f.seek(pos)
    while len(chunk := f.read(_SCAN_CHUNK)) >= tarfile.BLOCKSIZE:
        for i in range(0, len(chunk) - tarfile.BLOCKSIZE + 1, tarfile.BLOCKSIZE):
            if is_header(chunk[i:i + tarfile.BLOCKSIZE]):
                return pos + i
        pos += len(chunk) - len(chunk) % tarfile.BLOCKSIZE
        f.seek(pos)
    return None


def is_header(block: bytes) -> bool:
    """Whether a 512-byte block is a tar header with a correct checksum."""
    if not _CHKSUM.fullmatch(block[148:156]) or not block.strip(b"\0"):
        return False
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo | Exception]:
    """Members one by one without keeping them all (tarfile caches every TarInfo it reads)."""
    while True:
        try:
            info = tf.next()
        except TAR_ERRORS as exc:
            yield exc
            return
        if info is None:
            return
        tf.members.clear()  # type: ignore[attr-defined]  # a real attribute typeshed leaves out
        yield info


class _Probe(tarfile.TarInfo):
    """A TarInfo that notes on its archive where an invalid header (not the end-of-archive zeros)
    stopped it: `tarfile` ends iteration quietly at both."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        offset = tarfile_.offset
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.InvalidHeaderError:  # type: ignore[attr-defined]  # real, not in typeshed
            tarfile_.invalid_at = offset  # type: ignore[attr-defined]
            raise


class _Chain(io.RawIOBase):
    """One header block found by a resynchronising scan, then the rest of a stream."""

    def __init__(self, first: bytes, rest: TarSource) -> None:
        super().__init__()
        self._first, self._rest = first, rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if not self._first:
            return self._rest.read(-1 if size is None else size)  # None and -1: read to the end
        size = len(self._first) if size is None or size < 0 else size
        out, self._first = self._first[:size], self._first[size:]
        return out


def open_rows(f: TarSource, scope: Scope, compression: str | None, max_bytes: int) -> Iterator[Row]:
    """Rows of the archive at `f`'s position: seekable when uncompressed, else streamed."""
    mode: Literal["r:", "r|*"] = "r:" if compression is None else "r|*"
    try:
        tf = tarfile.open(fileobj=f, mode=mode, tarinfo=_Probe)  # noqa: SIM115 (closed below)
    except TAR_ERRORS as exc:
        yield _bad(scope, exc)
        return
    with tf:
        yield from tar_rows(tf, scope, max_bytes)


def tar_rows(tf: tarfile.TarFile, scope: Scope, max_bytes: int, base: int = 0) -> Iterator[Row]:
    """One row per input member of `tf`, in archive order; directories are not inputs. After an
    invalid header the archive is read on from the next valid one (`base`: where `tf` starts)."""
    ended = yield from _member_rows(tf, scope, max_bytes)
    invalid_at = getattr(tf, "invalid_at", None)
    if ended and invalid_at is not None:
        yield from _read_on(tf, scope, max_bytes, base, invalid_at)


def _read_on(tf: tarfile.TarFile, scope: Scope, max_bytes: int, base: int, invalid_at: int
             ) -> Iterator[Row]:
    """The stretch from the invalid header to the next valid one as one row, then the rest, read
    forward from where `tarfile` stopped (this works on streams too)."""
    stop, block = invalid_at + tarfile.BLOCKSIZE, None
    try:
        while len(chunk := tf.fileobj.read(tarfile.BLOCKSIZE)) == tarfile.BLOCKSIZE:
            if is_header(chunk):
                block = chunk
                break
            stop += tarfile.BLOCKSIZE
    except TAR_ERRORS as exc:
        yield _bad(scope, exc)
        return
    yield (scope.source, scope.folders + ("",), None, lost_reason(base + invalid_at, base + stop))
    if block is None:
        return
    try:
        rest = tarfile.open(fileobj=_Chain(block, tf.fileobj), mode="r|", tarinfo=_Probe)
    except TAR_ERRORS as exc:
        yield _bad(scope, exc)
        return
    with rest:
        yield from tar_rows(rest, replace(scope, streamed=True), max_bytes, base + stop)


def lost_reason(start: int, stop: int) -> str:
    """The reason of the row standing for bytes lost to an invalid tar header."""
    return f"bad tar: invalid header, bytes {start}-{stop} unreadable (read on after them)"


def _member_rows(tf: tarfile.TarFile, scope: Scope, max_bytes: int
                 ) -> Generator[Row, None, bool]:
    """Rows of the members `tarfile` finds; returns whether it ended at a header (the end of the
    archive, or an invalid header), not inside a member or on a read error."""
    for info in _members(tf):
        if isinstance(info, Exception):
            yield _bad(scope, info)
            return False
        if not is_input(info):
            continue
        if is_inner_tar(info) and scope.nested != "plain":
            if scope.nested == "skip":
                continue  # planned as its own ranged read task
            if not (yield from _nested_rows(tf, info, scope, max_bytes)):
                return False
            continue
        row, intact = _member_row(tf, info, scope, max_bytes)
        yield row
        if not intact:
            return False  # the stream ended inside this member: nothing follows
    return True


def _member_row(
    tf: tarfile.TarFile, info: tarfile.TarInfo, scope: Scope, max_bytes: int
) -> tuple[Row, bool]:
    """(row, whether the archive can be read on) for one input member."""
    source = f"{scope.source}::{info.name}"
    parts = scope.folders + tuple(path_parts(info.name))
    reason = member_reason(info, max_bytes)
    if reason is not None:
        return (source, parts, None, reason), _skip_data(tf, info, scope)
    try:
        data = tf.extractfile(info).read()  # type: ignore[union-attr]
    except TAR_ERRORS as exc:
        return (source, parts, None, f"read error: {type(exc).__name__}: {exc}"), False
    return (source, parts, data, None), True


def _skip_data(tf: tarfile.TarFile, info: tarfile.TarInfo, scope: Scope) -> bool:
    """Read past a rejected member's data in a stream; False if the stream ends inside it.

    tarfile would skip it itself, but in a stream it does so in a loop over the *claimed* size,
    which a hostile header can make astronomically large; reading stops at the real end instead.
    """
    has_data = info.isreg() or info.type not in tarfile.SUPPORTED_TYPES
    if not scope.streamed or not has_data or info.size <= 0:
        return True
    try:
        data = tf.extractfile(info)
        while data is not None and data.read(1 << 20):
            pass
    except TAR_ERRORS:
        return False
    return True


def _nested_rows(tf: tarfile.TarFile, info: tarfile.TarInfo, outer: Scope, max_bytes: int
                 ) -> Generator[Row, None, bool]:
    """Rows of an inner tar read as a stream inside a streamed outer tar; returns `intact`."""
    scope = Scope(
        f"{outer.source}::{info.name}",
        outer.folders + tuple(path_parts(tar_stem(info.name))),
        nested="plain",
        streamed=True,
    )
    data = tf.extractfile(info)
    yield from open_rows(data, scope, "stream", max_bytes)  # type: ignore[arg-type]  # any: r|*
    try:
        while data is not None and data.read(1 << 20):
            pass  # the inner tar's padding and anything after its end-of-archive blocks
    except TAR_ERRORS:
        return False
    return True


def _bad(scope: Scope, exc: BaseException) -> Row:
    """The row for an archive that cannot be read (on): the archive itself is the input."""
    return (scope.source, scope.folders + ("",), None, f"bad tar: {type(exc).__name__}: {exc}")


def rows_to_tables(
    rows: Iterator[Row], labels: Labels | None, count: int | None
) -> Iterator[pa.Table]:
    """Candidate batches from rows: synset and split from the path, else from the labels file."""
    batcher = Batcher()
    return drain(batcher, (_add(batcher, row, labels) for row in islice(rows, count)))


def _add(batcher: Batcher, row: Row, labels: Labels | None) -> pa.Table | None:
    source, parts, data, reason = row
    synset, split = locate(parts)
    synset = synset or (lookup(labels, parts[-1]) if parts and parts[-1] else None)
    return batcher.add(source, synset, split, data, reason or (None if synset else "no synset"))


def task_scope(task: ReadTask) -> Scope:
    """The scope a tar task reads: part or all of a tar, or one inner tar (a folder named by its
    stem, as is a tar inside a folder source)."""
    folders = tuple(path_parts(task.prefix))
    if task.inner is not None:
        folders += tuple(path_parts(tar_stem(task.inner)))
        return Scope(f"{task.uri}::{task.inner}", folders, streamed=task.compression is not None)
    if task.compression is None:
        return Scope(task.uri, folders, nested="skip")
    return Scope(task.uri, folders, nested="open", streamed=True)


def count_rows(rows: Iterator[Row], limit: int) -> int:
    """How many of the first `limit` inputs an archive has (planning with `limit`)."""
    return sum(1 for _ in islice(rows, limit))


def compression_of(name: str) -> str | None:
    """A tar's compression from its name (None: uncompressed)."""
    return tar_kind(name)[1]


def read_tar(
    f: IO[bytes], task: ReadTask, labels: Labels | None, max_bytes: int
) -> Iterator[pa.Table]:
    """Candidate batches of one tar task, from an open seekable file of its `uri`."""
    scope = task_scope(task)
    if task.gap:
        end = task.start + (task.length or 0)
        row = (scope.source, scope.folders + ("",), None, lost_reason(task.start, end))
        return rows_to_tables(iter([row]), None, 1)
    if task.inner is not None:
        src: TarSource = Window(f, task.start, task.length or 0)
    else:
        f.seek(task.start)
        src = f
    rows = open_rows(src, scope, task.compression, max_bytes)
    return rows_to_tables(_expected(rows, task.count, scope), labels, task.count)


def _expected(rows: Iterator[Row], count: int | None, scope: Scope) -> Iterator[Row]:
    """`rows`, plus a `bad tar` row if the archive ends before the inputs the plan counted
    (it changed since planning, or it breaks where the plan found an invalid header)."""
    seen = 0
    for seen, row in enumerate(rows, 1):  # noqa: B007 (seen is used after the loop)
        yield row
    if count is not None and seen < count:
        yield (scope.source, scope.folders + ("",), None, "bad tar: unreadable member header")
