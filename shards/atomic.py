"""Writing a file whole, so that a reader never sees it half-written.

Shards, their indexes and side tables have content-hashed names: a rebuild that makes the same
bytes writes them again under the same name, while the committed release lists them and readers
may be reading them. A plain local write truncates the file first, so such a reader would see 0
bytes. Here a local file is written under a temporary name in its own folder and renamed over the
old one (`os.replace`, atomic on POSIX: an open reader keeps the old inode, a new one gets the new
file); on an object store a single PUT is already atomic. `durable` (the manifest, the commit
point) also fsyncs the file and its folder.

A killed write leaves at most a `.part-*.tmp` (or `.manifest-*.tmp`) file, which gc removes.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import shutil
import tempfile
from typing import Any, Callable, Sequence, TypeVar

import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

T = TypeVar("T")
PART_PREFIX = ".part-"
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what a plain open() would give (mkstemp makes 0o600)
TEMP_SUFFIX = ".tmp"
TEMP_NAME = re.compile(r"^\.(part|manifest)-.*\.tmp$")


def put_file(fs: Any, path: str, data: bytes | pa.Buffer, *, durable: bool = False,
             prefix: str = PART_PREFIX) -> None:
    """Write `data` at `path` on `fs` in one step: readers see the old file or the new one.
    `data` may be an Arrow buffer: written as it is to a local file, as bytes elsewhere."""
    if isinstance(fs, LocalFileSystem):
        replace_local(fs._strip_protocol(path), data, durable=durable, prefix=prefix)
    else:  # one PUT: atomic on object stores
        fs.pipe_file(path, data if isinstance(data, bytes) else data.to_pybytes())


def put_parts(fs: Any, path: str, parts: Sequence[Any]) -> None:
    """`put_file` of the concatenation of `parts` (bytes-like), without making it: a local file
    is written from the parts themselves (`os.writev`, up to IOV_MAX at a time), so a shard of
    hundreds of MB is not first copied into a fresh buffer of its size. On these VMs that copy
    cost about as much as the write: memory the process has not touched before costs ~7 us a
    4 KiB page the first time (docs/scale.md, session 15). An object store gets one PUT of the
    joined bytes."""
    if isinstance(fs, LocalFileSystem):
        _replace(fs._strip_protocol(path), lambda f: write_parts(f, parts), PART_PREFIX)
    else:
        fs.pipe_file(path, b"".join(parts))


def write_then_name(folder: str, write: Callable[[Any], T],
                    name: Callable[[str], str]) -> tuple[str, int, T]:
    """Write a local file whose name depends on its content: `write` fills an Arrow file sink
    (a temporary file in `folder`), the file is hashed where it lies (memory-mapped: no copy),
    and renamed to `name(sha256 hex)` in `folder`, replacing a file of that name in one step.
    Returns (sha256 hex, bytes, what `write` returned). So a file made by a writer (Parquet) is
    not first made in a fresh buffer of its size; removed on any failure."""
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=PART_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
    os.close(fd)
    try:
        with pa.OSFile(tmp, "wb") as sink:
            result = write(sink)
        size = os.path.getsize(tmp)
        digest = hashlib.sha256()
        if size:
            with open(tmp, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                digest.update(view)
        hexdigest = digest.hexdigest()
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, os.path.join(folder, name(hexdigest)))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return hexdigest, size, result


_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16


def write_parts(f: Any, parts: Sequence[Any]) -> None:
    """Write `parts` in order to the open binary file `f` (flushed first), by `os.writev` where
    the platform has it; a short write goes on from where it stopped."""
    f.flush()
    if not hasattr(os, "writev"):
        for part in parts:
            f.write(part)
        return
    fd = f.fileno()
    for at in range(0, len(parts), _IOV_MAX):
        chunk = parts[at:at + _IOV_MAX]
        written = os.writev(fd, chunk)
        if written < sum(map(len, chunk)):
            _write_rest(fd, chunk, written)


def _write_rest(fd: int, chunk: Sequence[Any], written: int) -> None:
    for part in chunk:
        view = memoryview(part).cast("B")
        if written >= len(view):
            written -= len(view)
            continue
        view, written = view[written:], 0
        while view:
            view = view[os.write(fd, view):]


def replace_local(path: str, data: bytes | pa.Buffer, *, durable: bool = False,
                  prefix: str = PART_PREFIX) -> None:
    """A temporary file beside `path`, `os.replace`d over it (fsync'd first when `durable`)."""
    def write(f: Any) -> None:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())

    _replace(path, write, prefix)
    if durable:
        _fsync_dir(os.path.dirname(path) or ".")


def copy_file(fs: Any, src: str, dst: str) -> None:
    """Copy `src` to `dst` on the same filesystem, in one step for readers of `dst`: server-side
    on an object store, a temporary copy renamed over `dst` on a local disk."""
    if not isinstance(fs, LocalFileSystem):
        fs.cp_file(src, dst)
        return
    with open(fs._strip_protocol(src), "rb") as source:
        _replace(fs._strip_protocol(dst), lambda f: shutil.copyfileobj(source, f), PART_PREFIX)


def _replace(path: str, write: Callable[[Any], None], prefix: str) -> None:
    """`write` a temporary file in `path`'s folder, then rename it over `path` (removed on any
    failure, so nothing half-written stays behind)."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_partial_writes(fs: Any, root: str, skip: tuple[str, ...] = ("_staging",)) -> int:
    """Remove the `.part-*.tmp` files that killed writers left under a local release `root`
    (outside `skip`); returns how many. Only while holding the build lock: no writer is live.
    Object stores never get such files (a PUT is whole)."""
    if not isinstance(fs, LocalFileSystem):
        return 0
    removed = 0
    for folder, dirs, files in os.walk(fs._strip_protocol(root)):
        if folder == fs._strip_protocol(root):
            dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            if name.startswith(PART_PREFIX) and name.endswith(TEMP_SUFFIX):
                os.unlink(os.path.join(folder, name))
                removed += 1
    return removed


def is_temporary(name: str) -> bool:
    """Whether a file's base name is one of these writes' temporary files."""
    return TEMP_NAME.match(name) is not None


def _fsync_dir(folder: str) -> None:
    """Make the rename durable (not possible on every platform: skip where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
