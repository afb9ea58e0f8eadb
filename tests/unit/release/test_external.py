"""external_hashes / leakage without Ray: a release written in-process from real sample photos.

The release is made the way a build makes one (transform_batch on the sample's original bytes,
then the shard writers and a committed manifest whose config carries the transform and dedup
options), so its stored phashes are the real ones. Eval sets hold transformed copies of a few of
its images (JPEG q50, 0.6x downscale, PNG re-save), unrelated noise images and a non-image.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from synshard.cli import leakage as cmd_leakage
from synshard.config import build_config
from synshard.release.external import (
    HASH_SCHEMA,
    LEAKAGE_SCHEMA,
    external_hashes,
    find_leakage,
    hash_candidates_batch,
    leakage,
    near_pairs,
    release_hashes,
    release_radius,
    transform_options,
)
from synshard.shards.manifest import Manifest, counts_from_shards
from synshard.shards.parquet import write_parquet_shards
from synshard.shards.release import commit_manifest, open_release, release_fs
from synshard.shards.webdataset import write_webdataset_shards
from synshard.errors import SynshardError
from synshard.transforms.options import ResizeSpec, TransformOptions
from synshard.transforms.process import transform_batch
from synshard.transforms.schema import CANDIDATE_SCHEMA, RECORD_SCHEMA

SYNSETS = {"n02165456": "train", "n09332890": "val"}  # sample folders -> the split they get
COPIED = ("n02165456_10551", "n02165456_304", "n09332890_25549")
TRANSFORM = TransformOptions(resize=ResizeSpec("shorter", 160))


def _candidates(files: list[Path], synset: str | None) -> pa.Table:
    rows = [{"source": str(f), "synset": synset, "split": None, "data": f.read_bytes()}
            for f in files]
    return pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)


def _records(sample_dir: Path, synset: str, split: str, label: int) -> pa.Table:
    """What a build stores for one sample folder: the accepted transformed rows, by key."""
    done = transform_batch(_candidates(sorted((sample_dir / synset).iterdir()), synset), TRANSFORM)
    rows = [r for r in done.to_pylist() if r["reason"] is None]
    for r in rows:
        r.update(split=split, label=label)
    rows.sort(key=lambda r: r["key"])
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)


def _write_release(root: Path, groups: list[pa.Table], formats: tuple[str, ...],
                   config: dict) -> None:
    fs, path = release_fs(str(root))
    entries = []
    for records in groups:
        if "parquet" in formats:
            entries += write_parquet_shards(fs, path, records, 1 << 20)
        if "webdataset" in formats:
            entries += write_webdataset_shards(fs, path, records, 1 << 20)
    manifest = Manifest(
        name=root.name, tool_version="0.1.0", config=config, fingerprint="0" * 64,
        classes=[{"synset": s, "label": i, "lemmas": []} for i, s in enumerate(SYNSETS)],
        counts=counts_from_shards(entries, formats[0]), shards=tuple(entries),
        accounting={"inputs": 0, "accepted": 0, "rejected": 0, "duplicates": 0}, tables={},
    )  # fmt: skip
    commit_manifest(fs, path, manifest)


def _config(transform: TransformOptions, near_radius: int | None = 6) -> dict:
    cfg = build_config({"sources": ["x"], "out": "y", "resize": str(transform.resize),
                        "near_radius": near_radius})
    return cfg.content()


@pytest.fixture(scope="module")
def records(sample_dir) -> pa.Table:
    groups = [_records(sample_dir, s, split, i) for i, (s, split) in enumerate(SYNSETS.items())]
    return pa.concat_tables(groups)


@pytest.fixture(scope="module")
def release(records, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rel") / "both"
    groups = [records.filter(pa.compute.equal(records["synset"], s)) for s in SYNSETS]
    _write_release(root, groups, ("parquet", "webdataset"), _config(TRANSFORM))
    return root


@pytest.fixture(scope="module")
def wds_release(records, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rel") / "wds"
    groups = [records.filter(pa.compute.equal(records["synset"], s)) for s in SYNSETS]
    _write_release(root, groups, ("webdataset",), _config(TRANSFORM, near_radius=None))
    return root


def _noise(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), "RGB")


@pytest.fixture(scope="module")
def evalset(sample_dir, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A flat folder: copies of COPIED (eval file name -> original stem), noise, a text file."""
    folder = tmp_path_factory.mktemp("eval") / "flat"
    folder.mkdir()
    copies = {}
    for n, stem in enumerate(COPIED):
        image = Image.open(sample_dir / stem[:9] / f"{stem}.JPEG").convert("RGB")
        edits = [
            ("q50.jpg", lambda im, f: im.save(f, "JPEG", quality=50)),
            ("small.jpg", lambda im, f: im.resize((int(im.width * .6), int(im.height * .6)),
                                                  Image.LANCZOS).save(f, "JPEG", quality=85)),
            ("resave.png", lambda im, f: im.save(f, "PNG")),
        ]
        name, edit = edits[n]
        edit(image, folder / f"copy{n}_{name}")
        copies[f"copy{n}_{name}"] = stem
    for seed in range(4):
        _noise(seed).save(folder / f"noise{seed}.jpg", "JPEG", quality=90)
    (folder / "notes.txt").write_text("not an image")
    return folder, copies


