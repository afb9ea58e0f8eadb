"""Shard indexes: exact tar offsets, Parquet row positions, determinism, manifest and verify."""
from __future__ import annotations

import io
import json
import tarfile
import uuid

import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from shardgen import build_release, make_records, record_groups

from synshard.shards.index import index_path, read_index
from synshard.shards.layout import ShardEntry, ShardError
from synshard.shards.manifest import Manifest
from synshard.shards.parquet import write_parquet_shards
from synshard.shards.verify import verify_release
from synshard.shards.webdataset import write_webdataset_shards

MEM = fsspec.filesystem("memory")


def _root() -> str:
    return f"/idx-{uuid.uuid4().hex}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=record_groups())
def test_tar_index_points_at_every_member(records) -> None:
    root = _root()
    for entry in write_webdataset_shards(MEM, root, records, target_bytes=4000):
        data = MEM.cat_file(f"{root}/{entry.path}")
        index = {r["key"]: r for r in read_index(MEM, root, entry).to_pylist()}
        assert len(index) == entry.samples
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = tar.getmembers()
        for info in members:
            key, ext = info.name.split(".", 1)
            part = ext if ext in ("cls", "json") else "image"
            row = index[key]
            assert (row[f"{part}_offset"], row[f"{part}_size"]) == (info.offset_data, info.size)
            assert row["offset"] <= info.offset < row["offset"] + row["size"]
            if part == "image":
                assert row["image_ext"] == ext
        # a sample's [offset, offset + size) is a run of whole tar blocks: a valid sub-tar
        for row in index.values():
            chunk = data[row["offset"]: row["offset"] + row["size"]]
            with tarfile.open(fileobj=io.BytesIO(chunk + b"\0" * 1024)) as sub:
                assert {m.name.split(".")[0] for m in sub.getmembers()} == {row["key"]}


def test_parquet_index_rows_and_row_groups() -> None:
    root = _root()
    records = make_records("n01440764", "train", [5000] * 9)
    # several row groups per shard, at a size passed explicitly (a patched module constant would
    # not reach the default argument, bound when the function was defined)
    entries = write_parquet_shards(MEM, root, records, target_bytes=10**9, row_group_bytes=12_000)
    (entry,) = entries
    pf = pq.ParquetFile(io.BytesIO(MEM.cat_file(f"{root}/{entry.path}")))
    assert pf.num_row_groups > 1
    index = read_index(MEM, root, entry).to_pylist()
    assert [r["key"] for r in index] == sorted(records["key"].to_pylist())
    assert {r["row_group"] for r in index} == set(range(pf.num_row_groups))
    for row in index:
        group = pf.read_row_group(row["row_group"], columns=["key"])
        assert group["key"][row["row"]].as_py() == row["key"]


def test_indexes_are_deterministic_and_listed() -> None:
    records = make_records("n01440764", "val", [300, 700, 1200])
    a, b = _root(), _root()
    for root in (a, b):
        write_webdataset_shards(MEM, root, records, 2000)
        write_parquet_shards(MEM, root, records, 2000)
    ea = write_webdataset_shards(MEM, a, records, 2000) + write_parquet_shards(MEM, a, records, 2000)
    for entry in ea:
        assert entry.index == index_path(entry.path)
        assert entry.index.startswith("index/") and entry.index.endswith(".idx.parquet")
        assert MEM.cat_file(f"{a}/{entry.index}") == MEM.cat_file(f"{b}/{entry.index}")
        assert entry.index_bytes == len(MEM.cat_file(f"{a}/{entry.index}"))


def test_manifest_reads_old_entries_and_rejects_partial_index_fields() -> None:
    manifest = build_release(MEM, _root())
    data = json.loads(manifest.to_json())
    assert all("index" in e for e in data["shards"])
    assert Manifest.from_dict(data) == manifest
    old = dict(data, shards=[{k: v for k, v in e.items() if not k.startswith("index")}
                             for e in data["shards"]])
    old_manifest = Manifest.from_dict(old)
    assert all(e.index is None for e in old_manifest.shards)
    assert "index" not in old_manifest.to_dict()["shards"][0]  # old form stays old
    partial = dict(data["shards"][0])
    del partial["index_sha256"]
    with pytest.raises(ShardError, match="index fields"):
        ShardEntry.from_dict(partial)
    hostile = dict(data["shards"][0], index="../../etc/passwd")
    with pytest.raises(ShardError, match="bad release path"):
        ShardEntry.from_dict(hostile)


