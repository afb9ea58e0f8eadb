"""near_dedup: survivors within split/synset, eval beats train, cross-synset keep/drop."""
from __future__ import annotations

import pyarrow as pa
import pytest

from synshard.transforms.neardup_policy import CONFLICT_SCHEMA, near_dedup
from synshard.transforms.schema import DUPLICATE_SCHEMA

H = 0x0123_4567_89AB_CDEF


def meta(rows):
    cols = ["key", "synset", "split", "width", "height", "phash", "source"]
    data = {c: [r[k] for r in rows] for k, c in enumerate(cols)}
    schema = pa.schema([("key", pa.string()), ("synset", pa.string()), ("split", pa.string()),
                        ("width", pa.int32()), ("height", pa.int32()), ("phash", pa.uint64()),
                        ("source", pa.string())])
    return pa.table(data, schema=schema)


def row(key, synset="n01", split="train", size=(100, 100), phash=H):
    return (key, synset, split, size[0], size[1], phash, f"src/{key}")


def dups(result):
    return {r["key"]: (r["kept_key"], r["kind"], r["distance"])
            for r in result.duplicates.to_pylist()}


def test_within_split_and_synset_keeps_highest_resolution_then_smallest_key():
    t = meta([row("c", size=(50, 50)), row("b", phash=H ^ 0b11), row("a", phash=H ^ 0b1),
              row("z", phash=~H & (2**64 - 1))])
    res = near_dedup(t, radius=4)
    assert res.keep.tolist() == [False, False, True, True]
    assert dups(res) == {"b": ("a", "near", 1), "c": ("a", "near", 1)}
    assert res.duplicates.schema == DUPLICATE_SCHEMA
    assert res.conflicts.num_rows == 0


def test_eval_copy_survives_over_larger_train_copy():
    t = meta([row("big", size=(900, 900)), row("v", split="val", size=(10, 10), phash=H ^ 1)])
    res = near_dedup(t, radius=4)
    assert res.keep.tolist() == [False, True]
    assert dups(res) == {"big": ("v", "cross-split", 1)}


def test_outside_radius_is_kept():
    t = meta([row("a"), row("b", phash=H ^ 0b11111)])
    assert near_dedup(t, radius=4).keep.tolist() == [True, True]
    assert near_dedup(t, radius=5).keep.tolist() == [True, False]


def test_cross_synset_default_keeps_both_and_lists_the_pair():
    t = meta([row("a", "n01"), row("b", "n02", phash=H ^ 0b111), row("c", "n02", phash=H ^ 0b11)])
    res = near_dedup(t, radius=4)
    assert res.keep.tolist() == [True, True, False]  # b and c are near within n02
    assert dups(res) == {"c": ("b", "near", 1)}
    assert res.conflicts.cast(CONFLICT_SCHEMA).schema.names == res.conflicts.schema.names
    assert [(r["key"], r["other_key"], r["distance"]) for r in res.conflicts.to_pylist()] == [
        ("a", "b", 3)]  # c's pair with a is listed through its survivor b, true distance


def test_cross_synset_drop_records_label_conflicts():
    t = meta([row("a", "n01", size=(200, 200)), row("b", "n02", phash=H ^ 0b111)])
    res = near_dedup(t, radius=4, near_conflicts="drop")
    assert res.keep.tolist() == [True, False]
    assert dups(res) == {"b": ("a", "label-conflict", 3)}
    assert res.conflicts.num_rows == 0


def test_many_identical_blank_images_across_synsets():
    rows = [row(f"k{i:04d}", f"n{i % 3}", phash=0) for i in range(3000)]
    res = near_dedup(meta(rows), radius=4)
    assert res.keep.sum() == 3  # one survivor per synset
    assert res.conflicts.num_rows == 3  # one pair per pair of synset survivors
    assert set(r["kind"] for r in res.duplicates.to_pylist()) == {"near"}


def test_null_phash_rows_are_kept_and_order_does_not_matter():
    rows = [row("a"), row("b", phash=H ^ 1), row("n", phash=None), row("v", split="val",
                                                                        phash=H ^ 2)]
    res = near_dedup(meta(rows), radius=4)
    assert res.keep.tolist() == [False, False, True, True]
    perm = [3, 2, 1, 0]
    res2 = near_dedup(meta([rows[k] for k in perm]), radius=4)
    assert res2.keep.tolist() == res.keep[perm].tolist()
    assert res2.duplicates.equals(res.duplicates)


def test_bad_policy_and_missing_columns():
    with pytest.raises(ValueError):
        near_dedup(meta([row("a")]), 4, near_conflicts="maybe")
    with pytest.raises(ValueError):
        near_dedup(pa.table({"key": ["a"]}), 4)


def test_empty_table():
    res = near_dedup(meta([]), radius=4)
    assert res.keep.size == 0 and res.duplicates.num_rows == 0


def test_conflicts_come_in_key_then_other_key_order_once_per_pair():
    # Keys deliberately out of row order; every row near every other, each in its own synset.
    keys = ["m", "c", "x", "a", "q", "b", "k"]
    t = meta([row(k, synset=f"n{i:02d}", phash=H ^ (1 << i)) for i, k in enumerate(keys)])
    res = near_dedup(t, radius=4)
    pairs = [(r["key"], r["other_key"]) for r in res.conflicts.to_pylist()]
    assert pairs == sorted(pairs)  # as sort_by(key, other_key) would give
    assert len(pairs) == len(set(pairs)) == len(keys) * (len(keys) - 1) // 2
    assert all(a < b for a, b in pairs)
    assert res.conflicts.cast(CONFLICT_SCHEMA).schema.names == res.conflicts.schema.names


def test_encoded_conflicts_write_the_same_side_table_as_plain_ones(tmp_path):
    import fsspec

    from synshard.shards.release import write_table

    keys = ["m", "c", "x", "a"]
    t = meta([row(k, synset=f"n{i:02d}", phash=H ^ (1 << i)) for i, k in enumerate(keys)])
    found = near_dedup(t, radius=4).conflicts
    assert pa.types.is_dictionary(found.schema.field("source").type)
    fs = fsspec.filesystem("file")
    encoded = write_table(fs, str(tmp_path / "a"), "conflicts", found)
    plain = write_table(fs, str(tmp_path / "b"), "conflicts", found.cast(CONFLICT_SCHEMA))
    assert encoded == plain and encoded["rows"] == 6
