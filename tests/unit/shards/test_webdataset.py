"""WebDataset shards: exact round trips, byte-sized cutting, determinism, third-party readers."""

from __future__ import annotations

import hashlib
import itertools
import json
import tarfile
import uuid

import fsspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shardgen import make_records, record_groups

from synshard.shards.layout import ShardError
from synshard.shards.records import sample_from_record
from synshard.shards.webdataset import (
    iter_webdataset_shard,
    records_from_webdataset,
    tar_bytes,
    write_webdataset_shards,
)

MEM = fsspec.filesystem("memory")


def _root() -> str:
    return f"/wds-{uuid.uuid4().hex}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=record_groups(), target=st.integers(1, 8000))
def test_round_trip_is_exact(records: pa.Table, target: int) -> None:
    root = _root()
    entries = write_webdataset_shards(MEM, root, records, target)
    back = pa.concat_tables([records_from_webdataset(MEM, f"{root}/{e.path}") for e in entries])
    assert back.equals(records)
    assert back.schema.equals(records.schema)
    assert sum(e.samples for e in entries) == records.num_rows


@pytest.mark.parametrize("target", [15000, 20480, 30000])
def test_shards_are_cut_by_exact_bytes(target: int) -> None:
    records = make_records("n01440764", "train", [3000, 500, 7000, 40000, 100, 100, 2500, 9000] * 3)
    root = _root()
    entries = write_webdataset_shards(MEM, root, records, target)
    samples = [sample_from_record(r) for r in records.to_pylist()]
    start = 0
    for entry in entries:
        stop = start + entry.samples
        assert entry.bytes == MEM.size(f"{root}/{entry.path}")
        assert entry.bytes <= target or entry.samples == 1
        if stop < len(samples):  # one more sample would have passed the target
            assert len(tar_bytes(samples[start : stop + 1])) > target
        start = stop
    assert start == len(samples)
    assert any(e.samples == 1 and e.bytes > target for e in entries)  # the 40000-byte image
    assert len(entries) > 3


def test_names_carry_index_and_content_hash() -> None:
    records = make_records("n01440764", "val", [5000] * 6)
    root = _root()
    entries = write_webdataset_shards(MEM, root, records, 12000)
    for index, entry in enumerate(entries):
        data = MEM.cat_file(f"{root}/{entry.path}")
        digest = hashlib.sha256(data).hexdigest()
        assert entry.sha256 == digest
        assert entry.path == f"webdataset/val/n01440764/n01440764-{index:06d}-{digest[:8]}.tar"
        assert (entry.format, entry.split, entry.synset) == ("webdataset", "val", "n01440764")


def test_writing_twice_gives_identical_names_and_bytes() -> None:
    records = make_records("n02084071", "train", [700, 1200, 90, 4000, 33])
    a, b = _root(), _root()
    ea = write_webdataset_shards(MEM, a, records, 4096)
    eb = write_webdataset_shards(MEM, b, records, 4096)
    assert ea == eb
    for e in ea:
        assert MEM.cat_file(f"{a}/{e.path}") == MEM.cat_file(f"{b}/{e.path}")


def test_tar_headers_are_fixed_and_members_sorted(tmp_path) -> None:
    records = make_records("n01440764", "train", [10, 20, 30])
    fs = fsspec.filesystem("file")
    (entry,) = write_webdataset_shards(fs, str(tmp_path), records, 1 << 20)
    with tarfile.open(tmp_path / entry.path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and len(names) == 9
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o444)
        assert m.isreg()
    keys = records["key"].to_pylist()
    exts = {r["key"]: {"jpeg": "jpg"}.get(r["format"], r["format"]) for r in records.to_pylist()}
    assert {f"{k}.{exts[k]}" for k in keys} <= set(names)


def test_cls_and_json_members() -> None:
    records = make_records("n01440764", "train", [10, 20])
    root = _root()
    (entry,) = write_webdataset_shards(MEM, root, records, 1 << 20)
    rows = records.to_pylist()
    for sample, row in zip(iter_webdataset_shard(MEM, f"{root}/{entry.path}"), rows):
        assert sample["cls"] == b"3"
        meta = json.loads(sample["json"])
        assert "image" not in meta and meta["key"] == row["key"] == sample["__key__"]
        assert list(meta) == sorted(meta)
        assert b" " not in sample["json"].replace(b"resize,encode", b"")  # compact


