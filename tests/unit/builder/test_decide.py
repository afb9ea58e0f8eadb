"""The decision steps on metadata alone (no Ray, no images): rejects, exact and near dedup,
takedowns, pinned classes, caps, labels, and the accounting identity."""
from __future__ import annotations

import pyarrow as pa
import pytest
from coremeta import meta_row, meta_table

from synshard.builder.assembly import synset_jobs
from synshard.builder.decide.incremental import Takedown, load_takedown
from synshard.builder.decide.steps import decide
from synshard.config import build_config

LADYBUG, SEASHORE = "n02165456", "n09428293"


def _cfg(**kw):
    return build_config({"sources": ["/data"], "out": "/rel", **kw})


def _identity(d) -> None:
    acc = d.accounting
    assert acc["inputs"] == acc["accepted"] + acc["rejected"] + acc["duplicates"]
    assert acc["accepted"] == d.kept.num_rows
    assert acc["rejected"] == d.rejects.num_rows and acc["duplicates"] == d.duplicates.num_rows


def test_unreadable_inputs_are_rejects_and_exact_copies_duplicates():
    rows = [meta_row("a"), meta_row("b"), meta_row("a-copy", sha=meta_row("a")["sha256"]),
            meta_row("broken", reason="truncated")]
    d = decide(meta_table(rows), _cfg(near_radius="none"))
    _identity(d)
    assert d.rejects.to_pylist()[0]["reason"] == "truncated"
    dup = d.duplicates.to_pylist()
    assert len(dup) == 1 and dup[0]["kind"] == "exact" and dup[0]["distance"] == 0
    assert d.classes == [LADYBUG] and set(d.kept["label"].to_pylist()) == {0}


def test_near_copies_within_the_radius_are_duplicates():
    base = 0x0F0F_0F0F_0F0F_0F0F
    rows = [meta_row("a", phash=base), meta_row("a-near", phash=base ^ 0b111),
            meta_row("far", phash=~base & (2**64 - 1))]
    d = decide(meta_table(rows), _cfg(near_radius=6))
    _identity(d)
    assert [r["kind"] for r in d.duplicates.to_pylist()] == ["near"]
    assert d.duplicates.to_pylist()[0]["distance"] == 3
    assert decide(meta_table(rows), _cfg(near_radius="none")).duplicates.num_rows == 0


def test_label_conflicts_drop_every_copy_by_default_and_keep_one_per_synset_on_request():
    sha = meta_row("x")["sha256"]
    rows = [meta_row("x", LADYBUG, sha=sha), meta_row("x2", SEASHORE, sha=sha)]
    dropped = decide(meta_table(rows), _cfg(near_radius="none"))
    _identity(dropped)
    assert dropped.kept.num_rows == 0
    assert all(r["reason"].startswith("label conflict") for r in dropped.rejects.to_pylist())
    kept = decide(meta_table(rows), _cfg(near_radius="none", label_conflict="keep"))
    assert sorted(kept.kept["synset"].to_pylist()) == [LADYBUG, SEASHORE]


def test_pinned_classes_fix_labels_and_reject_other_synsets():
    rows = [meta_row("a", LADYBUG), meta_row("b", SEASHORE), meta_row("c", "n11939491")]
    d = decide(meta_table(rows), _cfg(near_radius="none"), classes=[SEASHORE, LADYBUG, "n1"])
    _identity(d)
    assert d.classes == [SEASHORE, LADYBUG, "n1"]
    labels = dict(zip(d.kept["synset"].to_pylist(), d.kept["label"].to_pylist()))
    assert labels == {SEASHORE: 0, LADYBUG: 1}
    assert d.rejects.to_pylist()[0]["reason"] == "synset not in the pinned class list"


def test_cap_keeps_at_most_n_per_split_and_synset_whatever_the_input_order():
    rows = [meta_row(f"i{i}") for i in range(20)]
    a = decide(meta_table(rows), _cfg(near_radius="none", max_per_synset=5))
    b = decide(meta_table(rows[::-1]), _cfg(near_radius="none", max_per_synset=5))
    _identity(a)
    assert a.kept.num_rows == 5 and a.kept["key"].to_pylist() == b.kept["key"].to_pylist()
    assert {r["reason"] for r in a.rejects.to_pylist()} == {"over max_per_synset 5"}


