"""The C heap of a process that transforms images: freed image buffers kept for the next image.

glibc's malloc serves a block above `M_MMAP_THRESHOLD` with its own mmap, and gives the free top of
its heap back to the kernel once more than `M_TRIM_THRESHOLD` is free there. By default both start
small (128 KiB) and grow only with the blocks a process has already freed, so whether a process
keeps its buffers depends on its history. A transform allocates and frees a few MB per image (the
decoded image, its resized copy, the codec's working memory); in a process whose thresholds stayed
low, that memory goes back to the kernel after every image and is faulted in again for the next.

Measured on ImageNet-like photos (`transform_batch`, shorter:256, q90, 2,000 photos, one fresh
process each): 158-215 minor page faults an image and 0.76-0.88 s of kernel time with the
defaults, 14-15 and 0.08-0.14 s with the thresholds below: 490-529 -> 572-655 images per CPU
second. Two kernels side by side on 12,000 photos: 34-105 faults an image with the defaults
(varying with each process's history), 6 with these.

`keep_heap` raises both thresholds once per process (32 MiB, glibc's own ceiling for its adaptive
mmap threshold, and twice that for the trim, as glibc's adaptive rule keeps them): a process then
holds at most 64 MiB of freed heap at its top, against repeated faults for every image. Settings a
user made (`GLIBC_TUNABLES` with a malloc tunable, or `MALLOC_*_` variables) are left as they are;
other C libraries are left alone.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import platform
from functools import cache
from typing import Iterator

import pyarrow as pa

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD_MAX = (4 << 20) * ctypes.sizeof(ctypes.c_long)  # glibc's ceiling: 32 MiB on 64-bit
MMAP_THRESHOLD = MMAP_THRESHOLD_MAX
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
_USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_",
                  "MALLOC_MMAP_MAX_")

_kept: bool | None = None  # this process's answer (a forked child inherits the heap's settings)


@cache
def glibc() -> ctypes.CDLL | None:
    """This process's glibc (`mallopt` typed, `malloc_trim`), or None under another C library.
    The one door to malloc's settings: builder/decide/memory.py uses it too."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc if hasattr(libc, "malloc_trim") else None


@contextlib.contextmanager
def system_pool() -> Iterator[pa.MemoryPool]:
    """Arrow allocates from the C library's malloc meanwhile (`pa.system_memory_pool()`), not
    from its default pool (mimalloc here), whose freed pages stay with the process; yields the
    pool in use before, which is put back after (on failure too). The pool is process-wide: a
    buffer outlives the switch, going back to the pool that made it. Used by the driver's
    gather and decide (builder/decide/memory.py) and its side-table writes (shards/release.py)."""
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield previous
    finally:
        pa.set_memory_pool(previous)


def keep_heap() -> bool:
    """Raise glibc's mmap and trim thresholds for this process, once; True if they are raised."""
    global _kept
    if _kept is None:
        _kept = _raise_thresholds()
    return _kept


def _raise_thresholds() -> bool:
    libc = glibc()
    if libc is None or _user_set():
        return False
    # mmap first: it is the one glibc may refuse (above its ceiling), and a refused call changes
    # nothing; either setting alone turns glibc's adaptation off and trims (measured: the trim
    # threshold alone 195 faults an image, so the pair or nothing)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _user_set() -> bool:
    return ("glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")
            or any(name in os.environ for name in _USER_SETTINGS))
