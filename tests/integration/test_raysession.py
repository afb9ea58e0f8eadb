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
