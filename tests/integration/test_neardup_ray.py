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


def _realistic(n: int, seed: int) -> np.ndarray:
    """bench_neardup's realistic hashes (clusters, bursts, near-blank images, planted exact and
    near copies) plus big groups of identical hashes (blank images)."""
    import bench_neardup

    h, _, _, _ = bench_neardup.realistic_hashes(n, 6, seed)
    blank = np.repeat(np.array([0, 2**64 - 1, 0x5555_5555_5555_5555], np.uint64), 400)
    return np.concatenate([h, blank])


@pytest.mark.parametrize("parts_per_table", [None, 3])
def test_ray_join_finds_exactly_the_in_process_pairs(ray_local, parts_per_table):
    """Realistic hashes: the Ray search's distinct pairs equal the in-process ones (None:
    tables grouped into tasks, same order too; 3: every table also split into key ranges)."""
    from synshard.transforms.neardup import collapse, search_distinct

    uniq, _ = collapse(_realistic(60_000, 5))
    want = search_distinct(uniq, 6)
    got = neardup_ray.search_distinct_ray(uniq, 6, parts_per_table=parts_per_table)
    assert len(want) > 1000  # bursts and planted copies: a real amount of output
    if parts_per_table is not None:
        got, want = got.sorted(), want.sorted()
    for g, w in zip(got.as_tuple(), want.as_tuple()):
        np.testing.assert_array_equal(g, w)


def _meta(n: int, seed: int):
    """A metadata table over realistic hashes: 40 synsets, 10% val, shuffled keys."""
    import pyarrow as pa

    h = _realistic(n, seed)
    rng = np.random.default_rng(seed)
    m = h.size
    return pa.table({
        "key": [f"k{k:07d}" for k in rng.permutation(m)],
        "synset": [f"n{k:08d}" for k in rng.integers(0, 40, m)],
        "split": np.where(rng.random(m) < 0.1, "val", "train").tolist(),
        "width": rng.integers(100, 500, m).astype(np.int32),
        "height": rng.integers(100, 500, m).astype(np.int32),
        "phash": pa.array(h, pa.uint64()),
        "source": [f"src/{k}" for k in range(m)],
    })


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_policy_on_the_ray_join_is_the_in_process_policy(ray_local, policy):
    """Survivors, duplicate records (near, cross-split, label-conflict) and the conflicts
    table are the same whichever process found the pairs."""
    from synshard.transforms.neardup_policy import near_dedup

    meta = _meta(30_000, 9)
    local = near_dedup(meta, 6, policy)
    on_ray = near_dedup(meta, 6, policy, search=neardup_ray.search_distinct_ray)
    np.testing.assert_array_equal(on_ray.keep, local.keep)
    np.testing.assert_array_equal(on_ray.labels, local.labels)
    assert on_ray.duplicates.equals(local.duplicates)
    assert on_ray.conflicts.equals(local.conflicts)
    kinds = set(local.duplicates["kind"].to_pylist())
    assert {"near", "cross-split"} <= kinds
    if policy == "keep":
        assert local.conflicts.num_rows > 100 and "label-conflict" not in kinds
    else:
        assert local.conflicts.num_rows == 0 and "label-conflict" in kinds


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
