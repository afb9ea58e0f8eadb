"""The Ray wrapper of the near-duplicate search gives exactly the pure search's pairs."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from synshard.transforms.neardup import find_pairs

neardup_ray = pytest.importorskip("synshard.builder.neardup_ray")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def test_ray_search_equals_local_search(ray_local):
    rng = np.random.default_rng(11)
    base = rng.integers(0, 2**64, 5000, dtype=np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, (1000, 3)).astype(np.uint64)
    near = base[:1000] ^ flips[:, 0] ^ flips[:, 1] ^ flips[:, 2]  # distance 1..3
    blank = np.zeros(200, dtype=np.uint64)  # a big group of identical hashes
    h = np.concatenate([base, near, blank, base[:50]])
    got = neardup_ray.find_pairs_ray(h, 4, parts_per_table=3)
    want = find_pairs(h, 4)
    assert len(want[0]) >= 1000 + 200 * 199 // 2 + 50
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


PHOTOS = Path(__file__).resolve().parents[2] / ".cache" / "photos" / "imagenet-like"
DEFAULT_RADIUS = 6  # docs/phash.md
# 100% found at radius 6 on all 600 study photos:
EXACT = ("lossless re-save (PNG)", "JPEG q95", "JPEG q85", "blur (Gaussian r=1)")
# >= 98.5% found at radius 6 in the study (a few near-flat photos flip many bits):
MOSTLY = ("JPEG q70", "JPEG q50", "JPEG q30", "downscale 0.9x", "downscale 0.75x",
          "downscale 0.5x", "downscale 0.25x", "blur (Gaussian r=2)", "brightness +10%",
          "brightness -10%")


def _recall(study, images, names):
    base = [study.phash_image(im) for im in images]
    copies = [study.phash_image(study.EDITS[name](im)) for name in names for im in images]
    h = np.array(base + copies, dtype=np.uint64)
    i, j, _ = neardup_ray.find_pairs_ray(h, DEFAULT_RADIUS)
    found = set(zip(i.tolist(), j.tolist()))
    n = len(images)
    hits = [(k % n, n + k) in found for k in range(len(copies))]
    return float(np.mean(hits)), i, j


@pytest.fixture(scope="module")
def photos_dir() -> Path:
    """80 ImageNet-like crops of real photographs (Debian wallpapers, fetched once by apt-get)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import photos

    return photos.ensure_photos(PHOTOS.parent, count=80)


@pytest.mark.slow
def test_real_photos_recall_and_false_pairs(ray_local, photos_dir):
    """Edited copies of real photos are found at the default radius; unrelated photos are not.

    Bound on false pairs: the study measured none at distance <= 12 among 172,500 pairs of crops
    of different photographs (minimum 14); we allow 1 in 10,000 so only a regression fails.
    """
    study = pytest.importorskip("phash_study", reason="bench/ on sys.path")
    images, origin = study.load(photos_dir, 80)
    recall, i, j = _recall(study, images, EXACT)
    assert recall == 1.0
    recall, _, _ = _recall(study, images, MOSTLY)
    assert recall >= 0.97
    n, src = len(images), np.array(origin)
    both = (i < n) & (j < n)
    unrelated = int(np.sum(src[i[both]] != src[j[both]]))
    assert unrelated <= 1e-4 * n * (n - 1) / 2
