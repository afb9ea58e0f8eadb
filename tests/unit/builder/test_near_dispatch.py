"""The decide step's choice of where the near-duplicate join runs."""
from __future__ import annotations

import pytest

from synshard.builder.decide.near_ray import near_search
from synshard.transforms.options import DedupOptions
from synshard.errors import SynshardError


def test_small_builds_and_no_ray_search_in_process(monkeypatch):
    import ray

    was_up = ray.is_initialized()  # the integration tests' shared Ray may already be up
    opts = DedupOptions(near_parallel_above=1000)
    assert near_search(opts, 999) is None  # below the threshold: in process, Ray not asked
    assert ray.is_initialized() == was_up
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    assert near_search(opts, 1000) is None  # no Ray session (decide called outside a build)


def test_threshold_must_not_be_negative():
    with pytest.raises(SynshardError, match="near_parallel_above"):
        DedupOptions(near_parallel_above=-1)
