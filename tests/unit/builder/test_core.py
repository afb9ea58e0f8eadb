"""The build's pure core beside the decisions: the staging object and its journal, the commit's
fingerprint and strict JSON, config loading (TOML flattening), input spelling and stamps, the
base-release comparison, and split assignment (stable per key; fractions within binomial bounds).
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pyarrow as pa
import pytest
from coremeta import meta_row, meta_table

from synshard.api import make_config
from synshard.builder.commit import check_existing, finite, fingerprint_build
from synshard.builder.decide.base import against_base
from synshard.builder.inputs import absolute_uri, stamp_input_files
from synshard.builder.staging import Staging
from synshard.config import ConfigError, build_config, flatten, load_toml
from synshard.shards.layout import ShardEntry
from synshard.shards.splits import SplitOptions, key_unit, split_for_key
from synshard.shards.staging import META_SCHEMA


def _cfg(**kw):
    return build_config({"sources": ["/data"], "out": "/rel", **kw})


# --- staging and its journal ----------------------------------------------------------------

def test_staging_folder_is_a_function_of_fingerprint_and_task_cut(tmp_path):
    a = Staging.for_build(str(tmp_path), {}, "f" * 64, 256)
    assert a == Staging.for_build(str(tmp_path), {}, "f" * 64, 256)
    assert a.path != Staging.for_build(str(tmp_path), {}, "f" * 64, 128).path
    assert a.path != Staging.for_build(str(tmp_path), {}, "e" * 64, 256).path
    assert a.path.startswith(f"{tmp_path}/_staging/")


def test_journal_records_finished_tasks_and_synsets(tmp_path):
    s = Staging.for_build(str(tmp_path), {}, "f" * 64, 256)
    assert s.finished_tasks() == set() and s.journalled_synsets() == {}
    meta = meta_table([meta_row("a")])
    s.write_task_meta(3, meta)
    s.write_task_meta(0, META_SCHEMA.empty_table())
    assert s.finished_tasks() == {0, 3}
    entry = ShardEntry("webdataset/train/n1/n1-000000-abcd.tar", "webdataset", "train", "n1",
                       1, 2048, "0" * 64)
    s.write_synset_entries("n1", [entry])
    (tmp_path / s.synset_path("n2")).with_suffix(".json.tmp-1").write_text("[")  # cut short
    assert s.journalled_synsets() == {"n1": [entry]}
    s.write_stats("boxes-000", {"boxes": {"with boxes": 2}}, "/src/a")
    s.write_stats("boxes-001", {"boxes": {"with boxes": 1}}, "/src/b")
    assert [d["boxes"]["with boxes"] for d in s.read_stats()] == [2, 1]
    s.clear()
    s.remove_empty_parent()
    assert not (tmp_path / "_staging").exists()


def test_staging_keeps_a_foreign_staging_folder(tmp_path):
    s = Staging.for_build(str(tmp_path), {}, "f" * 64, 256)
    other = tmp_path / "_staging" / "other"
    other.mkdir(parents=True)
    s.clear()
    s.remove_empty_parent()
    assert other.exists()


# --- commit ---------------------------------------------------------------------------------

def test_fingerprint_changes_with_inputs_options_and_tool():
    base = fingerprint_build("in", {"quality": 90}, "0.1.0")
    assert base == fingerprint_build("in", {"quality": 90}, "0.1.0")
    assert len({base, fingerprint_build("in2", {"quality": 90}, "0.1.0"),
                fingerprint_build("in", {"quality": 80}, "0.1.0"),
                fingerprint_build("in", {"quality": 90}, "0.2.0")}) == 4


def test_finite_makes_any_value_strict_json():
    value = {"a": math.nan, "b": [1.5, math.inf, {"c": -math.inf}], "d": (2, "x")}
    assert finite(value) == {"a": None, "b": [1.5, None, {"c": None}], "d": [2, "x"]}
    json.dumps(finite(value), allow_nan=False)


def test_check_existing_refuses_a_different_release_without_overwrite(tmp_path):
    from synshard.errors import SynshardError
    from synshard.shards.manifest import Manifest
    from synshard.shards.release import commit_manifest, release_fs

    out = str(tmp_path / "rel")
    cfg = _cfg(out=out)
    assert check_existing(cfg, "f1") is None  # nothing committed yet
    fs, root = release_fs(out)
    accounting = {"inputs": 0, "accepted": 0, "rejected": 0, "duplicates": 0}
    commit_manifest(fs, root, Manifest("r", "0.1.0", {}, [], {"total": 0, "by_split": {},
                                                               "by_synset": {}},
                                       (), accounting, {}, "f1"))
    assert check_existing(cfg, "f1").fingerprint == "f1"
    with pytest.raises(SynshardError, match="--overwrite"):
        check_existing(cfg, "f2")
    assert check_existing(_cfg(out=out, overwrite=True), "f2") is None


# --- config ---------------------------------------------------------------------------------

def test_toml_sections_flatten_into_flags(tmp_path):
    toml = tmp_path / "build.toml"
    toml.write_text('out = "/rel"\nsources = ["/a", "/b"]\n[transform]\nquality = 85\n'
                    'resize = "longer:128"\n[dedup]\nnear-radius = 4\n[splits]\nval_fraction = 0.1\n'
                    '[fetch]\nconcurrency = 8\n')
    flat = load_toml(str(toml))
    assert flat == {"out": "/rel", "sources": ["/a", "/b"], "quality": 85, "resize": "longer:128",
                    "near_radius": 4, "val_fraction": 0.1, "fetch_concurrency": 8}
    cfg = build_config({**flat, "quality": 70})  # a flag on top wins
    assert cfg.transform.quality == 70 and cfg.dedup.near_radius == 4
    assert cfg.splits.val_fraction == 0.1 and cfg.fetch.concurrency == 8
    assert str(cfg.transform.resize) == "longer:128"


@pytest.mark.parametrize("data, message", [
    ({"colour": 1}, "unknown option colour"),
    ({"transform": {"sharpness": 1}}, "unknown option transform.sharpness"),
])
def test_toml_unknown_options_are_named(data, message):
    with pytest.raises(ConfigError, match=message):
        flatten(data, where="build.toml")


def test_bad_toml_and_missing_file_are_config_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("quality = = 3\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_toml(str(bad))
    with pytest.raises(ConfigError, match="not found"):
        load_toml(str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError, match=r"option quality = \[1\]: expected an integer"):
        build_config({"sources": ["/a"], "out": "/r", "quality": [1]})


# --- inputs: one spelling, stamps -----------------------------------------------------------

def test_absolute_uri_spells_local_paths_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_uri("data/x") == absolute_uri("./data/x") == f"{tmp_path}/data/x"
    assert absolute_uri("file:///srv/a.tar::n1/b.JPEG") == "/srv/a.tar::n1/b.JPEG"
    assert absolute_uri("s3://bucket/p/") == "s3://bucket/p/"
    assert absolute_uri("https://h/x.jpg") == "https://h/x.jpg"
    assert make_config(["data/x"], "out").sources == (f"{tmp_path}/data/x",)


def test_input_stamps_see_edits_in_place(tmp_path):
    classes, boxes = tmp_path / "classes.txt", tmp_path / "boxes"
    classes.write_text("n1\nn2\n")
    (boxes / "n1").mkdir(parents=True)
    (boxes / "n1" / "a.xml").write_text("<annotation/>")
    cfg = _cfg(classes=str(classes), boxes=str(boxes))
    first = stamp_input_files(cfg)
    assert first == stamp_input_files(cfg) and stamp_input_files(_cfg()) == ""
    classes.write_text("n2\nn1\n")  # same size, new content
    second = stamp_input_files(cfg)
    assert second != first
    (boxes / "n1" / "a.xml").write_text("<annotation></annotation>")
    os.utime(boxes / "n1" / "a.xml", (1, 1))
    assert stamp_input_files(cfg) != second
    assert stamp_input_files(_cfg(classes="ilsvrc2012")) == ""  # a named list is no file


# --- the base release -----------------------------------------------------------------------

def test_new_inputs_against_the_base_exact_near_and_conflicts():
    base = meta_table([meta_row("b1", phash=0xF0), meta_row("b2", "n09428293", phash=0xFF00FF)])
    base = base.append_column("shard", pa.array(["s"] * 2)).drop_columns(["staged_path"])
    new = meta_table([meta_row("n1", sha=base["sha256"][0].as_py(), phash=0xF0),
                      meta_row("n2", phash=0xF1), meta_row("n3", phash=0xFF00FE),
                      meta_row("n4", phash=0xFFFF_FFFF_0000_0000)])
    new = new.set_column(new.schema.get_field_index("split"), "split", pa.array(["train"] * 4))
    base = base.set_column(base.schema.get_field_index("split"), "split", pa.array(["train"] * 2))
    found = against_base(new, base, _cfg(near_radius=2))
    assert found.keep.tolist() == [False, False, True, True]
    assert [(r["kind"], r["distance"]) for r in found.duplicates.to_pylist()] == \
        [("exact", 0), ("near", 1)]
    assert [(r["synset"], r["other_synset"]) for r in found.conflicts.to_pylist()] == \
        [("n02165456", "n09428293")]
    dropped = against_base(new, base, _cfg(near_radius=2, near_conflicts="drop"))
    assert dropped.keep.tolist() == [False, False, False, True]


# --- splits ---------------------------------------------------------------------------------

def test_a_keys_split_is_stable_across_releases_and_option_changes():
    keys = [f"n02165456_{i:016x}" for i in range(2000)]
    opts = SplitOptions(val_fraction=0.1, test_fraction=0.05)
    first = [split_for_key(k, opts) for k in keys]
    assert first == [split_for_key(k, opts) for k in keys]  # same key, same split, always
    grown = SplitOptions(val_fraction=0.2, test_fraction=0.05)
    for k, before in zip(keys, first):  # a larger val share only moves train keys into val
        after = split_for_key(k, grown)
        assert after == before or (before, after) == ("train", "val")


def test_split_fractions_hold_within_binomial_bounds_on_100000_keys():
    n, val, test = 100_000, 0.1, 0.05
    opts = SplitOptions(val_fraction=val, test_fraction=test)
    counts = {"train": 0, "val": 0, "test": 0}
    for i in range(n):
        counts[split_for_key(f"key{i:08d}", opts)] += 1
    for split, p in (("val", val), ("test", test), ("train", 1 - val - test)):
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[split] - n * p) < 5 * sigma, (split, counts)
    units = [key_unit(f"key{i:08d}") for i in range(1000)]
    assert all(0 <= u < 1 for u in units)


def test_journal_records_appear_whole_or_not_at_all(tmp_path):
    """A kill -9 mid-write leaves at most a temporary file, which is not a finished task."""
    staging = Staging.for_build(str(tmp_path), {}, "f" * 64, 256)
    staging.write_task_meta(0, pa.table({"x": [1, 2]}))
    tasks = Path(staging.task_path(0)).parent
    assert [p.name for p in tasks.iterdir()] == ["task-00000000.parquet"]  # no temporary left
    (tasks / "task-00000001.parquet.tmp-123").write_bytes(b"")  # what a killed write leaves
    assert staging.finished_tasks() == {0}


def test_a_range_error_of_the_config_file_names_the_file_and_a_flag_error_does_not(tmp_path):
    from synshard.config import config_with_file

    toml = tmp_path / "build.toml"
    toml.write_text("[transform]\nquality = 900\n")
    flags = {"sources": ["/a"], "out": "/r"}
    with pytest.raises(ConfigError, match=r"^.*build\.toml: bad quality 900: use 1\.\.100$"):
        config_with_file(load_toml(str(toml)), str(toml), flags)
    assert config_with_file(load_toml(str(toml)), str(toml),
                            {**flags, "quality": 80}).transform.quality == 80  # a flag wins
    toml.write_text("[transform]\nquality = 80\n")
    with pytest.raises(ConfigError) as info:
        config_with_file(load_toml(str(toml)), str(toml), {**flags, "quality": 900})
    assert str(info.value) == "bad quality 900: use 1..100"  # the flag's: no file named


@pytest.mark.parametrize("data, hint", [
    ({"image_format": "webp"}, "in a config file: transform.format"),
    ({"shard_size": 1}, "in a config file: shard_bytes"),
    ({"no_robots_txt": True}, "fetch.respect_robots_txt = false"),
    ({"qualty": 3}, "did you mean transform.quality?"),
    ({"transform": {"formt": "png"}}, "did you mean transform.format?"),
])
def test_an_unknown_key_says_which_key_to_use(data, hint):
    with pytest.raises(ConfigError, match=re.escape(hint)):
        flatten(data, where="build.toml")


def test_every_build_flag_is_a_config_key_or_says_which_one():
    """A flag a user copies into build.toml either is a key or is answered with the key."""
    from synshard.cli.app import make_parser
    from synshard.config import FLAG_KEYS, option_types

    build = next(a for a in make_parser()._actions if a.dest == "command").choices["build"]
    keys = set(option_types()) | {"sources", "out"}
    for action in build._actions:
        flags = [o for o in action.option_strings if o.startswith("--")]
        if not flags or action.dest in ("help", "config"):
            continue
        name = flags[0][2:].replace("-", "_")
        assert name in keys or name in FLAG_KEYS, f"--{flags[0][2:]} -> {action.dest}"
        if name in FLAG_KEYS:
            assert action.dest in keys or action.dest == "config", action.dest
