"""Exact dedup settles its groups at once (one sort over every single-synset group) with the
decisions of the row-by-row rules (`_settle_group`, applied here to a plain group-by): the
same rows kept, the same duplicates with the same survivors and kinds, the same label-conflict
rejects; for a table, for the build's row view (`Accepted`), for hex and binary hashes."""
from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from synshard.builder.decide.rows import Accepted
from synshard.transforms import dedup
from synshard.transforms.options import DedupOptions
from synshard.transforms.schema import DUPLICATE_SCHEMA


def _table(n: int, seed: int, confidence: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    base = [hashlib.sha256(b"%d" % i).hexdigest() for i in range(n)]
    sha = list(base)
    for i in rng.choice(n, n // 3, replace=False):  # many copies, some groups of 3+
        sha[i] = base[rng.integers(n // 4)]
    sha[5] = None
    synset = [f"n{rng.integers(3 if i % 7 == 0 else 1):08d}" for i in range(n)]
    # copies mostly under their original's synset; some under another (label conflicts)
    first = {}
    for i, h in enumerate(sha):
        if h is not None and h in first and rng.random() < 0.8:
            synset[i] = synset[first[h]]
        first.setdefault(h, i)
    split = rng.choice(["train", "train", "val", "test"], n).tolist()
    cols = {
        "key": [f"k{i % (n // 2)}" for i in range(n)],
        "source": [f"/src/{rng.integers(n * 10):06d}.jpg" for i in range(n)],
        "synset": synset, "split": split, "sha256": sha,
    }
    if confidence:
        conf = rng.choice([0.2, 0.5, 0.9], n).astype(float).tolist()
        conf[3] = None
        cols["confidence"] = conf
    return pa.table(cols)


def _reference(meta: pa.Table, opts: DedupOptions):
    groups = defaultdict(list)
    for i, h in enumerate(meta["sha256"].to_pylist()):
        if h is not None:
            groups[h].append(i)
    keep = np.ones(meta.num_rows, dtype=bool)
    dup_rows, conflicts, reasons = [], [], []
    cols = [c for c in ("key", "source", "synset", "split", "confidence") if c in meta.column_names]
    for g in sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0]):
        idx = np.asarray(g)
        rows = dedup._rows(meta.select(cols).take(pa.array(idx)), idx)
        dedup._settle_group(rows, opts, keep, dup_rows, conflicts, reasons)
    return keep, pa.Table.from_pylist(dup_rows, schema=DUPLICATE_SCHEMA), conflicts, reasons


def _canon(dups: pa.Table) -> list[tuple]:
    return sorted(tuple(r.values()) for r in dups.to_pylist())


@pytest.mark.parametrize("policy", ["drop", "keep"])
@pytest.mark.parametrize("confidence", [False, True])
def test_vectorised_settlement_matches_the_row_rules(policy, confidence):
    opts = DedupOptions(label_conflict=policy)
    for seed in range(3):
        meta = _table(3000, seed, confidence)
        keep, dups, conflicts, reasons = _reference(meta, opts)
        assert {"exact", "cross-split"} <= set(dups["kind"].to_pylist())
        views = {
            "table": meta,
            "accepted": Accepted(pa.concat_tables([meta, meta]),
                                 np.arange(meta.num_rows, 2 * meta.num_rows)),
        }
        for name, view in views.items():
            got = dedup.exact_dedup(view, opts)
            assert np.array_equal(got.keep, keep), name
            assert _canon(got.duplicates) == _canon(dups), name
            assert sorted(zip(got.conflict_rows.tolist(), got.conflict_reasons)) == \
                sorted(zip(conflicts, reasons)), name


def test_binary_hashes_settle_like_hex():
    meta = _table(2000, 7, False)
    binary = [bytes.fromhex(h) if h else None for h in meta["sha256"].to_pylist()]
    as_bin = meta.set_column(4, "sha256", pa.array(binary, pa.binary(32)))
    hexed, got = dedup.exact_dedup(meta, DedupOptions()), dedup.exact_dedup(as_bin, DedupOptions())
    assert np.array_equal(hexed.keep, got.keep)
    assert _canon(hexed.duplicates) == _canon(got.duplicates)
    assert hexed.conflict_rows.tolist() == got.conflict_rows.tolist()
    blocks = dedup.sha256_block(as_bin["sha256"], chunk=333)
    want = [int(h[:16], 16) for h in meta["sha256"].to_pylist() if h]
    assert blocks[as_bin["sha256"].is_valid().to_numpy(zero_copy_only=False)].tolist() == want


def test_hex_block_of_upper_case_sliced_and_large_strings():
    values = [hashlib.sha256(bytes([i])).hexdigest() for i in range(50)]
    values[3] = values[3].upper()
    values[4] = None
    values[5] = "short"
    for typ in (pa.string(), pa.large_string()):
        array = pa.array(values, typ).slice(2)
        got = dedup.sha256_block(array, chunk=7)
        for v, b in zip(values[2:], got.tolist()):
            if v is not None and len(v) == 64:
                assert b == int(v[:16], 16)