def _key_of(records: pa.Table, stem: str) -> str:
    return next(r["key"] for r in records.to_pylist() if r["source"].endswith(f"/{stem}.JPEG"))


def _found(pairs: pa.Table) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in pairs.to_pylist():
        out.setdefault(r["eval_source"].rsplit("/", 1)[-1], set()).add(r["release_key"])
    return out


# --- options from a manifest ---------------------------------------------------------------------


def test_transform_options_round_trip_through_config():
    opts = TransformOptions(resize=ResizeSpec("longer", 300), quality=70, upscale=True,
                            format="webp", min_size=16)
    cfg = build_config({"sources": ["x"], "out": "y", **{
        f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)}})
    assert transform_options(json.loads(json.dumps(cfg.content()))) == opts


def test_transform_options_defaults_and_errors():
    assert transform_options({}) == TransformOptions()
    assert transform_options({"transform": {"resize": "none", "future": 1}}).resize.mode == "none"
    with pytest.raises(SynshardError):
        transform_options({"transform": {"resize": "sideways:3"}})


@pytest.mark.parametrize("dedup,expected", [
    ({"near_radius": 4}, 4), ({"near_radius": None}, 6), ({}, 6), (None, 6)])
def test_release_radius(dedup, expected):
    assert release_radius({"dedup": dedup}) == expected


# --- a release's stored hashes -------------------------------------------------------------------


def _by_key(table: pa.Table) -> dict[str, dict]:
    return {r["key"]: r for r in table.to_pylist()}


def test_release_hashes_match_records(release, records):
    got = release_hashes(open_release(str(release)))
    assert got.schema == HASH_SCHEMA
    want = {r["key"]: {"source": r["source"], "key": r["key"], "synset": r["synset"],
                       "split": r["split"], "phash": r["phash"], "reason": None}
            for r in records.to_pylist()}
    assert _by_key(got) == want


def test_release_hashes_webdataset_only_indexed_and_streamed(wds_release, records, monkeypatch):
    rel = open_release(str(wds_release))
    assert all(e.index for e in rel.manifest.shards)
    indexed = release_hashes(rel)
    assert {k: r["phash"] for k, r in _by_key(indexed).items()} == {
        r["key"]: r["phash"] for r in records.to_pylist()}
    old = dataclasses.replace(rel.manifest, shards=tuple(
        dataclasses.replace(e, index=None, index_bytes=None, index_sha256=None)
        for e in rel.manifest.shards))
    streamed = release_hashes(dataclasses.replace(rel, manifest=old))
    assert _by_key(streamed) == _by_key(indexed)


