"""A build whose near-duplicate join runs as Ray tasks (`near_parallel_above = 0`) commits the
release the in-process join commits, byte for byte, conflicts included."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

import synshard
from synshard.builder import neardup_ray
from synshard.shards.release import open_release
from releasefiles import release_bytes


@pytest.fixture(scope="module")
def near_sources(sample_dir, tmp_path_factory) -> Path:
    """The sample plus JPEG q85 re-saves of two of its photos filed under other synsets (near
    pairs across synsets) and one under its own synset (a near copy)."""
    root = tmp_path_factory.mktemp("near-src") / "src"
    shutil.copytree(sample_dir, root, ignore=shutil.ignore_patterns("README.md"))
    copies = [("n02165456", "n09428293"), ("n09428293", "n11939491"), ("n11939491", None)]
    for src_syn, dst_syn in copies:
        photo = sorted((sample_dir / src_syn).glob("*.JPEG"))[0]
        buf = io.BytesIO()
        with Image.open(photo) as im:
            im.convert("RGB").save(buf, "JPEG", quality=85)
        (root / (dst_syn or src_syn) / f"resaved_{photo.name}").write_bytes(buf.getvalue())
    return root


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_ray_join_build_is_byte_identical(ray_local, near_sources, tmp_path, monkeypatch,
                                          policy):
    calls = []
    real = neardup_ray.search_distinct_ray

    def counted(distinct, radius, *args, **kw):
        calls.append(len(distinct))
        return real(distinct, radius, *args, **kw)

    monkeypatch.setattr(neardup_ray, "search_distinct_ray", counted)
    out = {}
    for where, above in (("ray", 0), ("local", 300_000)):
        out[where] = tmp_path / where
        synshard.build([str(near_sources)], str(out[where]), name="r", progress=False,
                       val_fraction=0.25, near_conflicts=policy, near_parallel_above=above,
                       log=lambda m: None)
    assert len(calls) == 1  # the Ray search ran once, for the first build only
    assert release_bytes(out["ray"]) == release_bytes(out["local"])
    release = open_release(str(out["ray"]))
    conflicts = release.read_table("conflicts").num_rows
    kinds = set(release.read_table("duplicates")["kind"].to_pylist())
    if policy == "keep":
        assert conflicts >= 1 and "near" in kinds
    else:
        assert conflicts == 0 and "label-conflict" in kinds
