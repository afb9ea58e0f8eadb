"""Planning tar sources: cut a tar into read tasks by header offsets, one task per inner tar.

Only uncompressed tars can be entered in the middle, so only they are cut; a compressed tar is one
streamed task. With a `limit`, the inputs a task contributes are counted now (by reading, which
for a limit meant for samples is small), so the plan keeps exactly the first N inputs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import IO

from .tars import (Entry, Gap, Window, compression_of, count_rows, open_rows, scan_entries,
                   task_scope)
from .tasks import ReadTask

_COUNT_MAX_BYTES = 64 << 20  # any limit gives the same row count: every input is one row


def plan_tar(
    f: IO[bytes], base: ReadTask, path: str, remaining: int | None, files_per_task: int
) -> list[ReadTask]:
    """Read tasks of the tar open as `f`, in archive order; `base` gives uri, labels, prefix."""
    compression = compression_of(path)
    if compression is not None:
        task = replace(base, start=0, compression=compression)
        if remaining is not None:
            rows = open_rows(f, task_scope(task), compression, _COUNT_MAX_BYTES)
            task = replace(task, count=count_rows(rows, remaining))
        return [task]
    scanned = scan_entries(f)
    if scanned is None:  # not a tar at all: reading it yields its one `bad tar` row
        return [replace(base, start=0, count=1)]
    entries, gaps = scanned
    tasks: list[ReadTask] = []
    for segment, gap in _segments(entries, gaps):
        cut = _cut(f, base, segment, remaining, files_per_task)
        tasks += cut
        remaining = None if remaining is None else remaining - sum(t.count or 0 for t in cut)
        if gap is not None and (remaining is None or remaining > 0):
            tasks.append(replace(base, start=gap.start, length=gap.stop - gap.start, count=1,
                                 gap=True))  # one `bad tar` row with the lost byte range
            remaining = None if remaining is None else remaining - 1
    return tasks


def _segments(entries: list[Entry], gaps: list[Gap]) -> list[tuple[list[Entry], Gap | None]]:
    """The entries between lost stretches, each with the gap that ends it (None: the last)."""
    out: list[tuple[list[Entry], Gap | None]] = []
    rest = entries
    for gap in gaps:
        out.append(([e for e in rest if e.offset < gap.start], gap))
        rest = [e for e in rest if e.offset >= gap.stop]
    return out + [(rest, None)]


def _cut(f: IO[bytes], base: ReadTask, entries: list[Entry], remaining: int | None,
         files_per_task: int) -> list[ReadTask]:
    """Runs of up to `files_per_task` plain members, and one task per inner tar between them."""
    tasks: list[ReadTask] = []
    run: list[Entry] = []

    def flush() -> None:
        if run:
            end = run[-1].data_offset + _padded(run[-1].size)
            tasks.append(
                replace(base, start=run[0].offset, count=len(run), length=end - run[0].offset)
            )
            run.clear()

    for entry in entries:
        if remaining == 0:
            break
        if not entry.inner:
            run.append(entry)
            remaining = None if remaining is None else remaining - 1
            if len(run) >= files_per_task:
                flush()
            continue
        flush()
        task = _inner_task(f, base, entry, remaining)
        if task.count != 0:
            tasks.append(task)
        remaining = None if remaining is None else remaining - (task.count or 0)
    flush()
    return tasks


def _inner_task(f: IO[bytes], base: ReadTask, entry: Entry, remaining: int | None) -> ReadTask:
    """The task reading one inner tar in place by a ranged read of `[data_offset, +size)`."""
    task = replace(
        base,
        start=entry.data_offset,
        inner=entry.name,
        length=entry.size,
        compression=compression_of(entry.name),
    )
    if remaining is None:
        return task
    window = Window(f, entry.data_offset, entry.size)
    rows = open_rows(window, task_scope(task), task.compression, _COUNT_MAX_BYTES)
    return replace(task, count=count_rows(rows, remaining))


def _padded(size: int) -> int:
    """A member's data as stored: rounded up to whole 512-byte tar blocks."""
    return -(-size // 512) * 512
