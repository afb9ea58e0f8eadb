"""transforms/takes.py: rows of a many-chunk table taken per group of chunks equal
`Table.take`, in any order, for string, dictionary and fixed-width columns."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from synshard.transforms import takes
from synshard.transforms.takes import take_column, take_rows


def _table(n: int = 100, chunk: int = 7) -> pa.Table:
    whole = pa.table({
        "s": [f"row{i}" if i % 11 else None for i in range(n)],
        "d": pa.array([f"p{i % 5}" for i in range(n)]).dictionary_encode(),
        "x": pa.array(np.arange(n, dtype=np.int32)),
    })
    return pa.Table.from_batches(whole.to_batches(max_chunksize=chunk)).unify_dictionaries()


@pytest.mark.parametrize("group", [1, 10, 32, 1 << 18])
def test_takes_per_group_of_chunks_equal_table_take(monkeypatch, group):
    monkeypatch.setattr(takes, "GROUP_ROWS", group)
    table = _table()
    assert table["s"].num_chunks > 10
    rng = np.random.default_rng(group)
    for rows in (np.sort(rng.choice(100, 30, replace=False)), rng.integers(0, 100, 50),
                 np.array([99, 0, 0, 42]), np.arange(100)):
        got = take_rows(table, rows)
        assert got.to_pylist() == table.take(pa.array(rows)).to_pylist()
    assert take_column(table["s"], np.empty(0, np.int64)).to_pylist() == []


def test_a_row_out_of_bounds_is_one_error():
    with pytest.raises(IndexError, match="out of bounds"):
        take_column(_table()["x"], np.array([3, 100]))
