"""The manifest: stable JSON round trips and clear errors on bad input."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synshard.shards.layout import ShardEntry
from synshard.shards.manifest import Manifest, ManifestError, counts_from_shards, utc_now
from synshard.errors import SynshardError


def _entry(
    path: str, fmt: str = "webdataset", split: str = "train", synset: str = "n1", n: int = 3
) -> ShardEntry:
    return ShardEntry(path, fmt, split, synset, n, 100 * n, "ab" * 32)  # type: ignore[arg-type]


def _manifest(**over) -> Manifest:
    shards = (_entry("webdataset/val/n1/b.tar", split="val", n=2), _entry("webdataset/train/n1/a.tar"),
              _entry("parquet/split=train/synset=n1/p.parquet", "parquet"))  # fmt: skip
    fields = dict(
        name="r1", tool_version="0.1.0", config={"resize": "shorter:256", "nested": {"b": 1, "a": [1, 2]}},
        classes=[{"synset": "n1", "label": 0, "lemmas": ["thing", "object"]}],
        counts=counts_from_shards(shards, "webdataset"), shards=shards,
        accounting={"inputs": 7, "accepted": 5, "rejected": 1, "duplicates": 1},
        tables={"rejects": {"path": "rejects.parquet", "rows": 1, "bytes": 10, "sha256": "cd" * 32}},
        fingerprint="f" * 64, created="2024-05-01T12:00:00Z",
    )  # fmt: skip
    fields.update(over)
    return Manifest(**fields)


def test_json_round_trip_is_exact_and_stable() -> None:
    m = _manifest()
    text = m.to_json()
    back = Manifest.from_json(text)
    assert back == m
    assert back.to_json() == text
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    assert data["format_version"] == 1
    assert [s["path"] for s in data["shards"]] == sorted(s["path"] for s in data["shards"])


def test_shards_are_sorted_whatever_the_input_order() -> None:
    m = _manifest()
    reordered = _manifest(shards=tuple(reversed(m.shards)))
    assert reordered == m and reordered.to_json() == m.to_json()


def test_without_created_compares_builds() -> None:
    a = _manifest(created="2024-05-01T12:00:00Z")
    b = _manifest(created="2025-01-01T00:00:00Z")
    assert a != b and a.without_created() == b.without_created()
    assert a.without_created().to_json() == b.without_created().to_json()


def test_counts_from_shards() -> None:
    counts = _manifest().counts
    assert counts == {
        "total": 5,
        "by_split": {"train": 3, "val": 2},
        "by_synset": {"n1": {"train": 3, "val": 2}},
    }


def test_created_is_iso_utc() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc_now())
    assert re.fullmatch(r"\d{4}-.*Z", _manifest(created=utc_now()).created)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(format_version=2), "format_version 2"),
        (lambda d: d.pop("format_version"), "format_version None"),
        (lambda d: d.pop("classes"), "missing ['classes']"),
        (lambda d: d.update(extra=1), "unknown ['extra']"),
        (lambda d: d["accounting"].update(inputs=8), "does not add up"),
        (lambda d: d["shards"][0].update(samples=-1), "non-negative"),
        (lambda d: d["shards"][0].update(path="../escape.tar"), "inside the release"),
        (lambda d: d["shards"][0].update(format="zip"), "unknown format"),
        (lambda d: d["tables"]["rejects"].update(path="/abs.parquet"), "inside the release"),
        (lambda d: d.update(config=[]), "'config' should be a dict"),
    ],
)
def test_bad_manifests_raise_manifest_error(edit, message) -> None:
    data = json.loads(_manifest().to_json())
    edit(data)
    with pytest.raises(ManifestError, match=re.escape(message)):
        Manifest.from_json(json.dumps(data))


def test_not_json_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_json("{nope")
    assert issubclass(ManifestError, SynshardError)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64) | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(deadline=None)  # a loaded 2-core machine is slow, not wrong
@given(config=st.dictionaries(st.text(max_size=8), _json, max_size=6), name=st.text(max_size=20))
def test_any_json_config_round_trips(config, name) -> None:
    m = _manifest(config=config, name=name)
    text = m.to_json()
    assert Manifest.from_json(text) == m
    assert Manifest.from_json(text).to_json() == text
