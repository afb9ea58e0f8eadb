"""transforms/heap.py: a transforming process keeps its freed buffers instead of faulting them in
again (each case in a fresh interpreter: malloc's settings are per process and this one's are
already whatever its history made them)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

# Three 1 MiB blocks at once, touched and freed, 60 times. After the first round glibc's adaptive
# thresholds are 1 MiB (mmap) and 2 MiB (trim): the 3 MiB freed at the top of the heap are given
# back every round and faulted in again in the next, as a transform's buffers are per image.
CHURN = r"""
import resource, sys
from transforms.heap import keep_heap
kept = keep_heap() if sys.argv[1] == "keep" else None
def churn():
    blocks = [bytearray(1 << 20) for _ in range(3)]
    for b in blocks:
        b[::4096] = b"\1" * len(b[::4096])
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(60):
    churn()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> list[str]:
    base = {k: v for k, v in os.environ.items()
            if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         env={**base, **(env or {})}, check=True)
    return out.stdout.split()


def test_kept_heap_stops_the_faults_of_each_round():
    _, plain = _run(CHURN, "plain")
    kept, faults = _run(CHURN, "keep")
    assert kept == "True"
    # 60 rounds x 768 pages given back and faulted in again by default; kept: next to none
    assert int(plain) > 60 * 256
    assert int(faults) < int(plain) / 10


def test_a_users_malloc_settings_are_left_alone():
    for env in ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"},
                {"MALLOC_TRIM_THRESHOLD_": "131072"}):
        kept, faults = _run(CHURN, "keep", env=env)
        assert kept == "False"
        assert int(faults) > 60 * 256  # the user's small trim threshold still rules


def test_transform_batch_keeps_the_heap():
    code = ("from transforms import heap\nfrom transforms.process import transform_batch\n"
            "from transforms.options import TransformOptions\n"
            "from transforms.schema import CANDIDATE_SCHEMA\n"
            "print(heap._kept)\n"
            "transform_batch(CANDIDATE_SCHEMA.empty_table(), TransformOptions())\n"
            "print(heap._kept)\n")
    assert _run(code) == ["None", "True"]
