"""The input generators of `make bench-peers` (bench/peers/peer_inputs.py): deterministic, and
the planted copies and simulated crowds are what they claim. No timing."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageStat

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench" / "peers"))
import peer_inputs as pi  # noqa: E402


def test_simulated_votes_are_deterministic_and_shaped():
    a = pi.simulate_votes(500, 5, 40, classes=2, seed=3)
    b = pi.simulate_votes(500, 5, 40, classes=2, seed=3)
    c = pi.simulate_votes(500, 5, 40, classes=2, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["label"], c["label"])
    assert a["image"].size == a["worker"].size == a["label"].size == 2500
    assert np.array_equal(np.bincount(a["image"]), np.full(500, 5))
    assert set(np.unique(a["label"])) <= {0, 1} and a["truth"].size == 500
    assert a["worker"].min() >= 0 and a["worker"].max() < 40


def test_worker_kinds_follow_the_shares():
    kinds = pi.worker_kinds(2000)
    assert np.array_equal(np.bincount(kinds), [1200, 400, 200, 200])


@pytest.mark.parametrize("classes", [2, 10])
def test_workers_behave_as_their_kind(classes):
    v = pi.simulate_votes(20_000, 5, 100, classes=classes, seed=0)
    kind = pi.worker_kinds(100)[v["worker"]]
    right = v["label"] == v["truth"][v["image"]]
    assert abs(right[kind == 0].mean() - pi.ACCURACY) < 0.01  # reliable
    assert abs(right[kind == 3].mean() - (1 - pi.ACCURACY)) < 0.01  # adversarial
    spam = v["label"][kind == 1]
    assert (spam == spam[0]).all()  # a spammer always gives the same answer
    assert abs(right[kind == 2].mean() - 1 / classes) < 0.02  # random clickers


def test_binary_truth_has_the_positive_rate():
    v = pi.simulate_votes(50_000, 1, 10, classes=2, seed=1)
    assert abs(v["truth"].mean() - pi.POSITIVE_RATE) < 0.01


def test_votes_round_trip(tmp_path):
    v = pi.simulate_votes(100, 3, 10, classes=10, seed=0)
    back = pi.load_votes(pi.save_votes(v, tmp_path / "v.npz"))
    assert back.keys() == v.keys() and all(np.array_equal(back[k], v[k]) for k in v)


def test_one_vs_rest_expands_each_vote_over_its_images_candidates():
    votes = {"image": np.array([0, 0, 0, 1, 1]), "worker": np.array([7, 8, 9, 7, 8]),
             "label": np.array([2, 5, 2, 1, 1]), "truth": np.array([2, 1])}
    out = pi.one_vs_rest(votes)
    got = sorted(zip(out["image"].tolist(), out["synset"].tolist(), out["worker"].tolist(),
                     out["vote"].tolist()))
    assert got == [(0, 2, 7, True), (0, 2, 8, False), (0, 2, 9, True),
                   (0, 5, 7, False), (0, 5, 8, True), (0, 5, 9, False),
                   (1, 1, 7, True), (1, 1, 8, True)]


def _photo(tmp: Path, i: int) -> Path:
    """A small photo-like JPEG: smooth gradients plus seeded texture."""
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:120, 0:160]
    base = np.stack([(x * (1 + i % 3) + y) % 256, (y * 2 + i * 40) % 256, (x + y * 3) % 256], -1)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    path = tmp / f"src{i}.jpg"
    Image.fromarray(pixels).save(path, quality=92)
    return path


def _decode(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def test_planted_copies_are_what_they_claim(tmp_path):
    photos = [_photo(tmp_path, i) for i in range(8)]
    manifest = pi.plant_copies(photos, tmp_path / "set", copies=4, seed=0)
    files = manifest["files"]
    assert len(files) == 12 and manifest["distinct"] == 8
    sources = [s for _, s, _ in manifest["planted"]]
    assert len(set(sources)) == 4  # one copy per source photo
    assert [k for _, _, k in manifest["planted"]] == list(pi.COPY_KINDS)
    for i in range(8):  # the distinct photos are the originals, byte for byte
        assert (tmp_path / "set" / files[i]).read_bytes() == photos[i].read_bytes()
    for copy, src, kind in manifest["planted"]:
        a, b = _decode(tmp_path / "set" / files[src]), _decode(tmp_path / "set" / files[copy])
        if "half" in kind:
            assert b.size == (a.width // 2, a.height // 2)
            a = a.resize(b.size, Image.LANCZOS)
        else:
            assert b.size == a.size
        mean_a, mean_b = (ImageStat.Stat(im.convert("L")).mean[0] for im in (a, b))
        if kind == "bright8":
            assert 1.04 < mean_b / mean_a < 1.09
        else:
            assert abs(mean_b - mean_a) < 2
        diff = np.abs(np.asarray(a, float) - np.asarray(b, float)).mean()
        assert diff < 25  # a near copy, not another picture
    on_disk = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert on_disk == manifest


def test_q60_copy_is_reencoded_at_lower_quality(tmp_path):
    src = _photo(tmp_path, 0).read_bytes()
    q60 = pi.make_copy(src, "q60")
    q90 = Image.open(io.BytesIO(src))
    assert len(q60) < len(src)
    assert Image.open(io.BytesIO(q60)).size == q90.size
    with pytest.raises(ValueError):
        pi.make_copy(src, "sepia")


def test_plant_copies_is_deterministic(tmp_path):
    photos = [_photo(tmp_path, i) for i in range(6)]
    a = pi.plant_copies(photos, tmp_path / "a", copies=3, seed=5)
    b = pi.plant_copies(photos, tmp_path / "b", copies=3, seed=5)
    assert a == b


def test_plant_copies_refuses_more_copies_than_photos(tmp_path):
    with pytest.raises(ValueError, match="copies need"):
        pi.plant_copies([_photo(tmp_path, 0)], tmp_path / "x", copies=2)


def test_score_pairs_counts_recall_and_false_pairs_among_distinct():
    manifest = {"distinct": 4, "planted": [[4, 0, "q60"], [5, 2, "half"]]}
    pairs = {(0, 4), (1, 3), (3, 5), (2, 3)}  # one planted found, two false among distinct
    s = pi.score_pairs(pairs, manifest)
    assert s == {"recall": 0.5, "found": 1, "planted": 2, "false_pairs_distinct": 2, "pairs": 4}


def test_url_lists_hold_the_same_urls(tmp_path):
    txt, csv = pi.write_url_lists("http://127.0.0.1:1", ["0.jpg", "1.jpg"], tmp_path)
    urls = txt.read_text().split()
    lines = csv.read_text().splitlines()
    assert urls == ["http://127.0.0.1:1/0.jpg", "http://127.0.0.1:1/1.jpg"]
    assert lines[0] == "url,synset"
    assert [line.split(",")[0] for line in lines[1:]] == urls


def test_random_spammers_answer_at_random():
    v = pi.simulate_votes(20_000, 5, 100, classes=10, seed=0, spammers="random")
    kind = pi.worker_kinds(100)[v["worker"]]
    spam = v["label"][kind == 1]
    assert len(np.unique(spam)) == 10
    assert abs((spam == v["truth"][v["image"]][kind == 1]).mean() - 0.1) < 0.02
    with pytest.raises(ValueError, match="spammers"):
        pi.simulate_votes(10, 1, 10, spammers="sometimes")
