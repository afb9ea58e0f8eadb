"""`synshard leakage` against a release built for real (embedded Ray), one build per module.

The eval sets hold re-encoded, downscaled and re-saved copies of a few release images, plus
unrelated images made with Pillow (noise, gradients) and a file that is not an image; leakage must
report exactly the copies, each against the image it was made from.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

import synshard
from synshard.cli import leakage as cmd_leakage
from synshard.release.external import (
    external_hashes,
    find_leakage,
    leakage,
    release_hashes,
    transform_options,
)
from synshard.shards.release import open_release
from synshard.transforms.neardup import hamming

EDITS = {
    "q40.jpg": lambda im: _save(im, "JPEG", quality=40),
    "half.jpg": lambda im: _save(im.resize((im.width // 2, im.height // 2), Image.LANCZOS),
                                 "JPEG", quality=90),
    "resave.png": lambda im: _save(im, "PNG"),
    "blur.webp": lambda im: _save(im.filter(ImageFilter.GaussianBlur(1)), "WEBP", quality=90),
}


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def _unrelated(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    if seed % 2:
        pixels = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    else:  # a smooth two-colour gradient: flat images are the phash's hard case
        t = np.linspace(0, 1, 400)[None, :, None]
        lo, hi = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        pixels = np.broadcast_to(lo + (hi - lo) * t, (300, 400, 3)).astype(np.uint8)
    return _save(Image.fromarray(np.ascontiguousarray(pixels), "RGB"), "JPEG", quality=90)


@pytest.fixture(scope="module")
def built(ray_local, sample_dir, tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src") / "images"
    shutil.copytree(sample_dir, src, ignore=shutil.ignore_patterns("*.md"))
    out = tmp_path_factory.mktemp("rel") / "release"
    synshard.build([str(src)], str(out), progress=False, log=lambda m: None, val_fraction=0.25)
    return out


@pytest.fixture(scope="module")
def originals(built) -> list[dict]:
    """Four release records with no other release record within radius 6 (unambiguous)."""
    rows = release_hashes(open_release(str(built))).to_pylist()
    hashes = np.array([r["phash"] for r in rows], np.uint64)
    alone = [r for r in rows if (hamming(hashes, r["phash"]) <= 6).sum() == 1]
    return sorted(alone, key=lambda r: r["key"])[: len(EDITS)]


@pytest.fixture(scope="module")
def evalset(originals, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A flat folder: one edited copy per original (name -> original key), unrelated, junk."""
    folder = tmp_path_factory.mktemp("eval") / "flat"
    folder.mkdir()
    copies = {}
    for (name, edit), record in zip(EDITS.items(), originals):
        image = Image.open(record["source"]).convert("RGB")
        (folder / f"copy_{name}").write_bytes(edit(image))
        copies[f"copy_{name}"] = record["key"]
    for seed in range(6):
        (folder / f"unrelated{seed}.jpg").write_bytes(_unrelated(seed))
    (folder / "readme.txt").write_text("not an image")
    return folder, copies


def _found(pairs) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in pairs.to_pylist():
        out.setdefault(r["eval_source"].rsplit("/", 1)[-1], set()).add(r["release_key"])
    return out


def test_leakage_finds_exactly_the_copies(built, evalset):
    folder, copies = evalset
    assert len(copies) == len(EDITS)
    found = find_leakage(str(built), str(folder))
    assert _found(found.pairs) == {name: {key} for name, key in copies.items()}
    assert (found.leaked, found.evaluated, found.radius) == (len(copies), len(copies) + 6, 6)
    assert found.unhashed["source"].to_pylist() == [f"{folder}/readme.txt"]
    manifest = open_release(str(built)).manifest
    splits = {e.split for e in manifest.shards}
    assert set(found.pairs["release_split"].to_pylist()) <= splits


def test_leakage_of_an_imagenet_layout_tar(built, evalset, originals, tmp_path):
    """A tar of `<wnid>/<file>`: eval rows keep their synset and get keys."""
    folder, copies = evalset
    synset_of = {r["key"]: r["synset"] for r in originals}
    tar = tmp_path / "val.tar"
    with tarfile.open(tar, "w") as t:
        for f in sorted(folder.iterdir()):
            wnid = synset_of.get(copies.get(f.name, ""), "n00001740")
            t.add(f, arcname=f"{wnid}/{f.name}")
    pairs = leakage(str(built), str(tar))
    assert _found(pairs) == {name: {key} for name, key in copies.items()}
    assert pairs["eval_synset"].to_pylist() == pairs["release_synset"].to_pylist()
    assert all(k.startswith(s) for k, s in zip(pairs["eval_key"].to_pylist(),
                                               pairs["eval_synset"].to_pylist()))


def test_release_against_itself(built):
    found = find_leakage(str(built), str(built))
    keys = release_hashes(open_release(str(built)))["key"].to_pylist()
    zero = {(r["eval_key"], r["release_key"]) for r in found.pairs.to_pylist()
            if r["distance"] == 0}
    assert {(k, k) for k in keys} <= zero
    assert found.leaked == found.evaluated == len(keys)


def test_dedup_against_hashes_match_the_build(built, originals):
    """external_hashes of the release's own sources, with its transform, equal its phashes."""
    transform = transform_options(open_release(str(built)).manifest.config)
    hashes = external_hashes([r["source"] for r in originals], transform)
    # The sources are single files (no synset folder in the URI): hashed under the placeholder.
    assert hashes["phash"].to_pylist() == [r["phash"] for r in originals]
    assert hashes["synset"].null_count == hashes.num_rows


def test_cli_json_and_table(built, evalset, capsys):
    folder, copies = evalset
    parser = argparse.ArgumentParser()
    cmd_leakage.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["leakage", str(built), str(folder), "--json"])
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert {p["eval_source"].rsplit("/", 1)[-1] for p in data["pairs"]} == set(copies)
    args = parser.parse_args(["leakage", str(built), str(folder)])
    assert args.func(args) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(f"{len(copies)} of {len(copies) + 6} eval images have copies")
