"""Exact dedup's sort-based grouping (64-bit hash blocks, whole hashes compared among the
candidates) finds exactly the groups of a plain group-by on the whole hash."""
from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np
import pyarrow as pa

from synshard.transforms.dedup import _duplicate_groups, sha256_block


def _hashes(n: int, seed: int) -> list[str | None]:
    rng = np.random.default_rng(seed)
    base = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    out: list[str | None] = list(base)
    for i in rng.choice(n, n // 5, replace=False):  # copies of other rows
        out[i] = base[rng.integers(n)]
    for i in rng.choice(n, 6, replace=False):  # the same 16-digit block, another hash
        out[i] = base[0][:16] + hashlib.sha256(b"x" + bytes([i % 256])).hexdigest()[16:]
    out[3], out[7] = None, None  # a missing hash is nobody's copy
    out[11] = out[12] = "not-hex"
    return out


def _plain(values: list[str | None]) -> list[list[int]]:
    groups = defaultdict(list)
    for i, v in enumerate(values):
        if v is not None:
            groups[v].append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def test_block_groups_match_a_plain_group_by():
    for seed in range(3):
        values = _hashes(2000, seed)
        table = pa.table({"sha256": pa.array(values, pa.string())})
        groups = [g.tolist() for g in _duplicate_groups(table)]
        assert groups == _plain(values)


def test_block_is_the_first_16_hex_digits_across_chunks():
    values = [hashlib.sha256(bytes([i])).hexdigest() for i in range(10)]
    column = pa.chunked_array([values[:4], values[4:]])
    assert sha256_block(column, chunk=3).tolist() == [int(v[:16], 16) for v in values]
