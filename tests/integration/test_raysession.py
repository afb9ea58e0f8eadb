"""The embedded Ray listens on loopback only and sends no usage statistics.

Run in a fresh interpreter: the test session's shared Ray may already be up in this one.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

CHECK = r"""
import json, os, subprocess, sys
from synshard.config import build_config
from synshard.builder.raysession import ray, ray_session

cfg = build_config({"sources": ["x"], "out": sys.argv[1], "num_cpus": 1})
with ray_session(cfg) as cluster:
    node = ray._private.worker._global_node
    pids = {p.process.pid for procs in node.all_processes.values() for p in procs}
    pids.add(os.getpid())
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    ours = [line.split()[3] for line in listening.splitlines()
            if any(f"pid={pid}," in line for pid in pids)]
    print(json.dumps({"nodes": cluster["nodes"], "listening": ours,
                      "usage_stats": os.environ.get("RAY_USAGE_STATS_ENABLED")}))
"""


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs iproute2's ss")
def test_embedded_ray_binds_loopback_only(tmp_path):
    run = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["nodes"] == 1 and seen["usage_stats"] == "0"
    assert seen["listening"], "found no listening Ray sockets"
    for address in seen["listening"]:
        host = address.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
        assert host == "127.0.0.1", f"Ray listens on {address}"


LEAN = r"""
import json, os, sys
from synshard.config import build_config
from synshard.builder.raysession import off_cpu_pause, ray, ray_session, remote

cfg = build_config({"sources": ["x"], "out": sys.argv[1], "num_cpus": 1})
marker = sys.argv[2]

def waiter():
    # holds the only CPU until the marker appears; each pause lends it back to Ray
    for _ in range(600):
        if os.path.exists(marker):
            return True
        off_cpu_pause(0.1)
    return False

def writer():
    open(marker, "w").close()

def agents(raylet):
    # {pid: command line} of the raylet's children that are not workers (its agents)
    from pathlib import Path
    from synshard.builder.reaper import processes
    lines = {}
    for pid, (ppid, _) in processes().items():
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if ppid == raylet and "default_worker.py" not in line and "ray::" not in line:
            lines[pid] = line
    return lines

with ray_session(cfg):
    node = ray._private.worker._global_node
    kinds = sorted(node.all_processes)
    raylet = node.all_processes["raylet"][0].process.pid
    waiting = remote(waiter, num_cpus=1).remote()
    written = remote(writer, num_cpus=1).remote()
    lent, done = ray.get(waiting), ray.get(written)
    during = agents(raylet)
    web = "aiohttp.web" in sys.modules  # Ray's check for a full dashboard agent imports it
import time
from synshard.builder.reaper import processes
for _ in range(100):  # the raylet ends its agents as it shuts down (a liveness bound, 10 s)
    alive = processes()
    after = [pid for pid in during if pid in alive]
    if not after:
        break
    time.sleep(0.1)
print(json.dumps({"kinds": kinds, "lent": lent, "written": done, "agents": list(during.values()),
                  "agents_after": after, "web": web}))
"""


def test_embedded_ray_is_lean_and_a_paused_task_lends_its_cpu(tmp_path):
    """No log monitor, autoscaler monitor, dashboard API server or Ray's own agents (stand-ins
    instead) on an embedded node; on one CPU, a task waiting in
    `off_cpu_pause` lets a second task run (the crawl's slow-URL wait: stages.run_task's idle)."""
    run = subprocess.run([sys.executable, "-c", LEAN, str(tmp_path / "out"),
                          str(tmp_path / "marker")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert "raylet" in seen["kinds"] and "gcs_server" in seen["kinds"], seen
    assert "log_monitor" not in seen["kinds"] and "monitor" not in seen["kinds"], seen
    assert "dashboard" not in seen["kinds"], seen  # no API server (dashboard.py) either
    assert seen["lent"] is True, "the second task did not run while the first one paused"
    # the raylet's two agents are synshard's stand-ins (agentstub.py), gone with the node
    stand_ins = sorted(line.split("agentstub.py ", 1)[1].split()[0] for line in seen["agents"]
                       if "synshard/builder/agentstub.py" in line)
    assert stand_ins == ["dashboard", "runtime-env"], seen["agents"]
    assert len(seen["agents"]) == 2 and seen["agents_after"] == [], seen
    assert seen["web"] is False, "the driver imported aiohttp's web stack for a stand-in agent"
