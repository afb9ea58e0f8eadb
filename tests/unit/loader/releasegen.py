"""Tiny synset-keyed releases written directly (no Ray): real JPEGs, several shards a synset."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pyarrow as pa
from PIL import Image

from synshard.shards.manifest import Manifest, counts_from_shards
from synshard.shards.release import commit_manifest, release_fs
from synshard.shards.webdataset import write_webdataset_shards
from synshard.transforms.schema import RECORD_SCHEMA, make_key


def wnid(i: int) -> str:
    return f"n{10000000 + i:08d}"


def jpeg(seed: int, size: tuple[int, int] = (24, 16)) -> bytes:
    """A small JPEG whose colour encodes `seed` (so tests can tell images apart)."""
    colour = (seed * 37 % 256, seed * 91 % 256, seed * 13 % 256)
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def records(synset: str, label: int, split: str, count: int, corrupt: set[int] = frozenset(),
            size: tuple[int, int] = (24, 16)) -> pa.Table:  # fmt: skip
    rows = []
    for i in range(count):
        image = b"not a jpeg" if i in corrupt else jpeg(label * 1000 + i, size)
        sha = hashlib.sha256(f"{synset}/{split}/{i}".encode()).hexdigest()
        rows.append({
            "key": make_key(synset, sha), "synset": synset, "label": label, "split": split,
            "image": image, "format": "jpeg", "width": size[0], "height": size[1],
            "orig_width": size[0], "orig_height": size[1], "orig_format": "jpeg", "sha256": sha,
            "phash": i, "source": f"/data/{synset}/{i}.jpg",
            "bboxes": [[2.0, 2.0, 12.0, 10.0]] if i % 2 else None, "confidence": None,
            "license": None, "attribution": None, "ops": "",
        })  # fmt: skip
    rows.sort(key=lambda r: r["key"])
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)


def build(root: Path | str, classes: int, per_class: dict[str, int] | int,
          target_bytes: int = 20_000, corrupt: set[int] = frozenset(),
          size: tuple[int, int] = (24, 16)) -> Manifest:  # fmt: skip
    """Write a release under `root`: `classes` synsets, `per_class[split]` samples each."""
    fs, path = release_fs(str(root))
    splits = per_class if isinstance(per_class, dict) else {"train": per_class}
    shards = []
    for c in range(classes):
        for split, n in splits.items():
            shards += write_webdataset_shards(
                fs, path, records(wnid(c), c, split, n + c % 3, corrupt, size), target_bytes
            )
    manifest = Manifest(
        name="loader-test", tool_version="0.1.0", config={}, fingerprint="0" * 64,
        classes=[{"synset": wnid(c), "label": c, "lemmas": [f"c{c}"]} for c in range(classes)],
        counts=counts_from_shards(shards, "webdataset"), shards=tuple(shards),
        accounting={"inputs": 0, "accepted": 0, "rejected": 0, "duplicates": 0}, tables={},
    )  # fmt: skip
    commit_manifest(fs, path, manifest)
    return manifest
