"""Rebuilding releases: an incremental build equals a full build of the union; takedowns remove
exactly what was listed and rewrite only the shards they touch."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import synshard
from synshard.cli.release import diff_releases
from synshard.shards.release import open_release

MOVED_FILES = ("n11939491/n11939491_15048.JPEG", "n11939491/n11939491_30352.JPEG")


def _build(sources, out, **opts):
    opts.setdefault("progress", False)
    return synshard.build([str(s) for s in sources], str(out), log=lambda m: None,
                          val_fraction=0.25, **opts)


def _records(uri) -> dict[str, dict]:
    release = open_release(str(uri))
    out = {}
    for e in release.shards(format="parquet"):
        for r in pq.read_table(release.uri(e.path), columns=["key", "label", "source"]).to_pylist():
            out[r["key"]] = {**r, "split": e.split, "synset": e.synset}
    return out


@pytest.fixture(scope="module")
def halves(sample_dir, tmp_path_factory):
    """old/: the sample without ladybug and two daisies; new/: exactly those."""
    root = tmp_path_factory.mktemp("halves")
    old, new = root / "old", root / "new"
    shutil.copytree(sample_dir, old, ignore=shutil.ignore_patterns("*.md"))
    shutil.move(str(old / "n02165456"), str(new / "n02165456"))
    for rel in MOVED_FILES:
        assert (old / rel).exists(), rel
        (new / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(old / rel), str(new / rel))
    return old, new


@pytest.fixture(scope="module")
def base(ray_local, halves, tmp_path_factory) -> Path:
    """The release of old/ that every rebuild here starts from (only read by the tests)."""
    out = tmp_path_factory.mktemp("base") / "base"
    _build([halves[0]], out, name="r")
    return out


def test_incremental_build_equals_full_build_of_the_union(ray_local, halves, base, tmp_path):
    old, new = halves
    incremental, full = tmp_path / "inc", tmp_path / "full"
    result = _build([new], incremental, base=str(base), name="r")
    _build([old, new], full, name="r")
    assert result.accounting["inputs"] == sum(1 for p in new.rglob("*") if p.is_file())
    inc, ful = _records(incremental), _records(full)
    assert inc == ful
    manifest_inc = open_release(str(incremental)).manifest
    manifest_full = open_release(str(full)).manifest
    assert manifest_inc.classes == manifest_full.classes
    assert manifest_inc.counts == manifest_full.counts
    # The same records give the same shard bytes, whether merged from the base or built whole.
    assert {e.path: e.sha256 for e in manifest_inc.shards} == \
           {e.path: e.sha256 for e in manifest_full.shards}


def test_takedown_removes_exactly_the_listed_images(ray_local, base, tmp_path):
    after = tmp_path / "after"
    before = _records(base)
    seashore = sorted(k for k, r in before.items() if r["synset"] == "n09428293")
    daisy = sorted(k for k, r in before.items() if r["synset"] == "n11939491")
    by_source = before[daisy[0]]["source"]
    listing = tmp_path / "takedown.txt"
    listing.write_text(f"# complaint 123\n{seashore[0]}\n{by_source}\n")
    result = _build([], after, base=str(base), remove=str(listing), name="r")
    assert result.accounting["inputs"] == 0
    removed = {seashore[0], daisy[0]}
    assert set(_records(after)) == set(before) - removed
    removals = open_release(str(after)).read_table("removals").to_pylist()
    assert {r["key"]: r["reason"] for r in removals} == {
        seashore[0]: "takedown: key listed", daisy[0]: "takedown: source listed"}
    diff = diff_releases(str(base), str(after))
    assert diff.images_removed == sorted(removed) and diff.images_added == []
    # Only the two touched synsets were rewritten; the others' shards are the base's files.
    old_shas = {e.path: e.sha256 for e in open_release(str(base)).manifest.shards}
    for e in open_release(str(after)).manifest.shards:
        if e.synset not in ("n09428293", "n11939491"):
            assert old_shas.get(e.path) == e.sha256, e.path
    build = json.loads((after / "build.json").read_text())
    assert build["stats"]["assembly"]["synsets_written"] == 2


def test_remove_like_and_exclude_subtree_on_a_base(ray_local, base, tmp_path):
    from PIL import Image

    after = tmp_path / "after"
    before = _records(base)
    lakeside = sorted(k for k, r in before.items() if r["synset"] == "n09332890")
    target = before[lakeside[0]]["source"]
    like = tmp_path / "complaint"
    like.mkdir()
    with Image.open(target) as im:  # a re-encoded, downscaled copy of one published image
        im.convert("RGB").resize((im.width * 3 // 4, im.height * 3 // 4)).save(
            like / "copy.jpg", quality=70)
    _build([], after, base=str(base), remove_like=[str(like)],
           exclude_subtrees=["n00017222"], name="r")  # plant: takes every daisy
    removals = {r["key"]: r["reason"]
                for r in open_release(str(after)).read_table("removals").to_pylist()}
    daisies = {k for k, r in before.items() if r["synset"] == "n11939491"}
    assert removals[lakeside[0]].startswith("takedown: like ")
    assert {k for k, why in removals.items() if why.startswith("removed: excluded subtree")} \
        == daisies
    assert set(_records(after)) == set(before) - set(removals)
    assert "n11939491" not in open_release(str(after)).manifest.counts["by_synset"]
