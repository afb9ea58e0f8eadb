"""Ray at the edge: start an embedded local Ray (127.0.0.1, no usage stats) or join a cluster."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

# Before Ray is imported: no usage statistics leave this machine, and Ray Data's own console
# chatter (execution banners, progress-bar notices) gives way to our progress line.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")

import ray  # noqa: E402

from synshard.builder import reaper
from synshard.config import BuildConfig


@contextlib.contextmanager
def ray_session(cfg: BuildConfig) -> Iterator[dict[str, Any]]:
    """Yields a description of the cluster; shuts down only a Ray this call started."""
    started, watcher = False, None
    if not ray.is_initialized():
        address = cfg.ray_address or os.environ.get("RAY_ADDRESS")
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                      logging_level=logging.ERROR, configure_logging=True)
        if address:
            ray.init(address=address, **kwargs)
        else:
            with _loopback_only():
                ray.init(address="local", num_cpus=cfg.num_cpus, **kwargs)
            watcher = reaper.start(_node_pids())
        started = True
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
            reaper.stop(watcher)


def _node_pids() -> list[int]:
    """The processes of the embedded Ray node this driver started (GCS, raylet, monitors)."""
    node = ray._private.worker._global_node
    return sorted({p.process.pid for procs in node.all_processes.values() for p in procs})


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """Make an embedded Ray bind its servers (GCS, raylet, workers) to 127.0.0.1 only.

    Ray turns `_node_ip_address="127.0.0.1"` back into the machine's address so that other nodes
    could reach it, and then listens on every interface. Its single-machine mode (what it uses on
    macOS and Windows, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`) keeps the node on loopback; Ray reads
    that setting at import time, so it is switched here, for the start of an embedded Ray only.
    """
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def loopback_ray_init(**kwargs: Any) -> None:
    """`ray.init(address="local", ...)` bound to 127.0.0.1 (also for tests' shared Ray)."""
    with _loopback_only():
        ray.init(address="local", **kwargs)


def remote(fn, **options):
    """`fn` as a Ray remote function (kept here so Ray stays at the edge)."""
    return ray.remote(**options)(fn) if options else ray.remote(fn)