def test_low_confidence_is_rejected_and_unvoted_samples_kept_with_null_confidence():
    rows = [meta_row("a"), meta_row("b"), meta_row("c")]
    table = meta_table(rows)
    posteriors = pa.table({"image": [rows[0]["source"], rows[1]["key"]],
                           "synset": [LADYBUG, LADYBUG], "posterior": [0.9, 0.2]})
    cfg = _cfg(near_radius="none", min_confidence=0.5, votes="/votes.csv")
    d = decide(table, cfg, posteriors=posteriors)
    _identity(d)
    conf = dict(zip(d.kept["key"].to_pylist(), d.kept["confidence"].to_pylist()))
    assert conf[rows[0]["key"]] == pytest.approx(0.9) and conf[rows[2]["key"]] is None
    assert [r["reason"] for r in d.rejects.to_pylist()] == ["low confidence"]


def test_takedown_by_key_source_and_sha(tmp_path):
    rows = [meta_row(n) for n in "abcd"]
    listing = tmp_path / "remove.txt"
    listing.write_text(f"# complaint 17\n{rows[0]['key']}\n{rows[1]['source']}  # via mail\n"
                       f"{rows[2]['sha256'].upper()}\n\n")
    takedown = load_takedown(str(listing), None, 0)
    assert takedown and takedown.fingerprint() == load_takedown(str(listing), None, 0).fingerprint()
    assert takedown.fingerprint() != Takedown().fingerprint() and not Takedown()
    d = decide(meta_table(rows), _cfg(near_radius="none", remove=str(listing)), takedown=takedown)
    _identity(d)
    assert d.kept["key"].to_pylist() == [rows[3]["key"]]
    assert sorted(r["reason"] for r in d.rejects.to_pylist()) == [
        "takedown: key listed", "takedown: sha256 listed", "takedown: source listed"]


def test_takedown_like_an_image_removes_its_near_copies():
    rows = [meta_row("a", phash=0xFF00), meta_row("b", phash=0xFFFF_0000_FFFF_0000)]
    like = pa.table({"phash": pa.array([0xFF01], pa.uint64()), "source": ["/complaint/x.jpg"]})
    mask, reasons = Takedown(like=like, radius=4).mask(meta_table(rows))
    assert mask.tolist() == [True, False]
    assert reasons[0] == "takedown: like /complaint/x.jpg (distance 1)"


def test_assembly_plan_has_one_job_per_synset_with_its_staged_files():
    rows = [meta_row("a", LADYBUG), meta_row("b", SEASHORE), meta_row("c", SEASHORE)]
    d = decide(meta_table(rows), _cfg(near_radius="none"))
    jobs = synset_jobs(d, [], set())
    assert [j.synset for j in jobs] == [LADYBUG, SEASHORE]
    assert [j.keep.num_rows for j in jobs] == [1, 2]
    assert all(not j.reuse and j.staged_paths for j in jobs)
    assert jobs[1].keep.column_names == ["staged_path", "staged_row", "split", "label", "confidence"]


def test_an_assembly_job_carries_only_its_own_staged_paths():
    """A job is pickled to its Ray task: a slice of the gathered table's dictionary column would
    carry every staged file of the build (1,000 jobs x all paths went to the object store)."""
    rows = [meta_row(f"s{i}", (LADYBUG, SEASHORE)[i % 2]) for i in range(6)]
    for i, row in enumerate(rows):
        row["staged_path"] = f"/rel/_staging/x/{row['synset']}/{i}.parquet"
    meta = meta_table(rows)
    at = meta.schema.get_field_index("staged_path")
    meta = meta.set_column(at, "staged_path", meta["staged_path"].dictionary_encode())  # as gathered
    jobs = synset_jobs(decide(meta, _cfg(near_radius="none")), [], set())
    for job in jobs:
        paths = job.keep["staged_path"].combine_chunks()
        assert sorted(paths.dictionary.to_pylist()) == sorted(job.staged_paths)
        assert len(job.staged_paths) == job.keep.num_rows == 3


def test_the_conflicts_key_order_is_checked_across_slices(monkeypatch):
    from synshard.builder.decide import steps

    monkeypatch.setattr(steps, "ORDER_SLICE", 2)
    keys = ["a", "b", "b", "c", "d"]
    table = pa.table({"key": keys, "other_key": ["x", "x", "y", "a", "a"]})
    assert steps._in_key_order(table)
    others = table["other_key"].to_pylist()
    for at in range(1, len(keys)):  # a step back at every slice boundary and inside slices
        swapped = keys[:at - 1] + [keys[at], keys[at - 1]] + keys[at + 1:]
        pairs = list(zip(swapped, others))
        assert steps._in_key_order(table.set_column(0, "key", pa.array(swapped))) is (
            pairs == sorted(pairs))
    assert steps._in_key_order(table.slice(0, 1)) and steps._in_key_order(table.slice(0, 0))
