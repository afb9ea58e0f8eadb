"""Ray at the edge: start an embedded local Ray (127.0.0.1, no usage stats) or join a cluster."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

import ray

from synshard.config import BuildConfig


@contextlib.contextmanager
def ray_session(cfg: BuildConfig) -> Iterator[dict[str, Any]]:
    """Yields a description of the cluster; shuts down only a Ray this call started."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = False
    if not ray.is_initialized():
        address = cfg.ray_address or os.environ.get("RAY_ADDRESS")
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                      logging_level=logging.ERROR, configure_logging=True)
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(address="local", num_cpus=cfg.num_cpus, _node_ip_address="127.0.0.1",
                     **kwargs)
        started = True
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # we show our own progress line
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    resources = ray.cluster_resources()
    try:
        yield {"address": "local" if started and not cfg.ray_address else str(cfg.ray_address),
               "cpus": resources.get("CPU", 0), "nodes": len(ray.nodes())}
    finally:
        if started:
            ray.shutdown()


def remote(fn, **options):
    """`fn` as a Ray remote function (kept here so Ray stays at the edge)."""
    return ray.remote(**options)(fn) if options else ray.remote(fn)
