"""Near-duplicate search on Ray: the pure (table, key range) tasks of transforms.neardup, a few
per Ray task, over every CPU of the cluster; merged on the driver in the in-process order.

The distinct hashes go to the object store once (`ray.put`: every task on a node maps the same
read-only copy); each task returns its pairs as three NumPy arrays (int32 indices when they
fit), so what comes back is the output, never the input. The caller owns the Ray session
(synshard.builder.raysession); the build calls this from its decide step when the accepted rows
reach `dedup.near_parallel_above` (synshard/builder/decide/near_ray.py).
"""
from __future__ import annotations

import numpy as np
import ray

from synshard.transforms.neardup import (
    DEFAULT_MAX_BUCKET, Pairs, SearchTask, collapse, expand_pairs, plan_tasks, run_tasks,
)

TASKS_PER_CPU = 3  # a few tasks per CPU: a slow table or node does not hold the rest back


@ray.remote(num_cpus=1)
def _run(distinct: np.ndarray, tasks: list[SearchTask], max_bucket: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pairs = run_tasks(distinct, tasks, max_bucket)
    index = np.int32 if distinct.size < 2**31 else np.int64
    return pairs.i.astype(index), pairs.j.astype(index), pairs.dist.astype(np.int8)


def plan_groups(n: int, radius: int, cpus: int, parts_per_table: int | None = None
                ) -> list[list[SearchTask]]:
    """The search's tasks in contiguous groups, about TASKS_PER_CPU per CPU: tables first,
    split into key ranges only when there are fewer tables than that (a big cluster)."""
    target = max(1, cpus * TASKS_PER_CPU)
    tables = len(plan_tasks(n, radius))
    parts = parts_per_table or max(1, -(-target // tables))
    tasks = plan_tasks(n, radius, parts_per_table=parts)
    size = max(1, -(-len(tasks) // target))
    return [tasks[k:k + size] for k in range(0, len(tasks), size)]


def search_distinct_ray(distinct: np.ndarray, radius: int, parts_per_table: int | None = None,
                        max_bucket: int = DEFAULT_MAX_BUCKET) -> Pairs:
    """`search_distinct` as Ray tasks: the same pairs, in the same order."""
    distinct = np.asarray(distinct, dtype=np.uint64)
    if distinct.size < 2 or radius == 0:
        return Pairs.empty()
    cpus = int(ray.cluster_resources().get("CPU", 1))
    ref = ray.put(distinct)  # once: shared read-only through the object store
    groups = plan_groups(distinct.size, radius, cpus, parts_per_table)
    parts = ray.get([_run.remote(ref, group, max_bucket) for group in groups])
    del ref
    return Pairs.concat([Pairs(*p) for p in parts])


def find_pairs_ray(hashes: np.ndarray, radius: int, parts_per_table: int | None = None,
                   max_bucket: int = DEFAULT_MAX_BUCKET
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`find_pairs` on Ray: collapse on the driver, search in tasks, expand groups."""
    uniq, inverse = collapse(hashes)
    distinct = search_distinct_ray(uniq, radius, parts_per_table, max_bucket)
    return expand_pairs(inverse, uniq.size, distinct).sorted().as_tuple()
