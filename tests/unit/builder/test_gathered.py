"""The compact form of the gathered metadata (sha256 as 32 raw bytes, synset and staged_path
dictionary-encoded) decides exactly as the plain META_SCHEMA columns do."""
from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest
from coremeta import meta_row, meta_table

from synshard.builder.decide.steps import decide
from synshard.config import build_config
from synshard.shards import staging
from synshard.shards.staging import (DECIDE_COLUMNS, decide_schema, gathered, sha256_bytes,
                                     sha256_hex)

LADYBUG, SEASHORE = "n02165456", "n09428293"


def test_sha256_round_trips_through_32_bytes_with_nulls_and_slices():
    hexes = [hashlib.sha256(bytes([i])).hexdigest() for i in range(6)]
    column = pa.array([hexes[0], None, hexes[2], hexes[3], None, hexes[5]])
    raw = sha256_bytes(column)
    assert raw.type == pa.binary(32) and raw.null_count == 2
    assert raw[2].as_py() == bytes.fromhex(hexes[2])
    assert sha256_hex(raw).to_pylist() == column.to_pylist()
    assert sha256_hex(raw.slice(1, 3)).to_pylist() == column.slice(1, 3).to_pylist()
    assert sha256_hex(pa.chunked_array([raw, raw.slice(4)])).to_pylist() == \
        column.to_pylist() + column.slice(4).to_pylist()
    with pytest.raises(ValueError, match="not a hex sha256"):
        sha256_bytes(pa.array(["abc"]))


def test_hex_is_made_a_bounded_number_of_rows_at_a_time(monkeypatch):
    monkeypatch.setattr(staging, "HEX_ROWS", 2)
    hexes = [hashlib.sha256(bytes([i])).hexdigest() for i in range(7)]
    column = [hexes[0], None, *hexes[2:]]
    raw = sha256_bytes(pa.array(column))
    assert sha256_hex(raw).to_pylist() == column
    assert sha256_hex(pa.chunked_array([raw.slice(1), raw])).to_pylist() == column[1:] + column
    keys = staging.derive_keys(pa.array(["n1"] * 7), raw).to_pylist()
    assert keys == [h and f"n1_{h[:16]}" for h in column]


def _rows():
    rows = [meta_row(f"img{i}", (LADYBUG, SEASHORE)[i % 3 == 0]) for i in range(12)]
    rows.append(meta_row("copy", LADYBUG, sha=rows[1]["sha256"]))  # an exact copy
    rows.append(meta_row("conflict", SEASHORE, sha=rows[2]["sha256"]))  # a label conflict
    rows.append(meta_row("near", LADYBUG, phash=rows[4]["phash"] ^ 3))  # a near copy
    rows.append(meta_row("broken", reason="truncated"))  # read, hashed, keyed, undecodable
    rows[-1]["key"] = f"{rows[-1]['synset']}_{rows[-1]['sha256'][:16]}"
    rows.append(meta_row("lost", reason="http 404"))  # never read: no hash, no key
    rows[-1]["sha256"] = None
    for i, row in enumerate(rows):
        if row["staged_path"]:
            row["staged_path"] = f"/rel/_staging/x/{row['synset']}/{i % 4}.parquet"
            row["staged_row"] = i
    return rows


def test_the_gathered_form_decides_exactly_as_the_plain_columns():
    plain = meta_table(_rows()).select(list(DECIDE_COLUMNS))
    compact = gathered(plain)
    assert compact.schema == decide_schema()
    assert compact.nbytes < plain.nbytes
    cfg = build_config({"sources": ["/data"], "out": "/rel", "near_radius": 4,
                        "val_fraction": 0.25})
    a, b = decide(plain, cfg), decide(compact, cfg)
    assert a.accounting == b.accounting
    assert a.accounting["duplicates"] >= 2 and a.accounting["rejected"] >= 3
    for name in ("rejects", "duplicates", "conflicts"):
        assert getattr(a, name).equals(getattr(b, name)), name
    kept = b.kept
    for name in ("staged_path", "synset"):  # kept dictionary-encoded from the gathered form
        assert pa.types.is_dictionary(kept.schema.field(name).type), name
        kept = kept.set_column(kept.schema.get_field_index(name), name,
                               kept[name].cast(pa.string()))
    assert a.kept.cast(kept.schema).equals(kept)
    assert a.classes == b.classes


