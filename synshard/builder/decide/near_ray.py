"""Where a build's near-duplicate join runs: in the driver's process, or as Ray tasks.

Small builds search in process (no Ray round trips). From `dedup.near_parallel_above` accepted
rows, and only inside a running Ray session (a build's), the same search runs as Ray tasks
(synshard/builder/neardup_ray.py, exactly the same pairs) when the cluster has more CPUs than
this process can use itself: on one machine the in-process search already runs a table per
free local CPU (threads over one copy of the hashes), so Ray would add the hashes' trip
through the object store and worker start-up, and no core. `near_parallel_above = 0` always
uses Ray. Ray is imported only when asked, so the decide step stays pure for everything
smaller.
"""
from __future__ import annotations

import sys
from typing import Any

from synshard.transforms.neardup import local_cpus
from synshard.transforms.neardup_policy import Search
from synshard.transforms.options import DedupOptions


def near_search(dedup: DedupOptions, rows: int) -> Search | None:
    """The Ray-backed search when `rows` reach the threshold, Ray is up and it has CPUs
    beyond this process's own (or the threshold is 0); else None (the policy's in-process
    default, on the free local CPUs)."""
    if rows < dedup.near_parallel_above or rows < 2 or "ray" not in sys.modules:
        return None  # (no Ray session without Ray imported: a local build does not import it)
    from synshard.builder.raysession import ray

    if not ray.is_initialized():
        return None
    if dedup.near_parallel_above > 0 and not _more_cpus_than_here(ray):
        return None
    from synshard.builder.neardup_ray import search_distinct_ray

    return search_distinct_ray


def _more_cpus_than_here(ray: Any) -> bool:
    """Whether the Ray cluster offers more CPUs than this process may run on itself."""
    return int(ray.cluster_resources().get("CPU", 0)) > local_cpus()
