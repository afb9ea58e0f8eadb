"""Random access by key: exact bytes for every key, ranged reads only, clear errors."""
from __future__ import annotations

import dataclasses

import fsspec
import pytest
from counting import CountingFS
from shardgen import build_release, make_records

from synshard.shards.access import KeyNotFound, KeyReader, get_many, get_records, synset_of
from synshard.shards.layout import ShardError
from synshard.shards.manifest import Manifest
from synshard.shards.parquet import read_parquet_shard
from synshard.shards.release import Release, commit_manifest, open_release
from synshard.shards.webdataset import iter_webdataset_shard, write_webdataset_shards

MEM = fsspec.filesystem("memory")


def _release(tmp_path, **kw) -> Release:
    root = str(tmp_path / "rel")
    build_release(fsspec.filesystem("file"), root, **kw)
    return open_release(root)


def _members(release: Release) -> dict[str, dict]:
    """Every sample of the WebDataset shards, read by streaming the whole tars (the reference)."""
    out = {}
    for e in release.shards(format="webdataset"):
        for sample in iter_webdataset_shard(release.fs, f"{release.root}/{e.path}"):
            out[sample["__key__"]] = sample
    return out


def test_get_many_returns_every_member_exactly(tmp_path) -> None:
    release = _release(tmp_path)
    reference = _members(release)
    got = get_many(release.root, list(reference))
    assert list(got) == list(reference)
    for key, sample in reference.items():
        image = next(v for k, v in sample.items() if k in ("jpg", "webp", "png"))
        assert got[key] == image
    records = get_records(release.root, list(reference))
    for key, meta in records.items():
        assert meta["key"] == key and "image" not in meta
        assert str(meta["label"]).encode() == reference[key]["cls"]


def test_reads_a_small_fraction_of_the_shard(tmp_path) -> None:
    root = str(tmp_path / "big")
    fs = fsspec.filesystem("file")
    records = make_records("n01440764", "train", [20_000] * 60)
    entries = write_webdataset_shards(fs, root, records, target_bytes=10**9)
    manifest = Manifest(name="big", tool_version="0", config={}, classes=[], counts={},
                        shards=tuple(entries), tables={}, fingerprint="0",
                        accounting={"inputs": 60, "accepted": 60, "rejected": 0, "duplicates": 0})
    commit_manifest(fs, root, manifest)
    counting = CountingFS(fs)
    release = dataclasses.replace(open_release(root), fs=counting)
    key = records["key"][17].as_py()
    got = get_many(release, [key])
    assert got[key] == records["image"][17].as_py()
    shard_bytes = entries[0].bytes
    index_bytes = entries[0].index_bytes
    assert counting.bytes_read == 20_000 + index_bytes
    assert counting.bytes_read < shard_bytes / 20
    assert {p for p, _ in counting.reads} == {f"{root}/{entries[0].index}", f"{root}/{entries[0].path}"}


def test_only_the_keys_synset_indexes_are_read(tmp_path) -> None:
    release = _release(tmp_path)
    counting = CountingFS(release.fs)
    reader = KeyReader(dataclasses.replace(release, fs=counting))
    key = next(iter(_members(release)))
    reader.images([key])
    read = {p for p, _ in counting.reads}
    assert all(synset_of(key) in p for p in read)
    assert not any("/parquet/" in p for p in read)  # WebDataset preferred


def test_parquet_only_release(tmp_path) -> None:
    release = _release(tmp_path)
    parquet_only = dataclasses.replace(release, manifest=dataclasses.replace(
        release.manifest, shards=tuple(release.shards(format="parquet"))))
    reference = {}
    for e in parquet_only.shards():
        table = read_parquet_shard(release.fs, f"{release.root}/{e.path}")
        reference.update({r["key"]: r for r in table.to_pylist()})
    reader = KeyReader(parquet_only)
    samples = reader.samples(list(reference))
    for key, row in reference.items():
        assert samples[key]["image"] == row["image"]
        assert samples[key]["meta"] == {k: v for k, v in row.items() if k != "image"}


def test_unknown_and_hostile_keys(tmp_path) -> None:
    release = _release(tmp_path)
    known = next(iter(_members(release)))
    with pytest.raises(KeyNotFound, match="n01440764_ffffffffffffffff") as exc:
        get_many(release, [known, "n01440764_ffffffffffffffff", "n99999999_0000000000000000"])
    assert exc.value.keys == ["n01440764_ffffffffffffffff", "n99999999_0000000000000000"]
    assert isinstance(exc.value, KeyError)
    for bad in ("../manifest", "n01440764/../../x_1", "", "n01440764.jpg_1", "nounderscore"):
        with pytest.raises(ShardError, match="bad key"):
            get_many(release, [bad])


def test_release_without_indexes_says_so(tmp_path) -> None:
    release = _release(tmp_path)
    old = tuple(dataclasses.replace(e, index=None, index_bytes=None, index_sha256=None)
                for e in release.manifest.shards)
    stripped = dataclasses.replace(release, manifest=dataclasses.replace(release.manifest, shards=old))
    with pytest.raises(ShardError, match="has no index"):
        get_many(stripped, [next(iter(_members(release)))])