def test_the_kept_order_is_key_order_for_synsets_that_prefix_each_other():
    """Key order without making keys (steps._key_order): `n1_...` sorts after `n12...` and
    before `n1a...` as strings do, across tasks gathered one at a time."""
    names = ["n1", "n12", "n1a", "n0", "n1"]
    rows = [meta_row(f"img{i}", names[i % len(names)]) for i in range(40)]
    for i, row in enumerate(rows):
        row["staged_path"] = f"/rel/_staging/x/{row['synset']}/{i % 3}.parquet"
        row["staged_row"] = i
    plain = meta_table(rows).select(list(DECIDE_COLUMNS))
    tasks = [gathered(plain.slice(0, 17)), gathered(plain.slice(17))]
    compact = pa.concat_tables(tasks).unify_dictionaries()
    cfg = build_config({"sources": ["/data"], "out": "/rel", "near_radius": "none"})
    a, b = decide(plain, cfg), decide(compact, cfg)
    assert b.kept["key"].to_pylist() == sorted(a.kept["key"].to_pylist())
    assert a.kept["key"].to_pylist() == b.kept["key"].to_pylist()
    assert a.kept["staged_row"].to_pylist() == b.kept["staged_row"].to_pylist()


def test_a_journal_row_the_gather_cannot_read_is_one_error_naming_the_task_file(tmp_path):
    from synshard.builder.staging import Staging
    from synshard.errors import SynshardError

    store = Staging.for_build(str(tmp_path / "rel"), {}, "0" * 64, 256)
    row = meta_row("a")
    row["key"] = f"{LADYBUG}_not-its-hash"  # a journal this version did not write
    store.write_task_meta(0, meta_table([row]))
    with pytest.raises(SynshardError, match=r"staging journal .*task-00000000\.parquet: a "
                                            r"staged key is not .*remove .* to build from"):
        store.gather_metas(1)


def test_the_gather_in_groups_is_the_tasks_in_order(tmp_path, monkeypatch):
    """Task files combined a group at a time (one chunk per group, dictionaries unified across
    groups) give the rows of every task in task order, as gathering them one by one does."""
    from synshard.builder import staging as builder_staging
    from synshard.builder.staging import Staging

    monkeypatch.setattr(builder_staging, "GATHER_GROUP", 3)
    store = Staging.for_build(str(tmp_path / "rel"), {}, "0" * 64, 256)
    rows = _rows()
    tasks = [meta_table(rows[i:i + 2]) for i in range(0, len(rows), 2)]  # 9 tasks, 3 groups
    for i, task in enumerate(tasks):
        store.write_task_meta(i, task)
    got = store.gather_metas(len(tasks))
    assert got.schema == decide_schema() and got["synset"].num_chunks == 3
    want = pa.concat_tables([gathered(t.select(list(DECIDE_COLUMNS))) for t in tasks])
    def values(column: pa.ChunkedArray) -> list:
        return (column.cast(pa.string()) if pa.types.is_dictionary(column.type)
                else column).to_pylist()

    for name in got.column_names:
        assert values(got[name]) == values(want[name]), name
    assert store.gather_metas(0).num_rows == 0


def test_the_kept_table_made_in_batches_is_the_same_table(monkeypatch):
    """decide/rows.py TAKE_BATCH: the kept table of a big build is taken a batch at a time
    (keys derived per batch): the same rows, order and values as in one take."""
    from synshard.builder.decide import rows as rows_module

    compact = gathered(meta_table(_rows()).select(list(DECIDE_COLUMNS)))
    cfg = build_config({"sources": ["/data"], "out": "/rel", "near_radius": 4,
                        "val_fraction": 0.25})
    whole = decide(compact, cfg)
    monkeypatch.setattr(rows_module, "TAKE_BATCH", 3)
    batched = decide(compact, cfg)
    assert batched.kept.num_rows == whole.kept.num_rows > 3
    assert batched.kept.equals(whole.kept)
    assert batched.kept["label"].num_chunks == batched.kept["staged_row"].num_chunks == 1
