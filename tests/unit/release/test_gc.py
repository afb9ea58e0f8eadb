"""gc on a local release: unreferenced shards, staging debris and temp manifests go, nothing else."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import fsspec
import pytest

from synshard.release.gc import NotARelease, collect_garbage
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
    "index/webdataset/train/n01440764/n01440764-000000-deadbeef.tar.idx.parquet": b"i" * 5,
    # killed writes' temporary files (shards.atomic), beside a shard and beside the side tables
    "webdataset/train/n01440764/.part-k2j4.tmp": b"p" * 7,
    ".part-9x1a.tmp": b"q" * 3,
}
KINDS = dict(zip(DEBRIS, ["shard", "shard", "staging", "staging", "manifest", "table", "index",
                          "partial", "partial"]))


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
    assert sorted(dry.listing()) == sorted(f"{KINDS[p]:9s}{p}" for p in DEBRIS)
    assert dry.summary().endswith("would remove 2 unreferenced shard files, 1 shard index, "
                                  "1 side table, 1 temporary manifest, 2 partial writes, "
                                  "2 staging files, 0 unfinished uploads (209 bytes)")
    report = collect_garbage(str(release))
    assert report.shards == dry.shards and report.staging == dry.staging
    assert "removed 2 unreferenced shard files, 1 shard index, 1 side table, 1 temporary " \
        "manifest, 2 partial writes, 2 staging files, 0 unfinished uploads" in report.summary()
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


@pytest.mark.parametrize("folder", ["lost-manifest", "own-webdataset", "missing"])
def test_gc_refuses_what_is_not_a_committed_release(release, tmp_path, folder):
    root = {"lost-manifest": release, "own-webdataset": tmp_path / "mine",
            "missing": tmp_path / "nothing"}[folder]
    if folder == "lost-manifest":
        _add_debris(release)
        (release / "manifest.json").unlink()
    if folder == "own-webdataset":
        (root / "webdataset").mkdir(parents=True)
        (root / "webdataset" / "shard-000000.tar").write_bytes(b"mine")
    before = _snapshot(root) if root.exists() else {}
    for dry_run in (True, False):
        with pytest.raises(NotARelease, match="is not a committed release .no manifest.json."):
            collect_garbage(str(root), dry_run=dry_run)
    assert (_snapshot(root) if root.exists() else {}) == before  # every file survives, no lock


def test_shards_a_temp_manifest_or_a_build_journal_lists_are_kept(release):
    import json

    from synshard.shards.manifest import Manifest

    manifest = Manifest.from_json((release / "manifest.json").read_bytes())
    entry = manifest.shards[0]
    moved = dict(entry.to_dict(), path=entry.path.replace(".tar", "-resumed.tar")
                 if entry.path.endswith(".tar") else entry.path + ".resumed")
    (release / moved["path"]).write_bytes(b"finished by a killed build")
    journal = release / "_staging/0123456789abcdef/_shards/n01440764.json"
    journal.parent.mkdir(parents=True)
    journal.write_text(json.dumps([moved]))
    temp_entry = dict(entry.to_dict(), path=entry.path.rsplit("/", 1)[0] + "/temp-commit.tar")
    (release / temp_entry["path"]).write_bytes(b"listed by a complete temp manifest")
    temp = manifest.to_dict()
    temp["shards"] = [*temp["shards"], temp_entry]
    (release / ".manifest-9999.tmp").write_text(json.dumps(temp))
    report = collect_garbage(str(release))
    assert moved["path"] not in report.shards and temp_entry["path"] not in report.shards
    assert (release / moved["path"]).exists() and (release / temp_entry["path"]).exists()
    assert ".manifest-9999.tmp" in report.shards  # the temp file itself is debris


def test_an_unreadable_manifest_stops_gc(release):
    _add_debris(release)
    (release / "manifest.json").write_text("{not json")
    before = _snapshot(release)
    with pytest.raises(ManifestError):
        collect_garbage(str(release))
    assert _snapshot(release) == before


