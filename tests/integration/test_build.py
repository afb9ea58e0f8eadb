"""The spine end to end on embedded Ray: folders, flat tars and tars of tars become releases."""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pyarrow.dataset as pads
import pytest
import webdataset as wds
from PIL import Image

import synshard
import synshard.sample
import synshard.errors
from synshard.shards.release import open_release
from synshard.shards.parquet import records_from_parquet_table
from releasefiles import release_bytes

ROTATED = "n09332890_49973"  # landscape pixels stored with EXIF Orientation=6


def _build(sources, out, **opts):
    opts.setdefault("progress", False)
    return synshard.build([str(s) for s in sources], str(out), log=lambda m: None, **opts)


def _synset_of_source(source: str) -> str:
    parts = source.replace("::", "/").split("/")
    return next(p[:9] for p in reversed(parts[:-1]) if p.startswith("n") and len(p) >= 9)


def _webdataset_samples(uri) -> dict[str, dict]:
    release = open_release(str(uri))
    urls = [release.uri(e.path) for e in release.manifest.shards if e.format == "webdataset"]
    samples = {}
    for s in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        samples[s["__key__"]] = {**json.loads(s["json"]), "image": s["jpg"],
                                 "label": int(s["cls"])}
    return samples


def _parquet_records(uri) -> dict[str, dict]:
    release = open_release(str(uri))
    files = [release.uri(e.path) for e in release.manifest.shards if e.format == "parquet"]
    dataset = pads.dataset(files, format="parquet", partitioning="hive",
                           partition_base_dir=release.uri("parquet"))
    table = records_from_parquet_table(dataset.to_table())
    return {r["key"]: r for r in table.to_pylist()}


@pytest.fixture(scope="module")
def folder_release(ray_local, sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("rel") / "folder"
    result = _build([sample_dir], out, val_fraction=0.25)
    return out, result


def test_accounting_identity_and_tables(folder_release):
    out, result = folder_release
    acc = result.accounting
    assert acc["inputs"] == acc["accepted"] + acc["rejected"] + acc["duplicates"]
    n_files = sum(1 for p in Path(synshard.sample.sample_path()).rglob("*") if p.is_file())
    assert acc["inputs"] == n_files
    release = open_release(str(out))
    rejects = release.read_table("rejects").to_pylist()
    dups = release.read_table("duplicates").to_pylist()
    assert len(rejects) == acc["rejected"] and len(dups) == acc["duplicates"]
    reasons = {Path(r["source"]).name: r["reason"] for r in rejects}
    assert reasons["n11939491_7761.JPEG"] == "truncated"
    assert reasons["n02165456_26647.JPEG"].startswith("too small")
    assert reasons["n09332890_5066.JPEG"].startswith("label conflict")
    assert reasons["n09428293_14586.JPEG"].startswith("label conflict")
    kinds = {Path(d["source"]).name: (d["kind"], Path(d["kept_source"]).name) for d in dups}
    assert kinds == {"n11939491_8640.JPEG": ("exact", "n11939491_18073.JPEG"),
                     "n09332890_12494.JPEG": ("near", "n09332890_48725.JPEG")}


def test_labels_match_source_synsets_in_both_formats(folder_release):
    out, result = folder_release
    manifest = open_release(str(out)).manifest
    classes = [c["synset"] for c in manifest.classes]
    assert classes == sorted(classes)
    wds_samples = _webdataset_samples(out)
    pq_records = _parquet_records(out)
    assert len(wds_samples) == result.accounting["accepted"] == len(pq_records)
    assert set(wds_samples) == set(pq_records)
    for key, rec in pq_records.items():
        assert classes[rec["label"]] == rec["synset"] == _synset_of_source(rec["source"])
        w = wds_samples[key]
        assert w["image"] == rec["image"] and w["label"] == rec["label"]
        assert {k: w[k] for k in ("sha256", "split", "width", "height", "source")} == \
               {k: rec[k] for k in ("sha256", "split", "width", "height", "source")}
    assert {r["split"] for r in pq_records.values()} == {"train", "val"}


def test_exif_rotated_landscape_comes_out_portrait(folder_release, sample_dir):
    out, _ = folder_release
    src = next(sample_dir.rglob(f"{ROTATED}.JPEG"))
    with Image.open(src) as im:
        assert im.width > im.height  # stored landscape
    rec = next(r for r in _parquet_records(out).values() if r["source"].endswith(src.name))
    with Image.open(io.BytesIO(rec["image"])) as im:
        assert im.height > im.width and not im.getexif()
    assert rec["height"] > rec["width"]


def test_rebuild_is_byte_identical_and_order_independent(ray_local, sample_dir, tmp_path):
    half = tmp_path / "extra"
    shutil.copytree(sample_dir / "n02165456", half / "n02165456")
    a, b = tmp_path / "a", tmp_path / "b"
    _build([sample_dir, half], a, val_fraction=0.25, name="r")
    _build([half, sample_dir], b, val_fraction=0.25, name="r")
    assert release_bytes(a).keys() == release_bytes(b).keys()
    ba, bb = release_bytes(a), release_bytes(b)
    assert ba == bb


def test_identical_rebuild_is_noop_and_different_needs_overwrite(folder_release, sample_dir):
    out, _ = folder_release
    again = _build([sample_dir], out, val_fraction=0.25)
    assert again.noop
    assert not (Path(out) / "_staging").exists()  # the no-op's lock folder does not stay
    with pytest.raises(synshard.errors.SynshardError, match="--overwrite"):
        _build([sample_dir], out, val_fraction=0.5)


def _tar_of_folder(folder: Path, tar_path: Path) -> None:
    with tarfile.open(tar_path, "w") as tar:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.parent != folder:
                tar.add(p, arcname=str(p.relative_to(folder)))


def _tar_of_tars(folder: Path, tar_path: Path, tmp: Path) -> None:
    with tarfile.open(tar_path, "w") as outer:
        for synset_dir in sorted(d for d in folder.iterdir() if d.is_dir()):
            inner = tmp / f"{synset_dir.name}.tar"
            with tarfile.open(inner, "w") as tar:
                for p in sorted(synset_dir.iterdir()):
                    tar.add(p, arcname=p.name)
            outer.add(inner, arcname=inner.name)


def test_flat_tar_and_tar_of_tars_give_the_folder_release(ray_local, sample_dir, tmp_path):
    folder_copy = tmp_path / "folder"
    shutil.copytree(sample_dir, folder_copy, ignore=shutil.ignore_patterns("*.md"))
    _tar_of_folder(folder_copy, tmp_path / "flat.tar")
    _tar_of_tars(folder_copy, tmp_path / "train.tar", tmp_path)
    results = {}
    for name, source in (("folder", folder_copy), ("flat", tmp_path / "flat.tar"),
                         ("tars", tmp_path / "train.tar")):
        out = tmp_path / f"rel-{name}"
        results[name] = _build([source], out)
        recs = _parquet_records(out)
        for rec in recs.values():
            assert rec["synset"] == _synset_of_source(rec["source"])
        results[name] = (results[name].accounting, sorted(recs))
    assert results["folder"] == results["flat"] == results["tars"]
