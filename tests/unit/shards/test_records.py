"""The column-at-a-time JSON of a record's metadata (records.metadata_jsons) is the row-at-a-time
one (records.metadata_json) byte for byte."""
from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from shardgen import make_records, record_groups

from synshard.shards.records import metadata_json, metadata_jsons
from synshard.transforms.schema import RECORD_SCHEMA


def _row_by_row(records: pa.Table) -> list[bytes]:
    return [metadata_json(row) for row in records.to_pylist()]


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(record_groups(max_rows=12))
def test_column_json_is_the_row_json(records: pa.Table) -> None:
    assert metadata_jsons(records) == _row_by_row(records)


def test_escapes_non_ascii_nulls_and_big_integers() -> None:
    records = make_records("n01440764", "train", [3, 5, 7, 9])
    odd = ['quote " back \\ slash', "tab\tnewline\n\x00\x1f", "caf\u00e9 \u72ac \U0001f415",
           "100% %s %%"]
    records = records.set_column(records.schema.get_field_index("source"), "source",
                                 pa.array(odd, pa.string()))
    got = metadata_jsons(records)
    assert got == _row_by_row(records)
    assert "\u72ac".encode() in got[2]  # UTF-8 as it is, not \\u escapes (ensure_ascii=False)
    assert b'"phash":18446744073709551614' in b"".join(got)  # 2**64 - 2: a plain JSON integer


def test_an_empty_table_has_no_rows() -> None:
    assert metadata_jsons(RECORD_SCHEMA.empty_table()) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_float_is_refused_as_the_encoder_refuses_it(bad: float) -> None:
    records = make_records("n01440764", "train", [3])
    records = records.set_column(records.schema.get_field_index("confidence"), "confidence",
                                 pa.array([bad], pa.float32()))
    with pytest.raises(ValueError, match="not JSON compliant"):
        _row_by_row(records)
    with pytest.raises(ValueError, match="not JSON compliant"):
        metadata_jsons(records)
