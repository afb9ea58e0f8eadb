"""Handing the driver's freed memory back to the system: Arrow's pool and the C heap.

pyarrow's default pool (mimalloc) keeps freed pages a while, and NumPy's arrays (the C heap)
cannot reuse them: at 10M rows (bench/bench_decide.py) the driver's RSS was 0.6-0.9 GB above
what the gathered table held once read, ~0.5 GB of it freed pages that `release_unused` hands
back. So decide calls `release` before it starts and after its large steps (a few ms each).
(Arrow's jemalloc pool for decide's own buffers was tried: the same peaks within the noise.)

NumPy's arrays live in glibc's heap, which keeps freed memory too: glibc raises its mmap
threshold each time a large mmapped block is freed (up to 32 MiB), so after the first few
temporaries every NumPy array of a few MB comes from the heap and its pages stay with the
process once freed (on the 1M scale build's gathered table, near dedup's steps held 60-130 MiB
more RSS than their arrays; bench/replay_decide.py). `bound_heap` pins the threshold at glibc's
own initial value (blocks from 128 KiB are mmapped, so freeing one unmaps it) for the gather
and decide, and `release` trims what the heap still holds free. After decide, `unbound_heap` sets
the threshold where glibc's own rise ends (32 MiB on 64-bit): a pinned 128 KiB would mmap, and
fault in afresh, every decoded image of a later build's reads in this process (a library user's,
or an in-process build's threads). All of these do nothing where the C library is not glibc.

While the heap is bounded, Arrow allocates from the C heap too (`pa.system_memory_pool()`, not
mimalloc): mimalloc's `release_unused` hands back only wholly free segments, and a gather of many
small task files leaves most of them partly used. On the 1M scale build's journal
(bench/replay_decide.py on a copy of its staging folder) the gathered table held 104 MiB in
Arrow's pool for +172 MiB of RSS with mimalloc, +111 MiB with the C heap, and decide's peak fell
576 -> 484 MiB (the same time). `unbound_heap` puts back the pool that was in use before.
"""
from __future__ import annotations

import contextlib

import pyarrow as pa

from synshard.transforms.heap import M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX, system_pool
from synshard.transforms.heap import glibc as _glibc

MMAP_THRESHOLD = 128 << 10  # glibc's initial value, kept (not raised as blocks are freed)


_POOLS: list[pa.MemoryPool] = []  # the pool in use before bound_heap, while it is bounded
_BOUND = contextlib.ExitStack()  # the system_pool switch, while it is bounded


def bound_heap() -> None:
    """Large C-heap blocks (from 128 KiB) are mmapped from now on in this process, and Arrow
    allocates from the C heap (see above)."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        if not _POOLS:
            _POOLS.append(_BOUND.enter_context(system_pool()))


def unbound_heap() -> None:
    """Only C-heap blocks from 32 MiB are mmapped from now on, and Arrow's pool is the one in
    use before `bound_heap` (decide is done: see above)."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
    if _POOLS:
        _POOLS.pop()
        _BOUND.close()  # the pool in use before is back


def release() -> None:
    """Hand the Arrow pools' freed pages, and the C heap's free memory, back to the system."""
    for pool in [*_POOLS, pa.default_memory_pool()]:  # (the one put aside by bound_heap too)
        pool.release_unused()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
