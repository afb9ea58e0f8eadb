"""gc on a local release: unreferenced shards, staging debris and temp manifests go, nothing else."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import fsspec
import pytest

from synshard.release.gc import collect_garbage
from synshard.release.lock import BuildLock, LockHeld
from synshard.shards.manifest import ManifestError
from synshard.shards.verify import verify_release

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "shards"))
from shardgen import build_release  # noqa: E402

DEBRIS = {
    "webdataset/train/n01440764/n01440764-000000-deadbeef.tar": b"x" * 100,
    "parquet/split=val/synset=n01440764/part-000009-cafef00d.parquet": b"y" * 50,
    "_staging/0123456789abcdef/n01440764/aa.parquet": b"z" * 30,
    "_staging/0123456789abcdef/journal.jsonl": b"{}\n",
    ".manifest-1234.tmp": b"{",
    "rejects-0badc0de.parquet": b"t" * 10,  # an earlier build's side table
}


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def release(tmp_path) -> Path:
    root = tmp_path / "rel"
    build_release(fsspec.filesystem("file"), str(root))
    return root


def _add_debris(root: Path) -> None:
    for rel, data in DEBRIS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_clean_release_has_nothing_to_collect(release):
    before = _snapshot(release)
    report = collect_garbage(str(release))
    assert report.committed and not (report.shards or report.staging or report.uploads)
    assert _snapshot(release) == before


def test_debris_is_listed_by_dry_run_and_removed_by_gc(release):
    committed = _snapshot(release)
    _add_debris(release)
    assert {p.kind for p in verify_release(str(release))} == {"extra"}
    dry = collect_garbage(str(release), dry_run=True)
    assert set(dry.shards) | set(dry.staging) == set(DEBRIS)
    assert dry.bytes == sum(len(v) for v in DEBRIS.values())
    assert set(DEBRIS) <= set(_snapshot(release))  # dry run changed nothing
    report = collect_garbage(str(release))
    assert report.shards == dry.shards and report.staging == dry.staging
    assert "removed 4 unreferenced shard files, 2 staging files" in report.summary()
    assert _snapshot(release) == committed  # every committed file untouched, all debris gone
    assert verify_release(str(release)) == []
    assert not (release / "_staging" / "0123456789abcdef").exists()


def test_gc_is_refused_while_a_build_holds_the_lock(release):
    _add_debris(release)
    with BuildLock(str(release), heartbeat=False):
        for dry_run in (True, False):
            with pytest.raises(LockHeld, match="writing to"):
                collect_garbage(str(release), dry_run=dry_run)
    assert set(DEBRIS) <= set(_snapshot(release))
    assert len(collect_garbage(str(release)).staging) == 2


def test_without_a_manifest_every_shard_file_is_debris(release):
    (release / "manifest.json").unlink()
    shard_files = {p for p in _snapshot(release)
                   if p.startswith(("webdataset/", "parquet/", "index/")) or "-" in p}
    report = collect_garbage(str(release))
    assert not report.committed and set(report.shards) == shard_files
    assert not any(p.startswith(("webdataset/", "parquet/", "index/")) for p in _snapshot(release))


def test_an_unreadable_manifest_stops_gc(release):
    _add_debris(release)
    (release / "manifest.json").write_text("{not json")
    before = _snapshot(release)
    with pytest.raises(ManifestError):
        collect_garbage(str(release))
    assert _snapshot(release) == before


def test_missing_release_path_is_empty(tmp_path):
    report = collect_garbage(str(tmp_path / "nothing"), dry_run=True)
    assert not report.committed and report.bytes == 0
