"""The embedded Ray listens on loopback only and sends no usage statistics."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from synshard.config import build_config


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs iproute2's ss")
def test_embedded_ray_binds_loopback_only(tmp_path):
    from synshard.raysession import ray, ray_session

    if ray.is_initialized():
        pytest.skip("a Ray is already running in this process")
    cfg = build_config({"sources": ["x"], "out": str(tmp_path / "out"), "num_cpus": 1})
    with ray_session(cfg) as cluster:
        assert cluster["nodes"] == 1
        assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
        node = ray._private.worker._global_node
        pids = {p.process.pid for procs in node.all_processes.values() for p in procs}
        pids.add(os.getpid())
        listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
        ours = [line.split()[3] for line in listening.splitlines()
                if any(f"pid={pid}," in line for pid in pids)]
        assert ours, "found no listening Ray sockets"
        for address in ours:
            host = address.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
            assert host == "127.0.0.1", f"Ray listens on {address}"
    assert not ray.is_initialized()
