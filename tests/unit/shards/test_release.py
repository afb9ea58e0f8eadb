"""Opening and committing releases; the side tables."""

from __future__ import annotations

import hashlib
import os
import uuid

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shardgen import build_release

from synshard.shards.manifest import Manifest
from synshard.shards.release import commit_manifest, open_release, write_table
from synshard.errors import SynshardError
from synshard.transforms.schema import REJECT_SCHEMA


def test_open_release_on_local_disk(tmp_path) -> None:
    manifest = build_release(fsspec.filesystem("file"), str(tmp_path))
    release = open_release(str(tmp_path))
    assert release.manifest == manifest
    files = release.files()
    assert files[0] == str(tmp_path / "manifest.json")
    assert str(tmp_path / manifest.tables["rejects"]["path"]) in files
    assert len(files) == 1 + 2 + 2 * len(manifest.shards)  # each shard and its index
    assert all(os.path.exists(f) for f in files)


def test_files_include_build_json_when_present(tmp_path) -> None:
    build_release(fsspec.filesystem("file"), str(tmp_path))
    (tmp_path / "build.json").write_text("{}")
    assert str(tmp_path / "build.json") in open_release(str(tmp_path)).files()


def test_shard_filters(tmp_path) -> None:
    build_release(fsspec.filesystem("file"), str(tmp_path))
    release = open_release(f"file://{tmp_path}")
    every = release.shards()
    assert every == list(release.manifest.shards) and len(every) > 6
    val = release.shards(split="val", format="parquet")
    assert val and all(e.split == "val" and e.format == "parquet" for e in val)
    assert len(release.shards(synset="n02084071")) == sum(e.synset == "n02084071" for e in every)
    assert release.shards(synset="n00000000") == []


def test_memory_filesystem_release() -> None:
    root = f"/rel-{uuid.uuid4().hex}"
    manifest = build_release(fsspec.filesystem("memory"), root)
    release = open_release(f"memory://{root}")
    assert release.manifest == manifest
    assert all(f.startswith(f"memory://{root}/") for f in release.files())


def test_missing_release_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(SynshardError, match="no committed release at"):
        open_release(str(tmp_path / "nothing-here"))


def test_commit_is_atomic_on_local_disk(tmp_path, monkeypatch) -> None:
    fs = fsspec.filesystem("file")
    old = build_release(fs, str(tmp_path))
    before = (tmp_path / "manifest.json").read_bytes()
    new = Manifest(**{**old.__dict__, "name": "replacement"})

    def crash(*args, **kwargs):
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk went away"):
        commit_manifest(fs, str(tmp_path), new)
    assert (tmp_path / "manifest.json").read_bytes() == before  # old commit intact
    tables = sorted(t["path"] for t in new.tables.values())
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == sorted(
        ["manifest.json", *tables])  # no temp file left  # fmt: skip
    monkeypatch.undo()
    commit_manifest(fs, str(tmp_path), new)
    assert open_release(str(tmp_path)).manifest.name == "replacement"
    assert oct((tmp_path / "manifest.json").stat().st_mode & 0o777) == oct(0o644)


def test_write_table_is_deterministic_and_described(tmp_path) -> None:
    fs = fsspec.filesystem("file")
    rows = [{"source": f"/s/{i}.jpg", "stage": "decode", "reason": "truncated"} for i in range(5)]
    table = pa.Table.from_pylist(rows)  # loose schema: cast to REJECT_SCHEMA on write
    a = write_table(fs, str(tmp_path / "a"), "rejects", table)
    b = write_table(fs, str(tmp_path / "b"), "rejects", table)
    name = a["path"]
    data = (tmp_path / "a" / name).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert a == b == {"path": f"rejects-{digest[:8]}.parquet", "rows": 5, "bytes": len(data),
                      "sha256": digest}  # fmt: skip
    assert data == (tmp_path / "b" / name).read_bytes()
    back = pq.read_table(tmp_path / "a" / name)
    assert back.schema.equals(REJECT_SCHEMA, check_metadata=False)
    assert back["source"].to_pylist() == [r["source"] for r in rows]


def test_write_table_refuses_a_table_without_required_columns(tmp_path) -> None:
    from synshard.shards.layout import ShardError

    with pytest.raises(ShardError, match="'reason'"):
        write_table(fsspec.filesystem("file"), str(tmp_path), "rejects",
                    pa.table({"source": ["x"], "stage": ["decode"]}))  # fmt: skip


def test_a_large_conflicts_table_is_written_a_row_group_per_slice(tmp_path, monkeypatch) -> None:
    from synshard.shards import release
    from synshard.shards.tables import CONFLICT_SCHEMA

    monkeypatch.setitem(release.SLICED, "conflicts", 4)
    n, fs = 10, fsspec.filesystem("file")
    plain = pa.table({f.name: pa.array([f"{f.name}{i % 3}" for i in range(n)]) if
                      f.type == pa.string() else pa.array(range(n), f.type) for f in CONFLICT_SCHEMA})
    encoded = plain.set_column(0, "key", plain["key"].dictionary_encode())
    a = write_table(fs, str(tmp_path / "a"), "conflicts", encoded)
    b = write_table(fs, str(tmp_path / "b"), "conflicts", plain)
    assert a == b and a["rows"] == n
    meta = pq.ParquetFile(tmp_path / "a" / a["path"]).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [4, 4, 2]
    assert pq.read_table(tmp_path / "a" / a["path"]).equals(plain.cast(CONFLICT_SCHEMA))
    small = write_table(fs, str(tmp_path / "c"), "conflicts", plain.slice(0, 4))
    monkeypatch.setitem(release.SLICED, "conflicts", 1 << 16)
    assert write_table(fs, str(tmp_path / "d"), "conflicts", plain.slice(0, 4)) == small


def test_a_local_side_table_is_the_file_an_object_store_gets(tmp_path) -> None:
    """On a local disk the table is written into a temporary file and named from its hash
    there; elsewhere its bytes are made in memory and put. The same file either way, and no
    temporary file is left; Arrow's default pool is the one in use before."""
    local, memory = fsspec.filesystem("file"), fsspec.filesystem("memory")
    rows = [{"source": f"/s/{i}.jpg", "stage": "decode", "reason": "truncated"} for i in range(50)]
    table = pa.Table.from_pylist(rows)
    pool = pa.default_memory_pool()
    a = write_table(local, str(tmp_path / "a"), "rejects", table)
    root = f"/side-{uuid.uuid4().hex}"
    b = write_table(memory, root, "rejects", table)
    assert pa.default_memory_pool().backend_name == pool.backend_name
    assert a == b
    assert (tmp_path / "a" / a["path"]).read_bytes() == memory.cat_file(f"{root}/{b['path']}")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [a["path"]]


def test_a_failed_local_side_table_leaves_no_file(tmp_path, monkeypatch) -> None:
    from synshard.shards import release

    def fail(sink, name, table):
        sink.write(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(release, "_write_parquet", fail)
    pool = pa.default_memory_pool()
    with pytest.raises(OSError, match="disk full"):
        write_table(fsspec.filesystem("file"), str(tmp_path), "rejects",
                    pa.table({"source": ["x"], "stage": ["decode"], "reason": ["r"]}))
    assert list(tmp_path.iterdir()) == []
    assert pa.default_memory_pool().backend_name == pool.backend_name
