"""decide/memory.py: while the heap is bounded (the gather, decide), Arrow allocates from the C
heap on glibc; afterwards the pool in use before is back."""
from __future__ import annotations

import pyarrow as pa
import pytest

from synshard.builder.decide import memory


def test_the_pool_is_the_c_heap_while_bounded_and_the_previous_one_after():
    if memory._glibc() is None:
        pytest.skip("not glibc: the pool is left as it is")
    before = pa.default_memory_pool().backend_name
    memory.bound_heap()
    memory.bound_heap()  # (the gather, then decide: bounded twice, unbounded once)
    try:
        assert pa.default_memory_pool().backend_name == "system"
        held = pa.array(range(1000))
        memory.release()
    finally:
        memory.unbound_heap()
    assert pa.default_memory_pool().backend_name == before
    assert held.to_pylist()[-1] == 999  # (a buffer of the C heap's pool outlives the switch)
    memory.unbound_heap()  # (a second time: nothing more to put back)
    assert pa.default_memory_pool().backend_name == before
