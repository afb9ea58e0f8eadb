"""`synshard diff`: pure manifest comparisons, and two real releases of the sample.

The real releases are built (embedded Ray, once per module) from one folder: first the whole
sample, then the same folder minus three images, so the second is what a takedown of those files
gives and every shard they did not touch is byte-identical (reused).
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

import synshard
from synshard.cli.release import add_parsers, diff_releases, read_keys
from synshard.release.diff import diff_manifests, render_diff, shard_changes, shards_to_read
from synshard.shards.layout import ShardEntry
from synshard.shards.manifest import Manifest
from synshard.shards.release import open_release
from synshard.transforms.schema import make_key, sha256_hex

REMOVED = ["n02165456/n02165456_304.JPEG", "n09332890/n09332890_10105.JPEG",
           "n11939491/n11939491_15048.JPEG"]


def _entry(path: str, sha: str = "a" * 64, fmt: str = "parquet", split: str = "train",
           synset: str = "n01440764", samples: int = 1) -> ShardEntry:
    return ShardEntry(path, fmt, split, synset, samples, 100, sha)  # type: ignore[arg-type]


def _manifest(by_synset: dict, shards=(), classes=None, name: str = "r",
              config: dict | None = None) -> Manifest:
    total = sum(sum(v.values()) for v in by_synset.values())
    by_split: dict[str, int] = {}
    for per in by_synset.values():
        for s, n in per.items():
            by_split[s] = by_split.get(s, 0) + n
    if classes is None:
        classes = [{"synset": w, "label": i, "lemmas": []} for i, w in enumerate(sorted(by_synset))]
    return Manifest(
        name=name, tool_version="0", config=config or {}, classes=classes,
        counts={"total": total, "by_split": by_split, "by_synset": by_synset},
        shards=tuple(shards), accounting={"inputs": total, "accepted": total, "rejected": 0,
                                          "duplicates": 0},
        tables={}, fingerprint="f", created="")  # fmt: skip


# ---- pure ----------------------------------------------------------------------------------

def test_counts_synsets_and_labels() -> None:
    old = _manifest({"n1": {"train": 5, "val": 1}, "n2": {"train": 3}})
    new = _manifest({"n2": {"train": 4, "val": 1}, "n3": {"train": 2}},
                    classes=[{"synset": "n2", "label": 1, "lemmas": []},
                             {"synset": "n3", "label": 0, "lemmas": []}])
    d = diff_manifests(old, new)
    assert d.synsets_added == ["n3"] and d.synsets_removed == ["n1"]
    assert [(c.synset, c.split, c.old, c.new, c.delta) for c in d.count_changes] == [
        ("n1", "train", 5, 0, -5), ("n1", "val", 1, 0, -1), ("n2", "train", 3, 4, 1),
        ("n2", "val", 0, 1, 1), ("n3", "train", 0, 2, 2)]
    assert d.label_changes == []  # n2 keeps label 1
    assert d.images_added is None and not d.empty  # no keys given: manifest-only diff
    assert d.totals == {"old": 9, "new": 7}


def test_label_change_is_reported() -> None:
    old = _manifest({"n1": {"train": 1}, "n2": {"train": 1}})
    new = _manifest({"n1": {"train": 1}, "n2": {"train": 1}},
                    classes=[{"synset": "n1", "label": 1, "lemmas": []},
                             {"synset": "n2", "label": 0, "lemmas": []}])
    d = diff_manifests(old, new)
    assert [(c.synset, c.old, c.new) for c in d.label_changes] == [("n1", 0, 1), ("n2", 1, 0)]
    assert not d.empty and "label changes (2)" in render_diff(d)


def test_shard_reuse_needs_same_path_and_hash() -> None:
    old = [_entry("a", "1" * 64), _entry("b", "2" * 64), _entry("c", "3" * 64)]
    new = [_entry("a", "1" * 64), _entry("b", "9" * 64), _entry("d", "4" * 64)]
    assert shard_changes(old, new) == (["a"], ["b", "d"], ["b", "c"])


def test_shards_to_read_skips_reused_and_picks_one_format() -> None:
    shared = _entry("p/a", "1" * 64)
    old = _manifest({"n1": {"train": 2}}, [shared, _entry("p/b", "2" * 64),
                                           _entry("w/a.tar", "5" * 64, fmt="webdataset")])
    new = _manifest({"n1": {"train": 2}}, [shared, _entry("p/c", "3" * 64),
                                           _entry("w/b.tar", "6" * 64, fmt="webdataset")])
    old_read, new_read = shards_to_read(old, new)
    assert [e.path for e in old_read] == ["p/b"] and [e.path for e in new_read] == ["p/c"]
    # no shared format: every shard of each side's own format is read
    only_parquet = _manifest({"n1": {"train": 2}}, [shared, _entry("p/b", "2" * 64)])
    only_wds = _manifest({"n1": {"train": 2}}, [_entry("w/b.tar", "6" * 64, fmt="webdataset")])
    old_read, new_read = shards_to_read(only_parquet, only_wds)
    assert [e.path for e in old_read] == ["p/a", "p/b"] and [e.path for e in new_read] == ["w/b.tar"]


keysets = st.sets(st.from_regex(r"n0[0-9]{7}_[0-9a-f]{16}", fullmatch=True), max_size=30)


@given(keysets, keysets)
def test_key_diff_is_exact_and_antisymmetric(a: set[str], b: set[str]) -> None:
    m = _manifest({"n1": {"train": 1}})
    d, back = diff_manifests(m, m, a, b), diff_manifests(m, m, b, a)
    assert d.images_added == sorted(b - a) and d.images_removed == sorted(a - b)
    assert back.images_added == d.images_removed and back.images_removed == d.images_added
    assert diff_manifests(m, m, a, a).empty


def test_json_form_is_plain_json() -> None:
    old = _manifest({"n1": {"train": 1}})
    new = _manifest({"n1": {"train": 2}})
    data = json.loads(json.dumps(diff_manifests(old, new, ["k1"], ["k1", "k2"]).to_dict()))
    assert data["images_added"] == ["k2"] and data["images_removed"] == []
    assert data["count_changes"] == [{"synset": "n1", "split": "train", "old": 1, "new": 2,
                                      "delta": 1}]
    assert data["empty"] is False


def test_changed_build_options_are_reported() -> None:
    config = {"transform": {"resize": "shorter:256", "quality": 90}, "formats": ["parquet"]}
    other = {"transform": {"resize": "shorter:512", "quality": 90},
             "formats": ["parquet", "webdataset"], "limit": 5}
    old = _manifest({"n1": {"train": 1}}, config=config)
    new = _manifest({"n1": {"train": 1}}, config=other)
    d = diff_manifests(old, new, ["k1"], ["k1"])
    assert [(c.option, c.old, c.new) for c in d.option_changes] == [
        ("formats", ["parquet"], ["parquet", "webdataset"]), ("limit", "(not recorded)", 5),
        ("transform.resize", "shorter:256", "shorter:512")]
    assert not d.empty  # before: "no changes", as every sample and shard is the same
    assert render_diff(d).splitlines()[1:5] == [
        "options changed (3):", '  formats: ["parquet"] -> ["parquet", "webdataset"]',
        "  limit: (not recorded) -> 5", "  transform.resize: shorter:256 -> shorter:512"]
    assert json.loads(json.dumps(d.to_dict()))["option_changes"][2] == {
        "option": "transform.resize", "old": "shorter:256", "new": "shorter:512"}
    # run options (build.json) are listed, but cannot change the bytes: still "no changes"
    same = diff_manifests(old, old, old_run={"out": "/a", "num_cpus": None},
                          new_run={"out": "/b", "num_cpus": 2})
    assert same.empty and [c.option for c in same.run_option_changes] == ["num_cpus"]
    assert render_diff(same).splitlines()[1:] == ["run options changed (same bytes) (1):",
                                                  "  num_cpus: null -> 2"]


# ---- two real releases of the sample ---------------------------------------------------------

@pytest.fixture(scope="module")
def releases(tmp_path_factory, sample_dir):
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1", logging_level=logging.ERROR)
    root = tmp_path_factory.mktemp("diff")
    src = root / "src"
    shutil.copytree(sample_dir, src)
    build = lambda out: synshard.build([str(src)], str(out), val_fraction=0.2,  # noqa: E731
                                       progress=False, log=lambda m: None)
    build(root / "full")
    # the same inputs, another --resize: never upscaled, so the very same bytes
    for side in (4096, 8192):
        synshard.build([str(src)], str(root / f"shorter{side}"), val_fraction=0.2,
                       resize=f"shorter:{side}", batch_size=side // 128, progress=False,
                       log=lambda m: None)
    removed = {make_key(p.split("/")[0], sha256_hex((src / p).read_bytes())) for p in REMOVED}
    for p in REMOVED:
        (src / p).unlink()
    build(root / "less")
    yield root / "full", root / "less", removed
    if started:
        ray.shutdown()


@pytest.mark.slow
def test_release_against_itself_is_empty(releases, capsys) -> None:
    full, _, _ = releases
    d = diff_releases(str(full), str(full))
    assert d.empty and d.images_added == [] and d.images_removed == []
    assert len(d.shards_reused) == len(open_release(str(full)).manifest.shards)
    assert _cli(["diff", str(full), str(full)], capsys).startswith(f"{full.name} -> {full.name}: no changes")


@pytest.mark.slow
def test_removing_files_lists_exactly_their_keys(releases, capsys) -> None:
    full, less, removed = releases
    d = diff_releases(str(full), str(less))
    assert d.images_removed == sorted(removed) and d.images_added == []
    assert d.synsets_added == d.synsets_removed == []
    assert sum(c.delta for c in d.count_changes) == -len(removed)
    # seashore lost nothing: its shards are the very same files; the others were rewritten
    assert any("n09428293" in p for p in d.shards_reused)
    assert not any("n09428293" in p for p in d.shards_written + d.shards_dropped)
    assert d.shards_written and d.shards_dropped
    # the key diff agrees with one that reads every key of both releases
    old, new = open_release(str(full)), open_release(str(less))
    every = diff_manifests(old.manifest, new.manifest,
                           read_keys(old, old.shards(format="webdataset")),
                           read_keys(new, new.shards(format="webdataset")))
    assert every.images_removed == d.images_removed and every.images_added == []
    data = json.loads(_cli(["diff", str(full), str(less), "--json"], capsys))
    assert data["images_removed"] == sorted(removed) and data["empty"] is False
    back = diff_releases(str(less), str(full))
    assert back.images_added == sorted(removed) and back.images_removed == []


@pytest.mark.slow
def test_same_inputs_other_resize_shows_the_option(releases, capsys) -> None:
    a, b = (releases[0].parent / f"shorter{side}" for side in (4096, 8192))
    d = diff_releases(str(a), str(b))
    assert d.images_added == d.images_removed == d.shards_written == []  # same bytes
    assert [(c.option, c.old, c.new) for c in d.option_changes] == [
        ("transform.resize", "shorter:4096", "shorter:8192")]
    assert [(c.option, c.old, c.new) for c in d.run_option_changes] == [("batch_size", 32, 64)]
    out = _cli(["diff", str(a), str(b)], capsys)
    assert "no changes" not in out  # before: "shorter4096 -> shorter8192: no changes"
    assert "  transform.resize: shorter:4096 -> shorter:8192" in out.splitlines()


def _cli(argv: list[str], capsys) -> str:
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return capsys.readouterr().out
