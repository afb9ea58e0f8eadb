"""Paths, names and the byte-size cutting rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synshard.shards.layout import (
    ShardEntry,
    ShardError,
    check_name,
    check_relpath,
    cut_by_bytes,
    hive_values,
    parquet_shard_path,
    webdataset_shard_path,
)


@settings(deadline=None)  # a loaded 2-core machine is slow, not wrong
@given(st.lists(st.integers(0, 5000), max_size=60), st.integers(1, 20000), st.integers(0, 700))
def test_cut_by_bytes_covers_in_order_and_is_maximal(sizes, target, overhead) -> None:
    def finish(n: int) -> int:
        return n + overhead

    runs = cut_by_bytes(sizes, target, finish)
    assert [i for a, b in runs for i in range(a, b)] == list(range(len(sizes)))
    for a, b in runs:
        assert b > a
        assert finish(sum(sizes[a:b])) <= target or b - a == 1
        if b < len(sizes):
            assert finish(sum(sizes[a : b + 1])) > target


def test_cut_by_bytes_refuses_a_non_positive_target() -> None:
    with pytest.raises(ShardError):
        cut_by_bytes([1], 0)


def test_paths() -> None:
    sha = "0123456789abcdef" * 4
    assert webdataset_shard_path("train", "n01440764", 7, sha) == (
        "webdataset/train/n01440764/n01440764-000007-01234567.tar"
    )
    path = parquet_shard_path("val", "n01440764", 12, sha)
    assert path == "parquet/split=val/synset=n01440764/part-000012-01234567.parquet"
    assert hive_values(path) == {"split": "val", "synset": "n01440764"}


@pytest.mark.parametrize("bad", ["", "a.b", "a/b", "..", "x=y", "é", "a" * 81, "a b"])
def test_unsafe_names_are_refused(bad) -> None:
    with pytest.raises(ShardError):
        check_name("synset", bad)


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "a//b", "./a", "a\\b", ".."])
def test_relpaths_must_stay_inside(bad) -> None:
    with pytest.raises(ShardError):
        check_relpath(bad)


def test_shard_entry_dict_round_trip() -> None:
    entry = ShardEntry(
        "webdataset/t/n1/n1-000000-abcdef01.tar", "webdataset", "t", "n1", 3, 99, "ab"
    )
    assert ShardEntry.from_dict(entry.to_dict()) == entry
    with pytest.raises(ShardError, match="lacks 'sha256'"):
        ShardEntry.from_dict({k: v for k, v in entry.to_dict().items() if k != "sha256"})
    with pytest.raises(ShardError, match="non-negative"):
        ShardEntry.from_dict({**entry.to_dict(), "bytes": True})


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    from synshard.shards.layout import ShardError, check_name

    with pytest.raises(ShardError, match="bad key"):
        check_name("key", "n01440764_abc\n")
