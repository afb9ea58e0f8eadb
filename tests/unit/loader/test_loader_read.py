"""The loader on a real (tiny, Ray-free) release: exactly once, resume, mixing, bad data."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import releasegen
from synshard.shards import ShardDataset
from synshard.shards.loader_state import StateError
from synshard.shards.shuffle import mixing_ratio

OPTS = dict(image_size=8, open_shards=8, buffer_size=40)


@pytest.fixture(scope="module")
def rel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rel")
    releasegen.build(root, 6, {"train": 30, "val": 5}, target_bytes=30_000)
    return root


@pytest.fixture(scope="module")
def mixrel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mix")
    releasegen.build(root, 100, 28, target_bytes=60_000, size=(8, 8))
    return root


def keys(samples):
    return [s["key"] for s in samples]


def all_keys(root, split="train"):
    ds = ShardDataset(str(root), split, shuffle=False, **OPTS)
    return keys(ds)


def test_yields_every_sample_decoded_with_manifest_labels(rel):
    ds = ShardDataset(str(rel), "train", **OPTS)
    out = list(ds)
    assert len(out) == len(ds) == ds.release.manifest.counts["by_split"]["train"]
    assert len(set(keys(out))) == len(out)
    s = out[0]
    assert s["image"].shape == (8, 8, 3) and s["image"].dtype == np.uint8
    assert s["label"] == int(s["synset"][1:]) - 10000000  # releasegen: label c for wnid(c)
    assert s["key"].startswith(s["synset"] + "_")
    assert ds.stats.corrupt == ds.stats.unreadable == 0


@pytest.mark.parametrize("remainder", ["drop", "pad"])
def test_two_ranks_two_workers_exactly_once(rel, remainder):
    universe = all_keys(rel)
    per_rank = []
    for rank in range(2):
        ds = ShardDataset(str(rel), "train", rank=rank, world_size=2, remainder=remainder, **OPTS)
        per_rank.append([k for w in range(2) for k in keys(ds.iter_worker(w, 2))])
        assert len(per_rank[-1]) == len(ds)
    assert len(per_rank[0]) == len(per_rank[1])
    counts = Counter(k for r in per_rank for k in r)
    assert set(counts) <= set(universe)
    extra = sum(counts.values()) - len(set(counts))
    missing = len(set(universe) - set(counts))
    assert extra + missing <= 1 and max(counts.values()) <= 2


def test_deterministic_per_seed_and_epoch(rel):
    a = keys(ShardDataset(str(rel), "train", seed=1, **OPTS))
    assert a == keys(ShardDataset(str(rel), "train", seed=1, **OPTS))
    ds = ShardDataset(str(rel), "train", seed=1, **OPTS)
    ds.set_epoch(1)
    assert sorted(keys(ds)) == sorted(a) and keys(ds) != a
    again = ShardDataset(str(rel), "train", seed=1, **OPTS)
    assert [s["image"].tobytes() for s in again] == [s["image"].tobytes() for s in ShardDataset(str(rel), "train", seed=1, **OPTS)]


@pytest.mark.parametrize("stop", [0, 1, 37, 100])
def test_resume_equals_uninterrupted(rel, stop):
    full = ShardDataset(str(rel), "train", seed=2, **OPTS)
    full.set_epoch(3)
    expected = [(s["key"], s["image"].tobytes()) for s in full]
    first = ShardDataset(str(rel), "train", seed=2, **OPTS)
    first.set_epoch(3)
    it = iter(first)
    head = [next(it) for _ in range(stop)]
    state = first.state_dict()
    second = ShardDataset(str(rel), "train", seed=2, **OPTS)
    second.load_state_dict(state)
    got = [(s["key"], s["image"].tobytes()) for s in head + list(second)]
    assert got == expected


def test_state_from_another_loader_is_refused(rel):
    state = ShardDataset(str(rel), "train", seed=2, **OPTS).state_dict()
    with pytest.raises(StateError):
        ShardDataset(str(rel), "train", seed=3, **OPTS).load_state_dict(state)


def test_mixing_at_least_090_on_100_classes(mixrel):
    ds = ShardDataset(str(mixrel), "train", image_size=4)
    labels = [s["label"] for s in ds]
    assert len(labels) >= 2800
    assert mixing_ratio(labels, 256) >= 0.9
    naive = [s["label"] for s in ShardDataset(str(mixrel), "train", shuffle=False, image_size=4)]
    assert mixing_ratio(naive, 256) < 0.2


def test_batches_stack(rel):
    ds = ShardDataset(str(rel), "val", **OPTS)
    batches = list(ds.batches(7))
    assert batches[0]["image"].shape == (7, 8, 8, 3)
    assert batches[0]["label"].dtype == np.int64 and len(batches[0]["key"]) == 7
    assert sum(len(b["key"]) for b in batches) == len(ds)
    assert all(len(b["key"]) == 7 for b in ds.batches(7, drop_last=True))


def test_synset_subset(rel):
    chosen = [releasegen.wnid(1), releasegen.wnid(4)]
    ds = ShardDataset(str(rel), "train", synsets=chosen, **OPTS)
    out = list(ds)
    assert {s["synset"] for s in out} == set(chosen)
    assert {s["label"] for s in out} == {1, 4}  # labels stay the release's


def test_corrupt_samples_are_counted_and_replaced(tmp_path):
    releasegen.build(tmp_path, 2, 10, target_bytes=30_000, corrupt={3, 7})
    ds = ShardDataset(str(tmp_path), "train", **OPTS)
    out = list(ds)
    assert len(out) == len(ds) and ds.stats.replaced == 4
    assert ds.stats.corrupt >= 4  # a stand-in may be bad too, then the next one is taken
    assert ds.stats.errors and "n1000000" in ds.stats.errors[0]
    assert all(s["image"].shape == (8, 8, 3) for s in out)


def test_truncated_shard_is_skipped_not_fatal(tmp_path):
    m = releasegen.build(tmp_path, 3, 10, target_bytes=10**6)
    victim = tmp_path / m.shards[1].path
    victim.write_bytes(victim.read_bytes()[:3000])
    ds = ShardDataset(str(tmp_path), "train", **OPTS)
    out = list(ds)
    assert ds.stats.unreadable > 0 and ds.stats.replaced > 0
    assert len(out) == len(ds)
    assert {s["synset"] for s in out} >= {m.shards[0].synset, m.shards[2].synset}


def test_bboxes_follow_the_image(rel):
    ds = ShardDataset(str(rel), "val", transform="eval", **OPTS)
    boxes = [s["bboxes"] for s in ds]
    assert any(len(b) for b in boxes) and any(not len(b) for b in boxes)
    for b in boxes:
        assert b.dtype == np.float32 and ((b >= 0) & (b <= 8)).all()


def test_hook_runs_last(rel):
    def hook(sample, rng):
        return {**sample, "image": sample["image"][:4], "extra": int(rng.integers(10))}

    s = next(iter(ShardDataset(str(rel), "val", hook=hook, **OPTS)))
    assert s["image"].shape == (4, 8, 3) and 0 <= s["extra"] < 10


def test_import_needs_neither_ray_nor_torch():
    code = ("import sys, synshard.shards as s; s.ShardDataset; import synshard.shards.loader;"
            "bad = [m for m in ('ray', 'torch') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_threaded_reading_gives_the_inline_sequence(rel):
    """Decode threads (chunked tasks) change nothing but speed: same samples, same order."""
    def seq(threads):
        return [(s["key"], s["image"].tobytes()) for s in ShardDataset(str(rel), "train", seed=5, threads=threads)]

    inline = seq(1)
    assert seq(2) == inline and seq(3) == inline


def test_reader_threads_by_where_it_runs(rel):
    from synshard.shards import loader

    ds = ShardDataset(str(rel), "train")
    assert ds._threads(in_worker_process=False) == (loader.LOCAL_THREADS, loader.LOCAL_CHUNK)
    assert ds._threads(in_worker_process=True) == (1, loader.LOCAL_CHUNK)  # the workers are the parallelism
    assert ShardDataset(str(rel), "train", threads=3)._threads(True) == (3, loader.LOCAL_CHUNK)


def test_in_order_chunks_keep_order_and_stop_early():
    from synshard.shards.loader_read import in_order

    items = list(range(101))
    for threads, chunk in [(1, 1), (2, 1), (2, 8), (3, 7)]:
        assert list(in_order(items, lambda i: i * i, threads, 16, chunk)) == [i * i for i in items]
    it = in_order(items, lambda i: i, 2, 16, 8)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()  # the pool shuts down with work pending: no hang, no error


def test_nothing_to_stream_says_why_and_what_there_is(tmp_path):
    import dataclasses

    from synshard.shards.layout import ShardError
    from synshard.shards.release import commit_manifest, release_fs

    manifest = releasegen.build(tmp_path / "rel", classes=2, per_class={"train": 3, "val": 2})
    with pytest.raises(ShardError, match="release has no split 'test': its splits are train, val"):
        ShardDataset(str(tmp_path / "rel"), split="test")
    only_parquet = dataclasses.replace(manifest, shards=tuple(
        dataclasses.replace(e, format="parquet") for e in manifest.shards))
    commit_manifest(*release_fs(str(tmp_path / "rel")), only_parquet)
    with pytest.raises(ShardError, match=r"no webdataset shards \(only parquet\): the loader "
                                         "streams WebDataset shards; rebuild with --format"):
        ShardDataset(str(tmp_path / "rel"), split="train")
