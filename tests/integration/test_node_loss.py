"""Node loss: a two-node Ray cluster on 127.0.0.1 loses its worker node mid-build; the build
completes and its release is byte-identical to a single-node build.

The cluster runs in a subprocess (ray.cluster_utils.Cluster needs a driver of its own; the test
session's shared embedded Ray would be in the way). The worker node is removed as soon as the
first staged file appears, so transforms are in flight on it; Ray Data retries the lost tasks and
rebuilds lost blocks from lineage on the head node.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from releasefiles import release_bytes

REPO = Path(__file__).resolve().parents[2]
DRIVER = r"""
import json, os, sys, threading, time
from pathlib import Path
from ray.cluster_utils import Cluster
import synshard

sample, out = sys.argv[1], sys.argv[2]
cluster = Cluster(initialize_head=True, head_node_args={
    "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False,
    "object_store_memory": 200 * 2**20})
worker = cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1",
                          object_store_memory=200 * 2**20)
cluster.wait_for_nodes()
removed = {}

def kill_worker_when_staging_starts():
    deadline = time.time() + 240
    while time.time() < deadline:
        staging = Path(out) / "_staging"
        if staging.exists() and any(p.suffix == ".parquet" for p in staging.rglob("*")):
            cluster.remove_node(worker, allow_graceful=False)
            removed["at"] = time.time()
            return
        time.sleep(0.05)

watcher = threading.Thread(target=kill_worker_when_staging_starts, daemon=True)
watcher.start()
result = synshard.build([sample], out, ray_address=cluster.address, progress=False, name="r",
                        batch_size=2, log=lambda m: None)
watcher.join(timeout=1)
print("RESULT", json.dumps({"removed": "at" in removed, "accounting": result.accounting,
                            "cluster": result.stats.get("cluster")}), flush=True)
cluster.shutdown()
"""

SINGLE = r"""
import sys, synshard
r = synshard.build([sys.argv[1]], sys.argv[2], progress=False, name="r", num_cpus=2,
                   log=lambda m: None)
print("RESULT ok", flush=True)
"""


def _run(script: str, *args: str) -> str:
    # Every Ray process on loopback: without this Ray picks the host's outward address for the
    # driver and cannot reach a cluster bound to 127.0.0.1.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop("RAY_ADDRESS", None)
    run = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, env=env, text=True,
                         capture_output=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout.split("RESULT ", 1)[1]


@pytest.mark.slow
def test_worker_node_lost_mid_build(tmp_path, sample_dir):
    lost = json.loads(_run(DRIVER, str(sample_dir), str(tmp_path / "two")))
    assert lost["removed"], "the worker node was never removed: the test proved nothing"
    assert lost["cluster"]["nodes"] >= 2
    _run(SINGLE, str(sample_dir), str(tmp_path / "one"))
    assert release_bytes(tmp_path / "two") == release_bytes(tmp_path / "one")
    assert lost["accounting"]["inputs"] == 42
