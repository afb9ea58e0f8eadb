"""Where a build's near-duplicate join runs: in the driver's process, or as Ray tasks.

Small builds search in process (no Ray round trips); from `dedup.near_parallel_above` accepted
rows, and only inside a running Ray session (a build's), the same search runs as Ray tasks over
every CPU of the cluster (synshard/builder/neardup_ray.py), with exactly the same pairs. Ray is
imported only then, so the decide step stays pure for everything smaller.
"""
from __future__ import annotations

from synshard.transforms.neardup_policy import Search
from synshard.transforms.options import DedupOptions


def near_search(dedup: DedupOptions, rows: int) -> Search | None:
    """The Ray-backed search when `rows` reach the threshold and Ray is up; else None (the
    policy's in-process default)."""
    if rows < dedup.near_parallel_above or rows < 2:
        return None
    from synshard.builder.raysession import ray

    if not ray.is_initialized():
        return None
    from synshard.builder.neardup_ray import search_distinct_ray

    return search_distinct_ray