def test_readable_by_the_webdataset_library(tmp_path) -> None:
    webdataset = pytest.importorskip("webdataset")
    records = make_records("n01440764", "train", [100, 2000, 30, 4000, 500])
    fs = fsspec.filesystem("file")
    entries = write_webdataset_shards(fs, str(tmp_path), records, 5000)
    assert len(entries) > 1
    urls = [str(tmp_path / e.path) for e in entries]
    got = list(
        itertools.chain.from_iterable(webdataset.WebDataset(u, shardshuffle=False) for u in urls)
    )
    rows = records.to_pylist()
    assert [s["__key__"] for s in got] == [r["key"] for r in rows]
    for sample, row in zip(got, rows):
        ext = {"jpeg": "jpg"}.get(row["format"], row["format"])
        assert sample[ext] == row["image"]
        assert int(sample["cls"]) == row["label"]
        assert json.loads(sample["json"])["sha256"] == row["sha256"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.take([1, 0, 2]),  # not sorted by key
        lambda t: pa.concat_tables([t, make_records("n09999999", "train", [5])]),  # two synsets
        lambda t: t.slice(0, 0),  # empty
    ],
)
def test_bad_groups_are_refused(mutate) -> None:
    records = make_records("n01440764", "train", [10, 20, 30])
    with pytest.raises(ShardError):
        write_webdataset_shards(MEM, _root(), mutate(records), 1000)


def test_malformed_tar_is_a_shard_error() -> None:
    root = _root()
    MEM.pipe_file(f"{root}/bad.tar", b"not a tar at all" * 100)
    with pytest.raises(ShardError):
        list(iter_webdataset_shard(MEM, f"{root}/bad.tar"))


def test_longest_allowed_key_fits_a_single_ustar_header() -> None:
    key = "n" * 80
    records = make_records("n01440764", "train", [10]).set_column(0, "key", pa.array([key]))
    records = records.cast(make_records("n01440764", "train", [10]).schema)
    root = _root()
    (entry,) = write_webdataset_shards(MEM, root, records, 1 << 20)
    (sample,) = iter_webdataset_shard(MEM, f"{root}/{entry.path}")
    assert sample["__key__"] == key
    with pytest.raises(ShardError, match="bad key"):
        write_webdataset_shards(
            MEM,
            root,
            records.set_column(0, "key", pa.array(["n" * 81])).cast(records.schema),
            1 << 20,
        )


def _tarfile_bytes(samples: list[dict]) -> bytes:
    """The tar `tarfile` writes for the samples with the writer's fixed headers (the reference)."""
    import io

    from synshard.shards.webdataset import _members, _tar_info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT, encoding="utf-8") as tar:
        for sample in samples:
            for name, data in _members(sample):
                tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))
    return buf.getvalue()


@settings(max_examples=80, deadline=None)
@given(samples=st.lists(st.fixed_dictionaries({
    "__key__": st.from_regex(r"[A-Za-z0-9_-]{1,80}", fullmatch=True),
    "jpg": st.one_of(st.binary(max_size=2000), st.sampled_from([b"x" * 511, b"y" * 512, b"z" * 513])),
    "cls": st.from_regex(r"[0-9]{1,6}", fullmatch=True).map(str.encode),
    "json": st.binary(max_size=700)}), max_size=5))
def test_hand_built_headers_are_the_bytes_tarfile_writes(samples: list[dict]) -> None:
    assert tar_bytes(samples) == _tarfile_bytes(samples)


def test_header_of_long_or_non_ascii_names_matches_tarfile() -> None:
    from synshard.shards.webdataset import TAR_FORMAT, _tar_info, _ustar_header

    for name in ["é" * 50, "a" * 100, "ü" * 40 + ".json", "n01440764_" + "f" * 16 + ".jpg"]:
        ref = _tar_info(name, 77).tobuf(TAR_FORMAT, "utf-8", "surrogateescape")
        assert _ustar_header(name.encode(), 77) == ref


def test_headers_made_together_are_the_bytes_of_each_made_alone() -> None:
    import numpy as np

    from synshard.shards.webdataset import _ustar_header, _ustar_headers

    names = [b"n01440764_" + b"f" * 16 + b".jpg", "é".encode() * 50, b"a" * 100, b"x",
             "ü".encode() * 40 + b".json"]
    sizes = np.array([0, 511, 512, 8 ** 11 - 1, 123456789], np.int64)
    expected = b"".join(_ustar_header(n, int(s)) for n, s in zip(names, sizes))
    assert _ustar_headers(names, sizes) == expected
    long_name = b"p" * 60 + b"/" + b"q" * 50  # past ustar's name field: tarfile's prefix split
    with_long = np.append(sizes, 5)
    assert _ustar_headers(names + [long_name], with_long) == expected + _ustar_header(long_name, 5)
    assert _ustar_headers([], np.array([], np.int64)) == b""


def test_a_local_shard_has_the_bytes_of_the_in_memory_one(tmp_path) -> None:
    records = make_records("n01440764", "train", [3000 + 517 * i for i in range(40)])
    local = fsspec.filesystem("file")
    on_disk = write_webdataset_shards(local, str(tmp_path), records, 50_000)
    in_memory = write_webdataset_shards(MEM, _root(), records, 50_000)
    assert [e.sha256 for e in on_disk] == [e.sha256 for e in in_memory] and len(on_disk) > 1
    for entry in on_disk:
        data = (tmp_path / entry.path).read_bytes()
        assert len(data) == entry.bytes and hashlib.sha256(data).hexdigest() == entry.sha256
    assert records_from_webdataset(local, str(tmp_path / on_disk[0].path)).num_rows > 0
