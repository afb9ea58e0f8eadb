"""The loader's reading side: one sample's bytes by (shard, offset), and work run in order.

- `ShardReader` reads a sample through its shard's index (`index/<shard>.idx.parquet`: offset
  and size of every sample and of its image and JSON members): `pread` on local files; on an
  object store through a `BlockCache` shared by the reader threads, so each `block_size` span
  of a shard is one ranged GET per process however many threads need samples in it (a
  per-thread read-ahead file fetched a span once per thread: up to `threads` x the bytes).
  The index columns are kept as Python lists (a list index is ~10x cheaper than a numpy
  scalar and its `int()`), per shard, once.
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

BLOCK_SIZE = 1 << 20  # one ranged GET of a remote shard
_COLUMNS = ("offset", "size", "image_offset", "image_size", "json_offset", "json_size", "key")


class ShardReader:
    """One sample's bytes by (shard, offset in file order), through the shard's index."""

    def __init__(self, release: Release, shards: list[ShardEntry], cache_blocks: int = 64) -> None:
        """`cache_blocks`: remote spans kept, at least one for every shard read at once (the
        loader's streams x open shards), or spans get fetched again."""
        self.release, self.shards, self.cache_blocks = release, shards, cache_blocks
        self.local = isinstance(release.fs, LocalFileSystem)
        self.indexes: dict[int, tuple[list, ...]] = {}
        self.lock = threading.Lock()
        self.files = threading.local()  # per thread: an LRU of open local shard files
        self.cache: BlockCache | None = None  # remote shards: spans shared by the threads

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

    def _blocks(self) -> "BlockCache":
        if self.cache is None:
            with self.lock:
                if self.cache is None:
                    self.cache = BlockCache(self.release.fs, BLOCK_SIZE, self.cache_blocks)
        return self.cache

    def _file(self, shard: int) -> Any:
        lru = getattr(self.files, "lru", None)
        if lru is None:
            lru = self.files.lru = collections.OrderedDict()
        f = lru.get(shard)
        if f is None:
            path = join(self.release.root, self.shards[shard].path)
            f = open(path, "rb", buffering=0)
            lru[shard] = f
            if len(lru) > 64:
                lru.popitem(last=False)[1].close()
        lru.move_to_end(shard)
        return f

    def read(self, shard: int, offset: int) -> tuple[str, bytes, bytes]:
        """(key, image bytes, json bytes); READ_ERRORS when the shard or index is unreadable."""
        starts, sizes, image_offsets, image_sizes, json_offsets, json_sizes, keys = self.index(shard)
        start, size = starts[offset], sizes[offset]
        if self.local:
            blob = os.pread(self._file(shard).fileno(), size, start)
        else:
            entry = self.shards[shard]
            blob = self._blocks().read(join(self.release.root, entry.path), entry.bytes, start, size)
        if len(blob) != size:
            raise ShardError(f"{self.shards[shard].path}: sample {offset} is cut short")
        i0, j0 = image_offsets[offset] - start, json_offsets[offset] - start
        return keys[offset], blob[i0 : i0 + image_sizes[offset]], blob[j0 : j0 + json_sizes[offset]]


class BlockCache:
    """`block_size` spans of remote files, fetched once each (one ranged GET) however many
    threads ask at once, kept in an LRU of `blocks`. Thread safe."""

    def __init__(self, fs: Any, block_size: int, blocks: int) -> None:
        self.fs, self.block_size, self.capacity = fs, block_size, max(1, blocks)
        self.blocks: collections.OrderedDict[tuple[str, int], bytes] = collections.OrderedDict()
        self.loading: dict[tuple[str, int], threading.Event] = {}
        self.lock = threading.Lock()
        self.fetches = 0  # ranged GETs made (what the read amplification is measured by)

    def block(self, path: str, length: int, i: int) -> bytes:
        key = (path, i)
        while True:
            with self.lock:
                data = self.blocks.get(key)
                if data is not None:
                    self.blocks.move_to_end(key)
                    return data
                event = self.loading.get(key)
                if event is None:
                    event = self.loading[key] = threading.Event()
                    break
            event.wait()  # another thread fetches it; then look again
        try:
            start = i * self.block_size
            end = min(start + self.block_size, length) if length else start + self.block_size
            data = self.fs.cat_file(path, start=start, end=end)
            with self.lock:
                self.fetches += 1
                self.blocks[key] = data
                while len(self.blocks) > self.capacity:
                    self.blocks.popitem(last=False)
        finally:
            with self.lock:
                del self.loading[key]
            event.set()
        return data

    def read(self, path: str, length: int, start: int, size: int) -> bytes:
        """Bytes [start, start + size) of the file at `path` (`length` bytes long, 0: unknown)."""
        first, last = start // self.block_size, (start + size - 1) // self.block_size
        parts = [self.block(path, length, i) for i in range(first, last + 1)]
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        lo = start - first * self.block_size
        return data[lo : lo + size]


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
