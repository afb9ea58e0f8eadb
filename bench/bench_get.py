"""Benchmark: random `get` by key on a local release against reading the same images from a folder.

Job: --count JPEGs (about 20-40 KB, noisy content so they do not compress away) over --synsets
synsets, written as files in `<synset>/<key>.jpg` and as a release (WebDataset shards of
--shard-mb MB with their indexes, no Ray: the shard writers directly). Then, in random key order:
  get-cold   synshard.shards.access.get_many(uri, [key]) per key: manifest + index + range each time
  get-warm   one KeyReader, one key per call (indexes cached after first use: a server's case)
  get-batch  one KeyReader, --batch keys per call (one cat_ranges per batch)
  folder     open(<synset>/<key>.jpg).read() per key (the per-file baseline)
Prints keys/s (median of --repeats) and each ratio against the folder baseline.

    .venv/bin/python bench/bench_get.py [--count 3000]
"""
from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
from PIL import Image

from synshard.shards.access import KeyReader, get_many
from synshard.shards.manifest import Manifest, counts_from_shards
from synshard.shards.release import commit_manifest, open_release
from synshard.shards.webdataset import write_webdataset_shards
from synshard.transforms.schema import RECORD_SCHEMA, make_key, sha256_hex


def make_images(count: int, synsets: int, seed: int = 0) -> dict[str, list[dict]]:
    """Records per synset with small noisy JPEGs (the bytes matter here, not the pictures)."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[dict]] = {}
    for i in range(count):
        synset = f"n{10_000_000 + i % synsets:08d}"
        pixels = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).resize((256, 192)).save(buf, "JPEG", quality=85)
        data = buf.getvalue()
        sha = sha256_hex(data + i.to_bytes(4, "big"))
        groups.setdefault(synset, []).append({
            "key": make_key(synset, sha), "synset": synset, "label": i % synsets,
            "split": "train", "image": data, "format": "jpeg", "width": 256, "height": 192,
            "orig_width": 256, "orig_height": 192, "orig_format": "jpeg", "sha256": sha,
            "phash": 0, "source": f"bench/{i}.jpg", "bboxes": None, "confidence": None,
            "license": None, "attribution": None, "ops": None})  # fmt: skip
    return groups


def write_both(groups: dict[str, list[dict]], root: Path, shard_bytes: int) -> None:
    fs = fsspec.filesystem("file")
    entries = []
    for synset, rows in sorted(groups.items()):
        rows.sort(key=lambda r: r["key"])
        folder = root / "folder" / synset
        folder.mkdir(parents=True)
        for r in rows:
            (folder / f"{r['key']}.jpg").write_bytes(r["image"])
        table = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
        entries += write_webdataset_shards(fs, str(root / "rel"), table, shard_bytes)
    n = sum(len(r) for r in groups.values())
    commit_manifest(fs, str(root / "rel"), Manifest(
        name="bench", tool_version="0", config={}, classes=[], tables={}, fingerprint="0",
        counts=counts_from_shards(entries, "webdataset"), shards=tuple(entries),
        accounting={"inputs": n, "accepted": n, "rejected": 0, "duplicates": 0}))


def timed(fn, keys: list[str], repeats: int) -> float:
    """Median keys/s of `fn(keys)` over `repeats` passes."""
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        got = fn(keys)
        rates.append(len(keys) / (time.perf_counter() - t))
        assert got == len(keys)
    return statistics.median(rates)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--synsets", type=int, default=20)
    ap.add_argument("--shard-mb", type=float, default=16)
    ap.add_argument("--lookups", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-get-") as tmp:
        root = Path(tmp)
        groups = make_images(args.count, args.synsets)
        write_both(groups, root, int(args.shard_mb * 1e6))
        keys = [r["key"] for rows in groups.values() for r in rows]
        sample = random.Random(1).sample(keys, min(args.lookups, len(keys)))
        uri = str(root / "rel")
        folder = root / "folder"
        reader = KeyReader(open_release(uri))

        def folder_read(ks):
            return sum(1 for k in ks if (folder / k.rsplit("_", 1)[0] / f"{k}.jpg").read_bytes())

        def cold(ks):
            return sum(len(get_many(uri, [k])) for k in ks)

        def warm(ks):
            return sum(len(reader.images([k])) for k in ks)

        def batch(ks):
            return sum(len(reader.images(ks[i:i + args.batch]))
                       for i in range(0, len(ks), args.batch))

        base = timed(folder_read, sample, args.repeats)
        print(f"{len(keys)} images in {args.synsets} synsets, {len(sample)} random keys")
        print(f"  folder     {base:9.0f} keys/s   (baseline)")
        for name, fn in (("get-cold", cold), ("get-warm", warm), ("get-batch", batch)):
            rate = timed(fn, sample[: len(sample) // 4] if name == "get-cold" else sample,
                         args.repeats)
            print(f"  {name:10s} {rate:9.0f} keys/s   {rate / base:5.2f}x folder")
    return 0


if __name__ == "__main__":
    sys.exit(main())
