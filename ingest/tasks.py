"""The unit of reading: a small, picklable description of a slice of one source (no bytes).

The pipeline wraps each task as one Ray read task, so tasks carry only names, offsets and counts:
a worker re-opens the source through fsspec and reads just its slice (a batch of files, a run of
members of a tar found by header offset, or one inner tar of a tar of tars by a ranged read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TaskKind = Literal["files", "tar"]


@dataclass(frozen=True)
class ReadTask:
    """A slice of one source; `(uri, start)` orders tasks in the plan's deterministic input order.

    - files: `uri` is a folder, `files` are paths relative to it (with their listed `sizes`),
      `start` is the index of the first one in the sorted listing.
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
    files: tuple[str, ...] = ()
    sizes: tuple[int, ...] = ()
    inner: str | None = None
    length: int | None = None
    compression: str | None = None
    count: int | None = None
    labels: str | None = None  # labels file URI, read once per worker process
    prefix: str = ""  # a tar inside a folder source acts as a folder: its path, sans `.tar`
    gap: bool = False  # tar: `[start, start + length)` is lost to an invalid header (one reject)

    @property
    def order(self) -> tuple[str, int]:
        """Sort key: sources by URI, then position within the source."""
        return (self.uri, self.start)
