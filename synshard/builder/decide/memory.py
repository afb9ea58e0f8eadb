"""Handing the decisions' freed Arrow pages back to the system.

pyarrow's default pool (mimalloc) keeps freed pages a while, and NumPy's arrays (the C heap)
cannot reuse them: at 10M rows (bench/bench_decide.py) the driver's RSS was 0.6-0.9 GB above
what the gathered table held once read, ~0.5 GB of it freed pages that `release_unused` hands
back. So decide calls `release` before it starts and after its large steps (a few ms each).
(Arrow's jemalloc pool for decide's own buffers was tried: the same peaks within the noise.)
"""
from __future__ import annotations

import pyarrow as pa


def release() -> None:
    """Hand the Arrow pool's freed pages back to the system now."""
    pa.default_memory_pool().release_unused()
