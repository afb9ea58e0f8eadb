"""Parquet read from open Python files never goes through `pyarrow.dataset` (see shards.pyfiles)."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synshard.shards.pyfiles import read_parquet

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("synshard", "shards", "ingest", "transforms", "synsets")


def test_read_parquet_reads_columns_and_dictionaries() -> None:
    buf = io.BytesIO()
    pq.write_table(pa.table({"key": ["a", "b"], "n": [1, 2]}), buf)
    assert read_parquet(io.BytesIO(buf.getvalue())).to_pydict() == {"key": ["a", "b"], "n": [1, 2]}
    keys = read_parquet(pa.BufferReader(buf.getvalue()), columns=["key"], read_dictionary=["key"])
    assert keys.column_names == ["key"] and pa.types.is_dictionary(keys.schema.field("key").type)


def test_no_module_hands_an_open_file_to_the_dataset_reader() -> None:
    """`pq.read_table(f)` on a Python file can abort the interpreter at exit (exit 134)."""
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bpq\.read_table\(|\bread_csv\((f|fh|file)\b", line)
    ]
    assert offenders == []