def test_verify_checks_index_files() -> None:
    root = _root()
    manifest = build_release(MEM, root)
    assert verify_release(f"memory://{root}") == []
    entry = manifest.shards[0]
    data = bytearray(MEM.cat_file(f"{root}/{entry.index}"))
    data[-20] ^= 0xFF
    MEM.pipe_file(f"{root}/{entry.index}", bytes(data))
    MEM.rm(f"{root}/{manifest.shards[1].index}")
    MEM.pipe_file(f"{root}/index/webdataset/train/stale.tar.idx.parquet", b"x")
    problems = {(p.kind, p.path) for p in verify_release(f"memory://{root}")}
    assert ("altered", entry.index) in problems
    assert ("missing", manifest.shards[1].index) in problems
    assert ("extra", "index/webdataset/train/stale.tar.idx.parquet") in problems
    quick = {(p.kind, p.path) for p in verify_release(f"memory://{root}", quick=True)}
    assert ("missing", manifest.shards[1].index) in quick


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=record_groups())
def test_index_columns_are_the_rows(records) -> None:
    """The writers' columnar index (no dict per sample) holds the rows' values and bytes."""
    from synshard.shards.index import (PARQUET_INDEX_SCHEMA, TAR_INDEX_SCHEMA, index_bytes,
                                       parquet_index_columns, parquet_index_rows, tar_index_rows)
    from synshard.shards.records import check_group
    from synshard.shards.webdataset import _SampleLayout, _sample_members, _tar

    records, _, _ = check_group(records)
    # the writer's layout, from the members' sizes alone: the rows' values and bytes, for the
    # whole tar and for a run of its samples (a shard of several)
    samples = _sample_members(records)
    layout = _SampleLayout.of(samples, records["format"].to_pylist())
    for start, stop in ((0, len(samples)), (len(samples) // 2, len(samples))):
        _, members = _tar(samples[start:stop])
        rows = tar_index_rows(members)
        cols = layout.index_columns(samples, start, stop)
        assert {n: list(np.asarray(v).tolist()) for n, v in cols.items()} == \
            {n: [r[n] for r in rows] for n in TAR_INDEX_SCHEMA.names}
        assert index_bytes(cols, TAR_INDEX_SCHEMA) == index_bytes(rows, TAR_INDEX_SCHEMA)
    keys = records["key"].to_pylist()[::-1]
    groups = [len(keys) // 2, len(keys) - len(keys) // 2]
    rows, cols = parquet_index_rows(keys, groups), parquet_index_columns(keys, groups)
    assert cols == {n: [r[n] for r in rows] for n in PARQUET_INDEX_SCHEMA.names}
    assert index_bytes(cols, PARQUET_INDEX_SCHEMA) == index_bytes(rows, PARQUET_INDEX_SCHEMA)


def test_tar_index_rows_refuse_malformed_samples(monkeypatch) -> None:
    from synshard.shards.index import tar_index_rows
    from synshard.shards.webdataset import _SampleLayout
    from synshard.transforms.schema import IMAGE_EXTENSIONS

    with pytest.raises(ShardError, match="unexpected or repeated"):
        tar_index_rows([("k.jpg", 0, 1), ("k.png", 1024, 1), ("k.cls", 2048, 1)])
    with pytest.raises(ShardError, match="lacks"):
        tar_index_rows([("k.jpg", 0, 1), ("k.cls", 1024, 1)])
    # a format whose extension sorts before `cls` would put its image first: refused, not
    # indexed at the wrong offsets
    monkeypatch.setitem(IMAGE_EXTENSIONS, "avif", "avif")
    with pytest.raises(ShardError, match="sort after 'cls'"):
        _SampleLayout.of([[(b"k.avif", b"x"), (b"k.cls", b"1"), (b"k.json", b"{}")]], ["avif"])
