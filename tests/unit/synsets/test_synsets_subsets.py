"""SynsetFilter: which inputs a build keeps, and why the others are rejected."""
from __future__ import annotations

import pyarrow as pa
import pytest

from synshard.synsets.subsets import SynsetFilter, load_subset
from synshard.errors import SynshardError

TENCH, DOG, CHIHUAHUA, PERSON = "n01440764", "n02084071", "n02085620", "n00007846"


def run(f: SynsetFilter, wnids: list[str | None]) -> tuple[list[bool], list[str | None]]:
    keep, reason = f.filter_batch(pa.array(wnids, pa.string()))
    assert isinstance(keep, pa.BooleanArray) and isinstance(reason, pa.StringArray)
    return keep.to_pylist(), reason.to_pylist()


def test_default_filter_rejects_only_unknown_and_missing() -> None:
    keep, reason = run(SynsetFilter(), [TENCH, "n99999999", None, "cat", PERSON])
    assert keep == [True, False, False, False, True]
    assert reason == [None, "unknown synset", "missing synset", "unknown synset", None]


def test_subset() -> None:
    keep, reason = run(SynsetFilter(subset="ilsvrc2012"), [TENCH, DOG, CHIHUAHUA])
    assert keep == [True, False, True]
    assert reason[1] == "not in subset ilsvrc2012"


def test_subtree_and_exclusion() -> None:
    f = SynsetFilter(subtrees=(DOG,), exclude_subtrees=("n02085374",))  # toy dog
    keep, reason = run(f, [TENCH, DOG, "n02106662", CHIHUAHUA])  # German shepherd
    assert keep == [False, True, True, False]
    assert reason == [f"outside subtree {DOG}", None, None, "excluded subtree n02085374"]


def test_exclude_person_subtree_like_imagenet() -> None:
    f = SynsetFilter(exclude_subtrees=(PERSON,))
    keep, reason = run(f, ["n10787470", TENCH])  # woman
    assert keep == [False, True] and reason[0] == f"excluded subtree {PERSON}"


def test_chunked_and_repeated_input() -> None:
    arr = pa.chunked_array([[TENCH, None], ["n99999999", TENCH, None]])
    keep, reason = SynsetFilter().filter_batch(arr)
    assert keep.to_pylist() == [True, False, False, True, False]
    assert len(reason) == 5


def test_validate() -> None:
    SynsetFilter(subset="ilsvrc2012", subtrees=(DOG,)).validate()
    with pytest.raises(SynshardError):
        SynsetFilter(subset="nope").validate()
    with pytest.raises(SynshardError):
        SynsetFilter(exclude_subtrees=("n99999999",)).validate()
    with pytest.raises(SynshardError):
        load_subset("imagenet-99k")
