"""The unit of reading: a small, picklable description of a slice of one source (no bytes).

The pipeline wraps each task as one Ray read task, so tasks carry only names, offsets and counts:
a worker re-opens the source through fsspec and reads just its slice (a batch of files, a run of
members of a tar found by header offset, or one inner tar of a tar of tars by a ranged read).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

TaskKind = Literal["files", "tar"]


@dataclass(frozen=True)
class Files:
    """A files task's paths (relative to its folder) and listed sizes, packed into one zlib blob:
    the driver holds every task for the whole build, and 256 `str` and `int` objects a task were
    ~130 bytes a file (130 MB at 1M files); packed, a few bytes a file (paths share prefixes)."""

    count: int = 0
    packed: bytes = b""  # zlib of: uint32 path lengths, int64 sizes, the UTF-8 paths

    @classmethod
    def of(cls, paths: Sequence[str], sizes: Sequence[int]) -> "Files":
        if len(paths) != len(sizes):
            raise ValueError(f"{len(paths)} paths but {len(sizes)} sizes")
        encoded = [p.encode("utf-8", "surrogateescape") for p in paths]
        lengths = np.array([len(e) for e in encoded], "<u4")
        raw = lengths.tobytes() + np.asarray(sizes, "<i8").tobytes() + b"".join(encoded)
        return cls(len(paths), zlib.compress(raw, 6))

    def unpack(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """(paths, sizes), in listing order."""
        if not self.count:
            return (), ()
        raw = zlib.decompress(self.packed)
        n = self.count
        ends = np.cumsum(np.frombuffer(raw, "<u4", n)).tolist()
        sizes = tuple(np.frombuffer(raw, "<i8", n, 4 * n).tolist())
        names = raw[12 * n:]
        starts = [0, *ends[:-1]]
        paths = tuple(names[a:b].decode("utf-8", "surrogateescape") for a, b in zip(starts, ends))
        return paths, sizes


@dataclass(frozen=True)
class ReadTask:
    """A slice of one source; `(uri, start)` orders tasks in the plan's deterministic input order.

    - files: `uri` is a folder, `listed` its files' paths relative to it and their listed sizes
      (`files`, `sizes`), `start` is the index of the first one in the sorted listing.
    - tar, `inner` None: `uri` is a tar; read `count` inputs (None: all) from the member header
      at byte `start` (0 and streamed when `compression` is set); they span `length` bytes.
    - tar, `inner` set: `uri` is an outer tar; `inner` is a tar member whose bytes are
      `[start, start + length)` of it, compressed with `compression`.
    - `prefix`: for a tar found inside a folder source, its path there without `.tar`, which
      stands for a folder (`train/n01440764.tar` -> split train, synset n01440764).
    """

    uri: str
    start: int = 0
    kind: TaskKind = "files"
    listed: Files = Files()
    inner: str | None = None
    length: int | None = None
    compression: str | None = None
    count: int | None = None
    labels: str | None = None  # labels file URI, read once per worker process
    prefix: str = ""  # a tar inside a folder source acts as a folder: its path, sans `.tar`
    gap: bool = False  # tar: `[start, start + length)` is lost to an invalid header (one reject)

    @property
    def files(self) -> tuple[str, ...]:
        """A files task's paths, relative to `uri`."""
        return self.listed.unpack()[0]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Their sizes as listed at planning time."""
        return self.listed.unpack()[1]

    @property
    def order(self) -> tuple[str, int]:
        """Sort key: sources by URI, then position within the source."""
        return (self.uri, self.start)
