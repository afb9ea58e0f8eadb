"""Planning across sources: determinism, fingerprints, limits, accounting (one row per input)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synshard.ingest.sources import plan_sources
from test_ingest_folders import read_all
from test_ingest_support import jpeg, tar_bytes, write_tree
from test_ingest_tars import INNER, tar_of_tars


@pytest.fixture
def sources(tmp_path) -> list[str]:
    folder = write_tree(tmp_path / "folder", {f"n01440764/{i}.jpg": jpeg(i) for i in range(5)})
    (tmp_path / "flat.tar").write_bytes(
        tar_bytes({f"n02102040/{i}.jpg": jpeg(i) for i in range(4)})
    )
    (tmp_path / "train.tar").write_bytes(tar_of_tars())  # 4 inputs in 3 inner tars
    (tmp_path / "s.tgz").write_bytes(
        tar_bytes({f"n01530575/{i}.jpg": jpeg(i) for i in range(3)}, "w:gz")
    )
    return [
        str(folder),
        str(tmp_path / "flat.tar"),
        str(tmp_path / "train.tar"),
        str(tmp_path / "s.tgz"),
    ]


def rows(plan) -> list[tuple]:
    return sorted(
        (r["source"], r["synset"], r["split"], r["reason"]) for r in read_all(plan).to_pylist()
    )


def test_every_input_is_one_row(sources):
    table = read_all(plan_sources(sources))
    assert table.num_rows == 5 + 4 + 4 + 3
    assert len(set(table.column("source").to_pylist())) == table.num_rows


@settings(max_examples=10, deadline=None)
@given(st.permutations(range(4)), st.booleans())
def test_order_does_not_matter(tmp_path_factory, order, repeat):
    base = tmp_path_factory.getbasetemp() / "perm"
    if not base.exists():
        write_tree(base / "folder", {"n01440764/a.jpg": jpeg(1), "b.jpg": jpeg(2)})
        (base / "t.tar").write_bytes(tar_bytes({"n02102040/c.jpg": jpeg(3)}))
        (base / "o.tar").write_bytes(tar_of_tars())
        (base / "z.tgz").write_bytes(tar_bytes({"n01530575/d.jpg": jpeg(4)}, "w:gz"))
    uris = [str(base / n) for n in ("folder", "t.tar", "o.tar", "z.tgz")]
    given_uris = [uris[i] for i in order] + ([uris[order[0]]] if repeat else [])
    reference = plan_sources(sorted(uris))
    plan = plan_sources(given_uris)
    assert plan.fingerprint == reference.fingerprint
    assert plan.tasks == reference.tasks
    assert rows(plan) == rows(reference)


def test_fingerprint_changes_with_inputs(sources, tmp_path):
    before = plan_sources(sources).fingerprint
    assert plan_sources(sources).fingerprint == before
    target = tmp_path / "folder" / "n01440764" / "0.jpg"
    target.write_bytes(jpeg(99) + b"more")
    assert plan_sources(sources).fingerprint != before
    changed = plan_sources(sources).fingerprint
    (tmp_path / "folder" / "n01440764" / "new.jpg").write_bytes(jpeg(1))
    assert plan_sources(sources).fingerprint != changed
    assert plan_sources(sources[:-1]).fingerprint != plan_sources(sources).fingerprint


def test_fingerprint_covers_labels(sources, tmp_path):
    labels = tmp_path / "labels"
    labels.write_text("a.jpg,n01440764\n")
    with_labels = plan_sources(sources, labels=str(labels)).fingerprint
    assert with_labels != plan_sources(sources).fingerprint
    labels.write_text("a.jpg,n01440764\nb.jpg,n01440764\n")
    os.utime(labels, (1, 1))
    assert plan_sources(sources, labels=str(labels)).fingerprint != with_labels


def expected_order(sources: list[str]) -> list[str]:
    """All inputs in the limit's order: sources by URI, files by path, members in archive order."""
    out = []
    for uri in sorted(sources):
        if uri.endswith("folder"):
            out += [f"{uri}/n01440764/{i}.jpg" for i in range(5)]
        elif uri.endswith("flat.tar"):
            out += [f"{uri}::n02102040/{i}.jpg" for i in range(4)]
        elif uri.endswith("train.tar"):
            out += [f"{uri}::{t}::{m}" for t, ms in INNER.items() for m in ms]
        else:
            out += [f"{uri}::n01530575/{i}.jpg" for i in range(3)]
    return out


@pytest.mark.parametrize("limit", [0, 1, 4, 5, 7, 9, 10, 11, 13, 14, 16, 100])
def test_limit_takes_the_first_inputs(sources, limit):
    plan = plan_sources(list(reversed(sources)), limit=limit, files_per_task=2)
    got = sorted(read_all(plan).column("source").to_pylist())
    assert got == sorted(expected_order(sources)[:limit])


def test_limit_changes_fingerprint(sources):
    assert plan_sources(sources, limit=3).fingerprint != plan_sources(sources).fingerprint


def test_bad_arguments(tmp_path):
    from synshard.transforms.errors import SynshardError

    with pytest.raises(SynshardError):
        plan_sources([str(tmp_path)], files_per_task=0)
    with pytest.raises(SynshardError):
        plan_sources([str(tmp_path)], limit=-1)
    with pytest.raises(SynshardError, match="source not found"):
        plan_sources([str(tmp_path), str(Path(tmp_path) / "missing.tar")])


def test_same_folder_twice_is_read_once(tmp_path):
    write_tree(tmp_path / "f", {"n01440764/a.jpg": jpeg(1)})
    plan = plan_sources([str(tmp_path / "f"), f"{tmp_path}/f/"])
    assert read_all(plan).num_rows == 1


def test_candidate_bodies_as_bytes_like_or_chunks_become_one_binary_column():
    from synshard.ingest.candidates import _binary_array

    column = _binary_array([b"ab", bytearray(b"cd"), memoryview(b"ef"), [b"g", b"h"], None])
    assert column.to_pylist() == [b"ab", b"cd", b"ef", b"gh", None]
