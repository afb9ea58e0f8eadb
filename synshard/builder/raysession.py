"""Ray at the edge: start an embedded local Ray (127.0.0.1, no usage stats) or join a cluster."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import sys
import time
from typing import Any, Callable, Iterator, cast

# Before Ray is imported: no usage statistics leave this machine, and Ray Data's own console
# chatter (execution banners, progress-bar notices) gives way to our progress line.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")

import ray  # noqa: E402

from synshard.builder import reaper
from synshard.builder.nopandas import without_pandas
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
            _start_embedded(cfg, kwargs)
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


# An embedded Ray serves one build and nobody watches it: no task-event reports to the GCS
# (the state API and timeline), no metrics, no event-loop statistics. On a 2-core machine these
# and the two monitors below cost ~2-3 CPU-s a build (bench/bench_build.py prints Ray's processes'
# CPU by kind). Ray's own flags (ray_config_def.h), for a Ray this process starts only.
# The stand-in for the raylet's agents on an embedded node (see `_lean_node`).
AGENT_STUB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agentstub.py")

EMBEDDED_SYSTEM_CONFIG: dict[str, Any] = {
    "task_events_report_interval_ms": 0,
    "enable_metrics_collection": False,
    "event_stats": False,
    "enable_timeline": False,
}


@contextlib.contextmanager
def _lean_node(ray_agents: bool = False) -> Iterator[None]:
    """Start an embedded node without its log monitor (it forwards workers' output to the
    driver, which `log_to_driver=False` turns away), without the autoscaler monitor (a local
    node has nothing to scale), `ray start`'s --include-log-monitor=False and --no-monitor, which
    `ray.init` does not take, and without the dashboard's API server (`dashboard.py`: with
    `include_dashboard=False` Ray still starts it, for the job-submission and state APIs that
    nobody calls on a build's own Ray; ~1 CPU-s of imports a build). A Ray whose node parameters
    differ is started as it is.

    Unless `ray_agents`, the raylet's dashboard and runtime-env agents are stand-ins
    (synshard/builder/agentstub.py): a build asks them for nothing (no metrics, dashboard or
    runtime environments), and the real ones cost ~2.4 CPU-s and ~2 s of Ray's start-up on 2
    cores, as the raylet waits for their port files (ray.init 3.4-4.6 s -> ~1.5 s)."""
    from ray._private import node as ray_node, parameter, ray_constants, services, utils

    original = parameter.RayParams.update_if_absent
    api_server = ray_node.Node.start_api_server
    dependency_error = utils.get_dashboard_dependency_error
    python_command = services._build_python_executable_command_memory_profileable
    stand_ins = {ray_constants.PROCESS_TYPE_DASHBOARD_AGENT: "dashboard",
                 ray_constants.PROCESS_TYPE_RUNTIME_ENV_AGENT: "runtime-env"}

    def agent_command(component: str, session_dir: str, unbuffered: bool = True) -> list[str]:
        """The agent's Python command: the stand-in's, which takes the agent's arguments
        (the agent's script path among them, ignored)."""
        if ray_agents or component not in stand_ins:
            return python_command(component, session_dir, unbuffered)
        return [sys.executable, "-S", AGENT_STUB, stand_ins[component]]

    def update_if_absent(self: Any, **kwargs: Any) -> None:
        if getattr(self, "include_log_monitor", False) is None:
            self.include_log_monitor = False
        if hasattr(self, "no_monitor"):
            self.no_monitor = True
        original(self, **kwargs)

    def no_api_server(self: Any, *, include_dashboard: bool | None, raise_on_failure: bool
                      ) -> None:
        if include_dashboard:  # asked for: started as Ray would
            api_server(self, include_dashboard=include_dashboard,
                       raise_on_failure=raise_on_failure)

    def agents_minimal() -> ImportError:
        """What the raylet's start asks before it adds `--minimal` to the dashboard agent's
        command: Ray answers by importing aiohttp's web stack in the driver (0.09-0.11 CPU-s,
        before the raylet starts); the stand-in ignores the flag, so nothing is imported."""
        return ImportError("the dashboard agent is a stand-in (synshard/builder/agentstub.py)")

    setattr(parameter.RayParams, "update_if_absent", update_if_absent)  # noqa: B010
    setattr(ray_node.Node, "start_api_server", no_api_server)  # noqa: B010
    if not ray_agents:
        setattr(utils, "get_dashboard_dependency_error", agents_minimal)  # noqa: B010
    setattr(services, "_build_python_executable_command_memory_profileable",  # noqa: B010
            agent_command)
    try:
        yield
    finally:
        setattr(parameter.RayParams, "update_if_absent", original)  # noqa: B010
        setattr(ray_node.Node, "start_api_server", api_server)  # noqa: B010
        setattr(utils, "get_dashboard_dependency_error", dependency_error)  # noqa: B010
        setattr(services, "_build_python_executable_command_memory_profileable",  # noqa: B010
                python_command)


class RayStartError(SynshardError):
    """The embedded Ray did not start (its raylet did not register in time)."""


# Ray gives its raylet 30 s to register with the GCS (not configurable); on a machine busy with
# other work that can pass. One more try, then one clear line instead of Ray's bare Exception.
START_TRIES = 2


def _start_embedded(cfg: BuildConfig, kwargs: dict[str, Any]) -> None:
    for attempt in range(1, START_TRIES + 1):
        try:
            # a second try (the first timed out) with Ray's own agents, in case the stand-ins
            # were what the raylet waited for
            with _loopback_only(), _lean_node(ray_agents=attempt > 1):
                ray.init(address="local", num_cpus=cfg.num_cpus,
                         _system_config=EMBEDDED_SYSTEM_CONFIG, **kwargs)
            return
        except Exception as exc:  # Ray raises a bare Exception for a node that timed out
            ray.shutdown()
            if "timed out during startup" not in str(exc) or attempt == START_TRIES:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else \
                    type(exc).__name__
                raise RayStartError(
                    f"the embedded Ray did not start ({attempt} tr{'ies' if attempt > 1 else 'y'}): {reason[:200]}; the "
                    "machine may be too busy (check `uptime`), or Ray's processes could not "
                    "start: run the same command again (the build resumes), or give fewer "
                    "CPUs with --num-cpus") from None


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


def read_on_worker(index: int, task: Any, cfg: BuildConfig, staging: Any) -> tuple[int, str]:
    """Read task `index` on a Ray worker: (inputs it settled, the node it ran on).

    Here rather than in pipeline.py so that a worker imports only what a read task runs (the
    stages), not the driver's decide, assembly and commit modules (~1 CPU-s a worker)."""
    without_pandas()
    from synshard.builder.stages import run_task

    rows = sum(run_task(index, task, cfg, staging, idle=off_cpu_pause))
    return rows, ray.get_runtime_context().get_node_id()


def off_cpu_pause(seconds: float = 0.5) -> None:
    """A wait of `seconds` that lends the calling task's CPU back to Ray: a task blocked in
    `ray.get` releases its CPU (Ray's "Yielding Resources While Blocked"), so a read task left
    waiting only for slow URLs lets another read task run meanwhile."""
    ray.get(_pause_task().remote(seconds))


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


@functools.lru_cache(maxsize=1)
def _pause_task() -> Any:
    return ray.remote(num_cpus=0)(_sleep)
