"""decide/rows.py: the accepted rows as row numbers into the gathered table, with the columns
the decisions set held beside them; every view equals filtering a copy of the table."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from synshard.builder.decide.rows import Accepted


def _meta() -> pa.Table:
    return pa.table({"key": [f"k{i}" for i in range(6)], "source": [f"/s/{i}" for i in range(6)],
                     "split": [None, "val", None, None, "train", None]})


def test_views_match_filtering_a_copy():
    meta = _meta()
    acc = Accepted(meta, np.array([0, 2, 3, 4, 5]))
    acc.set("split", pa.array(["a", "b", "c", "d", "e"]))
    acc.set("label", pa.array([10, 11, 12, 13, 14], pa.int32()))
    acc.keep(np.array([True, False, True, True, True]))
    assert acc.num_rows == 4 and acc.rows.tolist() == [0, 3, 4, 5]
    assert acc.column("key").to_pylist() == ["k0", "k3", "k4", "k5"]
    assert acc.column("split").to_pylist() == ["a", "c", "d", "e"]
    assert pa.types.is_dictionary(acc.extra["split"].type)  # held encoded, read back plain
    assert acc.column("split").type == acc.take([0], ["split"])["split"].type == pa.string()
    assert acc.table(["source", "label"]).to_pylist() == [
        {"source": "/s/0", "label": 10}, {"source": "/s/3", "label": 12},
        {"source": "/s/4", "label": 13}, {"source": "/s/5", "label": 14}]
    picked = acc.take(pa.array([3, 0]), ["key", "split", "label"])
    assert picked.column_names == ["key", "split", "label"]
    assert picked.to_pylist() == [{"key": "k5", "split": "e", "label": 14},
                                  {"key": "k0", "split": "a", "label": 10}]
    assert acc.where(pa.array([False, True, False, False]))["key"].to_pylist() == ["k3"]
    assert acc.take([1]).column_names == ["key", "source", "split", "label"]


def test_a_set_column_must_match_the_rows():
    acc = Accepted(_meta(), np.array([1, 2]))
    with pytest.raises(ValueError, match="3 values for 2 rows"):
        acc.set("split", pa.array(["a", "b", "c"]))


def test_a_large_take_goes_in_batches_and_equals_one_take(monkeypatch):
    """Above TAKE_BATCH rows a take is made a batch at a time: the same rows in the same order,
    each column one chunk (assembly takes them per synset) but those the caller lets stay in
    the batches' chunks."""
    from synshard.builder.decide import rows as rows_module

    n = 23
    meta = pa.concat_tables([pa.table({
        "source": [f"/s/{i}" for i in range(lo, lo + 8)],
        "staged_path": pa.array([f"/p/{i % 3}" for i in range(lo, lo + 8)]).dictionary_encode(),
        "staged_row": pa.array(range(lo, lo + 8), pa.int32())}) for lo in range(0, 24, 8)])
    acc = Accepted(meta, np.arange(n))
    acc.set("label", pa.array(range(100, 100 + n), pa.int32()))
    order = np.random.default_rng(3).permutation(n)
    whole = acc.take(order)
    monkeypatch.setattr(rows_module, "TAKE_BATCH", 5)
    batched = acc.take(order, chunked=["source"])
    assert batched.equals(whole)
    assert batched["source"].to_pylist() == [f"/s/{i}" for i in order]
    assert batched["source"].num_chunks > 1
    for name in ("staged_path", "staged_row", "label"):
        assert batched[name].num_chunks == 1, name
