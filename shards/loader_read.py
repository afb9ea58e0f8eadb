"""The loader's reading side: one sample's bytes by (shard, offset), and work run in order.

- `ShardReader` reads a sample through its shard's index (`index/<shard>.idx.parquet`: offset
  and size of every sample and of its image and JSON members): `pread` on local files, an
  fsspec file with a read-ahead cache elsewhere. The index columns are kept as Python lists
  (a list index is ~10x cheaper than a numpy scalar and its `int()`), per shard, once.
- `in_order` runs a function over items on a thread pool, up to `ahead` items ahead of the
  consumer, and yields the results in order. Items go to the pool in chunks, so the hand-over
  (a future, a lock, a wake-up) is paid once a chunk, not once a sample; JPEG decoding in
  Pillow releases the GIL, so threads decode in parallel.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import os
import threading
from typing import Any, Callable, Iterator

from fsspec.implementations.local import LocalFileSystem

from .index import read_index
from .layout import ShardEntry, ShardError, join
from .release import Release

_COLUMNS = ("offset", "size", "image_offset", "image_size", "json_offset", "json_size", "key")


class ShardReader:
    """One sample's bytes by (shard, offset in file order), through the shard's index."""

    def __init__(self, release: Release, shards: list[ShardEntry]) -> None:
        self.release, self.shards = release, shards
        self.local = isinstance(release.fs, LocalFileSystem)
        self.indexes: dict[int, tuple[list, ...]] = {}
        self.lock = threading.Lock()
        self.files = threading.local()  # per thread: an LRU of open shard files

    def index(self, shard: int) -> tuple[list, ...]:
        """The shard's index columns (`_COLUMNS`, in file order), read once."""
        cols = self.indexes.get(shard)
        if cols is not None:
            return cols
        with self.lock:
            if shard not in self.indexes:
                entry = self.shards[shard]
                table = read_index(self.release.fs, self.release.root, entry).sort_by("offset")
                if table.num_rows != entry.samples:
                    raise ShardError(f"index of {entry.path} lists {table.num_rows} samples, "
                                     f"the manifest {entry.samples}")  # fmt: skip
                self.indexes[shard] = tuple(table.column(n).to_pylist() for n in _COLUMNS)
            return self.indexes[shard]

    def _file(self, shard: int) -> Any:
        lru = getattr(self.files, "lru", None)
        if lru is None:
            lru = self.files.lru = collections.OrderedDict()
        f = lru.get(shard)
        if f is None:
            path = join(self.release.root, self.shards[shard].path)
            if self.local:
                f = open(path, "rb", buffering=0)
            else:
                f = self.release.fs.open(path, "rb", block_size=4 << 20, cache_type="readahead")
            lru[shard] = f
            if len(lru) > 64:
                lru.popitem(last=False)[1].close()
        lru.move_to_end(shard)
        return f

    def read(self, shard: int, offset: int) -> tuple[str, bytes, bytes]:
        """(key, image bytes, json bytes); READ_ERRORS when the shard or index is unreadable."""
        starts, sizes, image_offsets, image_sizes, json_offsets, json_sizes, keys = self.index(shard)
        start, size = starts[offset], sizes[offset]
        f = self._file(shard)
        if self.local:
            blob = os.pread(f.fileno(), size, start)
        else:
            f.seek(start)
            blob = f.read(size)
        if len(blob) != size:
            raise ShardError(f"{self.shards[shard].path}: sample {offset} is cut short")
        i0, j0 = image_offsets[offset] - start, json_offsets[offset] - start
        return keys[offset], blob[i0 : i0 + image_sizes[offset]], blob[j0 : j0 + json_sizes[offset]]


def in_order(items: list[int], fn: Callable[[int], Any], threads: int, ahead: int, chunk: int = 1) -> Iterator[Any]:
    """`fn(item)` for each item, in order, computed by `threads` threads up to `ahead` items
    ahead, `chunk` items a task (one thread: inline, no hand-over)."""
    if threads <= 1:
        yield from map(fn, items)
        return
    chunk = max(1, chunk)
    tasks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    pending: collections.deque = collections.deque()
    in_flight = max(threads, ahead // chunk)

    def run(part: list[int]) -> list[Any]:
        return [fn(item) for item in part]

    with cf.ThreadPoolExecutor(threads, thread_name_prefix="synshard-read") as pool:
        try:
            it = iter(tasks)
            for part in it:
                pending.append(pool.submit(run, part))
                if len(pending) >= in_flight:
                    break
            for part in it:
                yield from pending.popleft().result()
                pending.append(pool.submit(run, part))
            while pending:
                yield from pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()
