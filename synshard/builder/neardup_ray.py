"""Near-duplicate search on Ray: the pure (table, key range) tasks of transforms.neardup as Ray
tasks, merged on the driver. The caller owns the Ray session (synshard.builder.raysession)."""
from __future__ import annotations

import numpy as np
import ray

from synshard.transforms.neardup import (
    DEFAULT_MAX_BUCKET, Pairs, SearchTask, collapse, expand_pairs, plan_tasks, run_task,
)


@ray.remote
def _run(distinct: np.ndarray, task: SearchTask, max_bucket: int) -> Pairs:
    return run_task(distinct, task, max_bucket)


def search_distinct_ray(distinct: np.ndarray, radius: int, parts_per_table: int = 4,
                        max_bucket: int = DEFAULT_MAX_BUCKET) -> Pairs:
    """`search_distinct` with one Ray task per (table, key range); same pairs, sorted."""
    distinct = np.asarray(distinct, dtype=np.uint64)
    if distinct.size < 2 or radius == 0:
        return Pairs.empty()
    ref = ray.put(distinct)  # shared read-only through the object store, not copied per task
    tasks = plan_tasks(distinct.size, radius, parts_per_table=parts_per_table)
    futures = [_run.remote(ref, task, max_bucket) for task in tasks]
    return Pairs.concat(ray.get(futures)).sorted()


def find_pairs_ray(hashes: np.ndarray, radius: int, parts_per_table: int = 4,
                   max_bucket: int = DEFAULT_MAX_BUCKET
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`find_pairs` on Ray: collapse on the driver, search in tasks, expand groups."""
    uniq, inverse = collapse(hashes)
    distinct = search_distinct_ray(uniq, radius, parts_per_table, max_bucket)
    return expand_pairs(inverse, uniq.size, distinct).sorted().as_tuple()