def test_release_with_a_broken_shard_raises_one_line(wds_release, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(wds_release, broken)
    shard = next(broken.rglob("*.tar"))
    shard.write_bytes(b"garbage")
    for idx in broken.rglob("*.idx.parquet"):
        idx.write_bytes(b"garbage")
    with pytest.raises(SynshardError, match="cannot read phashes"):
        release_hashes(open_release(str(broken)))


# --- images hashed in-process --------------------------------------------------------------------


def test_hash_candidates_batch_without_synset(sample_dir):
    files = sorted((sample_dir / "n02165456").iterdir())[:2]
    flat = _candidates(files, None)
    labelled = _candidates(files, "n02165456")
    rows = [{"source": "bad", "synset": None, "split": None, "data": b"junk"},
            {"source": "gone", "synset": None, "split": None, "data": None,
             "reason": "read error: FileNotFoundError"}]
    batch = pa.concat_tables([flat, pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)])
    got = hash_candidates_batch(batch, TRANSFORM).to_pylist()
    want = hash_candidates_batch(labelled, TRANSFORM).to_pylist()
    assert [r["phash"] for r in got[:2]] == [r["phash"] for r in want]
    assert all(r["phash"] is not None and r["key"] for r in want)
    assert all(r["synset"] is None and r["key"] is None and r["reason"] is None for r in got[:2])
    assert got[2]["phash"] is None and got[2]["reason"].startswith("decode: ")
    assert got[3]["reason"] == "ingest: read error: FileNotFoundError"


def test_external_hashes_of_folder_keeps_every_input(evalset):
    folder, copies = evalset
    got = external_hashes([str(folder)], TRANSFORM)
    assert got.schema == HASH_SCHEMA
    assert got.num_rows == len(list(folder.iterdir()))
    bad = [r for r in got.to_pylist() if r["phash"] is None]
    assert [(r["source"].rsplit("/", 1)[-1], r["reason"].split(":")[0]) for r in bad] == [
        ("notes.txt", "decode")]


def test_external_hashes_of_a_release_and_a_folder(release, evalset, records):
    folder, _ = evalset
    got = external_hashes([str(release), str(folder)], TRANSFORM)
    assert got.num_rows == records.num_rows + len(list(folder.iterdir()))


def test_external_hashes_notes_other_transform_options(release):
    notes: list[str] = []
    external_hashes([str(release)], TransformOptions(), log=notes.append)
    assert len(notes) == 1 and "resize shorter:160 vs shorter:256" in notes[0]


def test_missing_source_raises():
    with pytest.raises(SynshardError, match="not found"):
        external_hashes(["/nonexistent/evalset"], TRANSFORM)


# --- leakage -------------------------------------------------------------------------------------


def test_leakage_finds_exactly_the_copies(release, evalset, records):
    folder, copies = evalset
    pairs = leakage(str(release), str(folder))
    assert pairs.schema == LEAKAGE_SCHEMA
    assert _found(pairs) == {name: {_key_of(records, stem)} for name, stem in copies.items()}
    assert all(0 <= d <= 6 for d in pairs["distance"].to_pylist())
    splits = {r["release_key"]: r["release_split"] for r in pairs.to_pylist()}
    assert splits[_key_of(records, "n09332890_25549")] == "val"


def test_leakage_counts_and_unhashed(release, evalset):
    folder, copies = evalset
    found = find_leakage(str(release), str(folder))
    assert (found.leaked, found.evaluated, found.radius) == (3, 7, 6)
    assert found.unhashed["source"].to_pylist() == [f"{folder}/notes.txt"]


def test_leakage_radius_bounds_the_distance(release, evalset):
    folder, _ = evalset
    near = find_leakage(str(release), str(folder), radius=0)
    wide = find_leakage(str(release), str(folder), radius=32)
    assert near.radius == 0 and set(near.pairs["distance"].to_pylist()) <= {0}
    assert set(_found(near.pairs)) <= set(_found(wide.pairs))
    assert max(wide.pairs["distance"].to_pylist()) > 6  # noise vs photos: far, but within 32
    with pytest.raises(SynshardError, match="radius"):
        leakage(str(release), str(folder), radius=40)


def test_leakage_of_a_tar_equals_the_folder(release, evalset, tmp_path):
    folder, copies = evalset
    tar = tmp_path / "eval.tar"
    with tarfile.open(tar, "w") as t:
        for f in sorted(folder.iterdir()):
            t.add(f, arcname=f"eval/{f.name}")
    assert _found(leakage(str(release), str(tar))) == _found(leakage(str(release), str(folder)))


