"""verify_release: finds flipped bytes, missing, extra and miscounted shards."""

from __future__ import annotations

import json
import uuid

import fsspec
import pytest
from shardgen import build_release

from synshard.shards.verify import Problem, verify_release


@pytest.fixture
def release(tmp_path):
    manifest = build_release(fsspec.filesystem("file"), str(tmp_path))
    return tmp_path, manifest


def _kinds(problems: list[Problem]) -> set[tuple[str, str]]:
    return {(p.kind, p.path) for p in problems}


@pytest.mark.parametrize("quick", [False, True])
def test_intact_release_has_no_problems(release, quick) -> None:
    root, _ = release
    assert verify_release(str(root), quick=quick) == []


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_flipped_byte_is_altered_in_full_mode_only(release, fmt) -> None:
    root, manifest = release
    entry = next(e for e in manifest.shards if e.format == fmt)
    path = root / entry.path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert _kinds(verify_release(str(root))) == {("altered", entry.path)}
    assert verify_release(str(root), quick=True) == []  # same size: quick cannot tell


def test_altered_table_is_found(release) -> None:
    root, manifest = release
    name = manifest.tables["rejects"]["path"]
    data = bytearray((root / name).read_bytes())
    data[10] ^= 0xFF
    (root / name).write_bytes(bytes(data))
    assert _kinds(verify_release(str(root))) == {("altered", name)}


@pytest.mark.parametrize("quick", [False, True])
def test_missing_shard(release, quick) -> None:
    root, manifest = release
    entry = manifest.shards[-1]
    (root / entry.path).unlink()
    assert _kinds(verify_release(str(root), quick=quick)) == {("missing", entry.path)}


@pytest.mark.parametrize("quick", [False, True])
def test_truncated_shard_is_a_size_problem(release, quick) -> None:
    root, manifest = release
    entry = manifest.shards[0]
    path = root / entry.path
    path.write_bytes(path.read_bytes()[:-100])
    assert _kinds(verify_release(str(root), quick=quick)) == {("size", entry.path)}


@pytest.mark.parametrize("quick", [False, True])
def test_extra_shard(release, quick) -> None:
    root, _ = release
    extra = root / "webdataset" / "train" / "n01440764" / "n01440764-000099-deadbeef.tar"
    extra.write_bytes(b"debris")
    stray = root / "parquet" / "split=val" / "synset=n09999999" / "part-000000-00000000.parquet"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"debris")
    (root / "notes.txt").write_text("not a shard folder: not reported")
    assert _kinds(verify_release(str(root), quick=quick)) == {
        ("extra", "webdataset/train/n01440764/n01440764-000099-deadbeef.tar"),
        ("extra", "parquet/split=val/synset=n09999999/part-000000-00000000.parquet"),
    }


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_count_mismatch_from_an_edited_manifest(release, fmt) -> None:
    root, manifest = release
    data = json.loads((root / "manifest.json").read_text())
    shard = next(s for s in data["shards"] if s["format"] == fmt)
    shard["samples"] += 1
    (root / "manifest.json").write_text(json.dumps(data))
    problems = verify_release(str(root))
    assert ("count", shard["path"]) in _kinds(problems)
    assert ("count", "manifest.json") in _kinds(problems)  # counts no longer add up either
    assert {p.kind for p in problems} == {"count"}
    assert ("count", shard["path"]) not in _kinds(verify_release(str(root), quick=True))


def test_memory_filesystem() -> None:
    fs = fsspec.filesystem("memory")
    root = f"/verify-{uuid.uuid4().hex}"
    manifest = build_release(fs, root)
    uri = f"memory://{root}"
    assert verify_release(uri) == [] and verify_release(uri, quick=True) == []
    entry = manifest.shards[2]
    data = bytearray(fs.cat_file(f"{root}/{entry.path}"))
    data[-3] ^= 0x40
    fs.pipe_file(f"{root}/{entry.path}", bytes(data))
    fs.rm(f"{root}/{manifest.shards[3].path}")
    assert _kinds(verify_release(uri)) == {
        ("altered", entry.path),
        ("missing", manifest.shards[3].path),
    }


def test_table_row_count_mismatch(release) -> None:
    root, _ = release
    data = json.loads((root / "manifest.json").read_text())
    data["tables"]["rejects"]["rows"] = 2
    (root / "manifest.json").write_text(json.dumps(data))
    assert _kinds(verify_release(str(root))) == {("count", data["tables"]["rejects"]["path"])}


def test_corrupt_tar_header_is_altered(release) -> None:
    root, manifest = release
    entry = next(e for e in manifest.shards if e.format == "webdataset")
    path = root / entry.path
    data = bytearray(path.read_bytes())
    data[600:1024] = b"\xff" * 424  # the second member's data / header area
    data[0:100] = b"\x00" * 100  # first header's name: the tar no longer parses as ours
    path.write_bytes(bytes(data))
    problems = verify_release(str(root))
    assert _kinds(problems) == {("altered", entry.path)}


def test_cli_debris_is_a_warning_and_a_real_problem_still_fails(release, capsys) -> None:
    """`synshard verify`: files the manifest does not list (an --overwrite's replaced shards)
    leave the release intact: exit 0 with the gc hint; an altered shard still exits 1."""
    from synshard.cli import main

    root, manifest = release
    (root / "webdataset" / "train" / "n01440764" / "n01440764-000099-deadbeef.tar").write_bytes(b"x")
    assert main(["verify", str(root)]) == 0
    out = capsys.readouterr().out
    assert "verify: ok" in out and f"synshard gc {root}" in out and "1 file(s) not in the release" in out
    entry = manifest.shards[0]
    (root / entry.path).write_bytes(b"altered")
    assert main(["verify", str(root), "--quick"]) == 1
    err = capsys.readouterr().err
    assert "1 problem(s)" in err and f"synshard gc {root}" in err
