"""Record generators shared by the shard tests: fixed tables and Hypothesis strategies."""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from synshard.transforms.schema import RECORD_SCHEMA, make_key

FORMATS = ("jpeg", "webp", "png")


def make_record(synset: str, split: str, image: bytes, i: int = 0, **over: Any) -> dict[str, Any]:
    """A plausible record; `image` stands for encoded bytes (content does not matter here)."""
    sha = hashlib.sha256(image + i.to_bytes(4, "big")).hexdigest()
    row = {
        "key": make_key(synset, sha), "synset": synset, "label": 3, "split": split,
        "image": image, "format": FORMATS[i % 3], "width": 256, "height": 192,
        "orig_width": 500, "orig_height": 375, "orig_format": "jpeg", "sha256": sha,
        "phash": (2**64 - 1 - i) if i % 2 else i, "source": f"/data/{synset}/img_{i}.JPEG",
        "bboxes": [[1.5, 2.25, 100.0, 120.125]] if i % 2 else None,
        "confidence": 0.75 if i % 3 else None, "license": "CC-BY" if i % 2 else None,
        "attribution": None, "ops": "resize,encode",
    }  # fmt: skip
    row.update(over)
    return row


def make_records(synset: str, split: str, sizes: list[int]) -> pa.Table:
    """One (split, synset) group sorted by key, images of the given sizes."""
    rows = [make_record(synset, split, bytes([i % 251]) * size, i) for i, size in enumerate(sizes)]
    rows.sort(key=lambda r: r["key"])
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)


_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
_text = st.text(max_size=20)
_i32 = st.integers(0, 2**31 - 1)


@st.composite
def record_groups(draw: Any, max_rows: int = 8) -> pa.Table:
    """A random, valid (split, synset) group of records, sorted by key."""
    synset = draw(st.from_regex(r"n[0-9]{8}", fullmatch=True))
    split = draw(st.sampled_from(["train", "val", "test"]))
    hexes = draw(st.lists(st.from_regex(r"[0-9a-f]{64}", fullmatch=True), min_size=1,
                          max_size=max_rows, unique_by=lambda h: h[:16]))  # fmt: skip
    rows = []
    for sha in sorted(hexes):
        rows.append({
            "key": make_key(synset, sha), "synset": synset, "label": draw(_i32), "split": split,
            "image": draw(st.binary(max_size=300)), "format": draw(st.sampled_from(FORMATS)),
            "width": draw(_i32), "height": draw(_i32), "orig_width": draw(_i32),
            "orig_height": draw(_i32), "orig_format": draw(_text), "sha256": sha,
            "phash": draw(st.integers(0, 2**64 - 1)), "source": draw(_text),
            "bboxes": draw(st.none() | st.lists(st.lists(_f32, min_size=4, max_size=4), max_size=3)),
            "confidence": draw(st.none() | st.floats(0, 1, width=32)),
            "license": draw(st.none() | _text), "attribution": draw(st.none() | _text),
            "ops": draw(st.none() | _text),
        })  # fmt: skip
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)


def build_release(fs: Any, root: str, target_bytes: int = 3000,
                  formats: tuple[str, ...] = ("webdataset", "parquet")) -> Any:
    """A small committed release with both shard formats (or those given), two splits, two
    synsets and tables."""
    from synshard.shards.manifest import Manifest, counts_from_shards
    from synshard.shards.parquet import write_parquet_shards
    from synshard.shards.release import commit_manifest, write_table
    from synshard.shards.webdataset import write_webdataset_shards
    from synshard.transforms.schema import DUPLICATE_SCHEMA, REJECT_SCHEMA

    groups = [
        make_records("n01440764", "train", [900, 1200, 400, 2000, 700]),
        make_records("n01440764", "val", [300, 500]),
        make_records("n02084071", "train", [1500, 1600, 1700]),
    ]
    shards = []
    for records in groups:
        if "webdataset" in formats:
            shards += write_webdataset_shards(fs, root, records, target_bytes)
        if "parquet" in formats:
            shards += write_parquet_shards(fs, root, records, target_bytes)
    rejects = pa.Table.from_pylist(
        [{"source": "/data/x.jpg", "stage": "decode", "reason": "truncated"}], schema=REJECT_SCHEMA
    )
    tables = {
        "rejects": write_table(fs, root, "rejects", rejects),
        "duplicates": write_table(fs, root, "duplicates", DUPLICATE_SCHEMA.empty_table()),
    }
    manifest = Manifest(
        name="tiny", tool_version="0.1.0", config={"target_bytes": target_bytes},
        classes=[{"synset": "n01440764", "label": 0, "lemmas": ["tench"]},
                 {"synset": "n02084071", "label": 1, "lemmas": ["dog"]}],
        counts=counts_from_shards(shards, formats[0]), shards=tuple(shards),
        accounting={"inputs": 11, "accepted": 10, "rejected": 1, "duplicates": 0},
        tables=tables, fingerprint="f" * 64,
    )  # fmt: skip
    commit_manifest(fs, root, manifest)
    return manifest