def test_leakage_of_a_release_against_itself(release, wds_release, records):
    found = find_leakage(str(release), str(wds_release))
    self_pairs = {(r["eval_key"], r["release_key"]) for r in found.pairs.to_pylist()
                  if r["distance"] == 0}
    assert {(k, k) for k in records["key"].to_pylist()} <= self_pairs
    assert found.leaked == found.evaluated == records.num_rows and not found.notes


def test_leakage_release_default_radius_from_manifest(wds_release, release):
    assert find_leakage(str(wds_release), str(release)).radius == 6  # near dedup off: default


def test_leakage_of_release_hashed_otherwise_is_noted(release, tmp_path, records):
    other = tmp_path / "other"
    group = records.filter(pa.compute.equal(records["synset"], "n02165456"))
    _write_release(other, [group], ("parquet",), _config(TransformOptions()))
    assert find_leakage(str(release), str(other)).notes


# --- the pair search ----------------------------------------------------------------------------


def _reference(a: list[int], b: list[int], radius: int) -> set[tuple[int, int, int]]:
    return {(i, j, bin(x ^ y).count("1")) for i, x in enumerate(a) for j, y in enumerate(b)
            if bin(x ^ y).count("1") <= radius}


_hashes = st.lists(st.integers(0, 2**64 - 1), max_size=30)


@settings(max_examples=60, deadline=None)
@given(_hashes, _hashes, st.integers(0, 12), st.lists(st.integers(0, 63), max_size=4),
       st.booleans())
def test_near_pairs_is_exact_both_ways(a, b, radius, flips, indexed):
    b = b + [x ^ sum(1 << f for f in set(flips)) for x in a[:3]] + a[:2]  # planted near/exact copies
    import synshard.transforms.neardup_between as between

    old = between.PAIRWISE_PAIRS
    between.PAIRWISE_PAIRS = -1 if indexed else 1 << 62
    try:
        i, j, d = near_pairs(np.array(a, np.uint64), np.array(b, np.uint64), radius)
    finally:
        between.PAIRWISE_PAIRS = old
    got = list(zip(i.tolist(), j.tolist(), d.tolist()))
    assert len(got) == len(set(got)) and set(got) == _reference(a, b, radius)
    assert got == sorted(got)  # the same order whichever way: callers' tie-breaks do not move


def test_pairwise_chunks_cover_every_row(monkeypatch):
    import synshard.transforms.neardup_between as between

    monkeypatch.setattr(between, "PAIRWISE_CELLS", 7)  # 1 eval row per chunk
    a = np.arange(20, dtype=np.uint64)
    i, j, d = near_pairs(a, a[::-1].copy(), 0)
    assert sorted(zip(i.tolist(), j.tolist())) == [(k, 19 - k) for k in range(20)]


# --- the command ---------------------------------------------------------------------------------


def _cli(args: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    cmd_leakage.add_parsers(parser.add_subparsers(dest="command"))
    parsed = parser.parse_args(args)
    return parsed.func(parsed)


def test_cli_table(release, evalset, capsys):
    folder, copies = evalset
    assert _cli(["leakage", str(release), str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == list(cmd_leakage.COLUMNS)
    assert sum(name in line for line in out for name in copies) == 3
    assert out[-1].startswith("3 of 7 eval images have copies in the release (radius 6")
    assert "1 eval inputs could not be hashed" in out[-1]


def test_cli_json(release, evalset, capsys):
    folder, copies = evalset
    assert _cli(["leakage", str(release), str(folder), "--json", "--radius", "8"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["leaked"], data["evaluated"], data["radius"]) == (3, 7, 8)
    assert {p["eval_source"].rsplit("/", 1)[-1] for p in data["pairs"]} == set(copies)
    assert data["unhashed"][0]["reason"].startswith("decode:")


def test_cli_refuses_bad_radius(release, evalset):
    with pytest.raises(SystemExit):
        _cli(["leakage", str(release), str(evalset[0]), "--radius", "99"])
