"""Ray at the edge: start an embedded local Ray (127.0.0.1, no usage stats) or join a cluster."""
from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Any, Callable, Iterator, cast

# Before Ray is imported: no usage statistics leave this machine, and Ray Data's own console
# chatter (execution banners, progress-bar notices) gives way to our progress line.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")

import ray  # noqa: E402

from synshard.builder import reaper
from synshard.config import BuildConfig
from synshard.transforms.errors import SynshardError


@contextlib.contextmanager
def ray_session(cfg: BuildConfig) -> Iterator[dict[str, Any]]:
    """Yields a description of the cluster; shuts down only a Ray this call started."""
    started, watcher = False, None
    if not ray.is_initialized():
        address = cfg.ray_address or os.environ.get("RAY_ADDRESS")
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                      logging_level=logging.ERROR, configure_logging=True)
        if address:
            _join(address, kwargs)
        else:
            with _loopback_only():
                ray.init(address="local", num_cpus=cfg.num_cpus, **kwargs)
            watcher = reaper.start(_node_pids())
        started = True
    resources = ray.cluster_resources()
    try:
        yield {"address": "local" if started and not cfg.ray_address else str(cfg.ray_address),
               "cpus": resources.get("CPU", 0), "nodes": len(ray.nodes())}
    finally:
        if started:
            ray.shutdown()
            reaper.stop(watcher)


class RayConnectError(SynshardError):
    """The Ray cluster named by --ray-address (or RAY_ADDRESS) could not be joined."""


def _join(address: str, kwargs: dict[str, Any]) -> None:
    """`ray.init(address=...)`; a failure is one line saying what to check, not Ray's traceback."""
    try:
        _reachable(address)
        ray.init(address=address, **kwargs)
    except Exception as exc:  # Ray raises ConnectionError, AuthenticationError, RuntimeError...
        ray.shutdown()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "auth" in type(exc).__name__.lower() or "token" in reason.lower():
            hint = ("the cluster uses token authentication: set RAY_AUTH_MODE=token and "
                    "RAY_AUTH_TOKEN to the output of `ray get-auth-token` on the head node")
        else:
            hint = ("check the address and port (`ray status` on the head node prints them), "
                    "that the head's --node-ip-address is one this machine can reach, and "
                    "that the cluster runs the same Ray version, and, if it uses token "
                    "authentication, RAY_AUTH_MODE=token and RAY_AUTH_TOKEN")
        raise RayConnectError(f"cannot join the Ray cluster at {address}: {reason[:300]}; "
                              f"{hint} (docs/cluster.md)") from None


def _reachable(address: str, timeout_s: float = 10.0) -> None:
    """Ray retries a GCS that is not there for ever: for HOST:PORT, try one TCP connect first."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", ray://, ...: left to Ray
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(f"no Ray head answers there ({exc.strerror or exc})") from None


def _node_pids() -> list[int]:
    """The processes of the embedded Ray node this driver started (GCS, raylet, monitors)."""
    # ray declares `_global_node = None` at module level; a Node once ray.init has started one
    node = cast("ray._private.node.Node", ray._private.worker._global_node)
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


def remote(fn: Callable[..., Any], **options: Any) -> Any:
    """`fn` as a Ray remote function (kept here so Ray stays at the edge)."""
    return ray.remote(**options)(fn) if options else ray.remote(fn)
