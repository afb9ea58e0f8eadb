"""Consensus on simulated crowds with known truth: Dawid-Skene vs majority vote."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synshard.synsets.consensus import (
    Consensus, confidence_batch, consensus, min_confidence_batch, plan_votes,
)
from synshard.synsets.simulate import CrowdSpec, simulate_crowd
from synshard.errors import SynshardError

SPAMMY = CrowdSpec(images=3000, synsets=5, votes_per_image=5, workers=100, reliable=0.5,
                   always_yes=0.25, random=0.15, adversarial=0.1, accuracy=0.85)
RELIABLE = CrowdSpec(images=3000, synsets=5, votes_per_image=5, workers=100, reliable=1.0,
                     always_yes=0.0, random=0.0, adversarial=0.0, accuracy=0.85)


def accuracy(result: Consensus, truth: pa.Table) -> float:
    joined = result.posteriors.join(truth, ["image", "synset"])
    assert joined.num_rows == truth.num_rows  # every image got a posterior
    return float(np.mean((joined["posterior"].to_numpy() >= 0.5) == joined["shows"].to_numpy()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ds_beats_majority_vote_where_spammers_exist(seed: int) -> None:
    votes, truth = simulate_crowd(SPAMMY, seed)
    mv, ds = accuracy(consensus(votes, "mv"), truth), accuracy(consensus(votes, "ds"), truth)
    assert ds > mv + 0.05, (ds, mv)
    assert ds > 0.9


@pytest.mark.parametrize("seed", [0, 1])
def test_ds_matches_majority_vote_where_all_are_reliable(seed: int) -> None:
    votes, truth = simulate_crowd(RELIABLE, seed)
    mv, ds = accuracy(consensus(votes, "mv"), truth), accuracy(consensus(votes, "ds"), truth)
    assert ds >= mv - 0.01, (ds, mv)
    assert mv > 0.9


def test_workers_are_characterised() -> None:
    votes, _ = simulate_crowd(SPAMMY, 0)
    w = consensus(votes, "ds").workers
    kinds = {f"w{i:08d}": k for i, k in enumerate(["reliable"] * 50 + ["yes"] * 25
                                                   + ["random"] * 15 + ["adversarial"] * 10)}
    rows = {r["worker"]: r for r in w.to_pylist()}
    for name, kind in kinds.items():
        r = rows[name]
        if kind == "reliable":
            assert r["sensitivity"] > 0.7 and r["specificity"] > 0.7 and not r["spammer"]
        elif kind == "yes":
            assert r["sensitivity"] > 0.9 and r["specificity"] < 0.15 and r["spammer"]
        elif kind == "adversarial":
            assert r["sensitivity"] < 0.35 and r["specificity"] < 0.35 and not r["spammer"]
    flagged_random = sum(rows[n]["spammer"] for n, k in kinds.items() if k == "random")
    assert flagged_random >= 12  # of 15; a few random clickers look lucky on ~150 votes


def test_posteriors_table_shape_and_counts() -> None:
    votes = pa.table({"image": ["a", "a", "a", "b", "b", "c"],
                      "synset": ["n1", "n1", "n1", "n1", "n2", "n1"],
                      "worker": ["x", "y", "z", "x", "y", "x"],
                      "vote": ["yes", "Yes", "no", "1", "n", "true"]})
    for method in ("mv", "ds"):
        post = consensus(votes, method).posteriors
        assert post.column_names == ["image", "synset", "posterior", "yes", "no"]
        assert post.select(["image", "synset", "yes", "no"]).to_pylist() == [
            {"image": "a", "synset": "n1", "yes": 2, "no": 1},
            {"image": "b", "synset": "n1", "yes": 1, "no": 0},
            {"image": "b", "synset": "n2", "yes": 0, "no": 1},
            {"image": "c", "synset": "n1", "yes": 1, "no": 0},
        ]
    mv = consensus(votes, "mv").posteriors["posterior"].to_pylist()
    assert mv == pytest.approx([2 / 3, 1.0, 0.0, 1.0])


def test_bad_vote_rows_are_rejected_with_a_reason() -> None:
    votes = pa.table({"image": ["a", None, "a", "a", "b"],
                      "synset": ["n1", "n1", None, "n1", "n1"],
                      "worker": ["x", "y", "z", None, "y"],
                      "vote": ["yes", "yes", "no", "no", "maybe"],
                      "time": [1, 2, 3, 4, 5]})
    result = consensus(votes)
    assert result.rejected.to_pylist() == [
        {"row": 1, "reason": "missing image"}, {"row": 2, "reason": "missing synset"},
        {"row": 3, "reason": "missing worker"}, {"row": 4, "reason": "bad vote"},
    ]
    assert result.posteriors.num_rows == 1


def test_missing_column_and_bad_method() -> None:
    with pytest.raises(SynshardError):
        consensus(pa.table({"image": ["a"], "synset": ["n1"], "vote": [True]}))
    with pytest.raises(SynshardError):
        consensus(pa.table({"image": [], "synset": [], "worker": [], "vote": []}), "em")


def test_empty_votes() -> None:
    empty = pa.table({"image": pa.array([], pa.string()), "synset": pa.array([], pa.string()),
                      "worker": pa.array([], pa.string()), "vote": pa.array([], pa.bool_())})
    assert consensus(empty).posteriors.num_rows == 0


def test_independent_of_row_order_and_encoding() -> None:
    votes, _ = simulate_crowd(SPAMMY, 3)
    base = consensus(votes, "ds")
    perm = np.random.default_rng(7).permutation(votes.num_rows)
    shuffled = votes.take(pa.array(perm))
    dict_cols = shuffled.set_column(0, "image", pc.dictionary_encode(shuffled["image"]))
    for other in (shuffled, dict_cols):
        result = consensus(other, "ds")
        assert result.posteriors.equals(base.posteriors.cast(result.posteriors.schema))
        assert result.workers.equals(base.workers)
        assert result.iterations == base.iterations


def test_deterministic_and_converged() -> None:
    votes, _ = simulate_crowd(SPAMMY, 4)
    a, b = consensus(votes), consensus(votes)
    assert a.posteriors.equals(b.posteriors) and a.converged
    assert 1 < a.iterations < 100
    hist = np.array(a.history)
    assert np.all(np.diff(hist) > -1e-6 * np.abs(hist[1:]))  # EM never lowers the objective much


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 2), st.integers(0, 4), st.booleans()),
                min_size=1, max_size=60), st.sampled_from(["ds", "mv"]))
def test_posteriors_in_unit_interval(rows: list, method: str) -> None:
    votes = pa.table({"image": [f"i{r[0]}" for r in rows], "synset": [f"n{r[1]}" for r in rows],
                      "worker": [r[2] for r in rows], "vote": [r[3] for r in rows]})
    result = consensus(votes, method)
    p = result.posteriors["posterior"].to_numpy()
    assert np.all((p >= 0) & (p <= 1)) and not np.isnan(p).any()
    w = result.workers
    for col in ("sensitivity", "specificity"):
        assert np.all((w[col].to_numpy() > 0) & (w[col].to_numpy() < 1))
    assert sum(result.posteriors["yes"].to_pylist() + result.posteriors["no"].to_pylist()) == len(rows)


def test_plan_votes() -> None:
    votes, _ = simulate_crowd(SPAMMY, 5)
    result = consensus(votes)
    plan = plan_votes(result, target=0.95)
    assert plan["synset"].to_pylist() == sorted(set(votes["synset"].to_pylist()))
    for row in plan.to_pylist():
        assert row["images"] == row["accepted"] + row["rejected"] + row["pending"]
        assert len(row["pending_images"]) == row["pending"]
        assert all(0.05 < p["posterior"] < 0.95 for p in row["pending_images"])
        assert all(p["votes_needed"] >= 1 for p in row["pending_images"])
        assert row["votes_needed"] == sum(p["votes_needed"] for p in row["pending_images"])
    assert sum(plan["pending"].to_pylist()) > 0
    stricter = plan_votes(result, target=0.99)
    assert sum(stricter["votes_needed"].to_pylist()) > sum(plan["votes_needed"].to_pylist())
    with pytest.raises(ValueError):
        plan_votes(result, target=0.4)


def test_more_votes_settle_pending_images() -> None:
    spec = CrowdSpec(images=2000, synsets=2, votes_per_image=3, workers=60, reliable=0.7,
                     always_yes=0.2, random=0.1, adversarial=0.0)
    few = plan_votes(consensus(simulate_crowd(spec, 0)[0]))
    many = plan_votes(consensus(simulate_crowd(CrowdSpec(**{**spec.__dict__,
                                                            "votes_per_image": 12}), 0)[0]))
    assert sum(many["pending"].to_pylist()) < sum(few["pending"].to_pylist())


def test_confidence_for_the_build() -> None:
    votes = pa.table({"image": ["a", "a", "b", "b"], "synset": ["n1"] * 4,
                      "worker": ["x", "y", "x", "y"], "vote": [True, True, False, True]})
    post = consensus(votes, "mv").posteriors
    conf = confidence_batch(pa.array(["b", "zzz", "a"]), pa.array(["n1", "n1", "n1"]), post)
    assert conf.to_pylist() == [0.5, None, 1.0]
    keep, reason = min_confidence_batch(conf, 0.95)
    assert keep.to_pylist() == [False, True, True]
    assert reason.to_pylist() == ["low confidence", None, None]
