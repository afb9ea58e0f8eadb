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


def test_one_machine_searches_in_process_a_bigger_cluster_on_ray(monkeypatch):
    import ray

    from synshard.builder.decide import near_ray
    from synshard.builder.neardup_ray import search_distinct_ray

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(near_ray, "local_cpus", lambda: 2)
    opts = DedupOptions(near_parallel_above=1000)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    assert near_search(opts, 5000) is None  # Ray on this machine alone: threads here
    assert near_search(DedupOptions(near_parallel_above=0), 5000) is search_distinct_ray
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0})
    assert near_search(opts, 5000) is search_distinct_ray  # other nodes' CPUs: Ray tasks
