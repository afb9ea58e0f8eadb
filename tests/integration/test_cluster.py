"""Past one machine: a real two-node Ray cluster (`ray start --head` + a second `ray start
--address=...` with its own resources) on 127.0.0.1, a build with `--ray-address`: both nodes
read inputs, and the release is byte-identical to the embedded build's.

The cluster and the build run inside a private network namespace holding only `lo` (so Ray's
"host address" is 127.0.0.1 and nothing leaves the machine) and PID namespace (so every Ray
process ends with it): tests/integration/twonode.sh. Needs root (or user namespaces) and unshare.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from releasefiles import release_bytes
from test_resume import N_SYNSETS, PER_SYNSET, _command, _make_source

SCRIPT = Path(__file__).with_name("twonode.sh")
UNSHARE = ["unshare", "-n", "-p", "-f", "--mount-proc"]


def _namespaces_work() -> bool:
    try:
        return subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.skipif(not _namespaces_work(),
                                reason="needs `unshare -n -p` (root or user namespaces)")


def _build_args(src: Path, out: Path) -> list[str]:
    """The test_resume build's arguments after `build`, without --num-cpus (the cluster's)."""
    args = _command(src, out)[4:]
    i = args.index("--num-cpus")
    return args[:i] + args[i + 2:]


@pytest.mark.slow
def test_two_node_cluster_build_is_byte_identical_to_embedded(tmp_path):
    src = _make_source(tmp_path / "src")
    embedded, clustered = tmp_path / "embedded", tmp_path / "cluster"
    subprocess.run(_command(src, embedded), check=True, capture_output=True, timeout=300)
    run = subprocess.run([*UNSHARE, "bash", str(SCRIPT), sys.executable,
                          *_build_args(src, clustered)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    cluster = json.loads((clustered / "build.json").read_text())["stats"]["cluster"]
    assert cluster["address"] == "127.0.0.1:6390" and cluster["nodes"] == 2, cluster
    by_node = cluster["inputs_read_by_node"]
    assert len(by_node) == 2 and min(by_node.values()) > 0, by_node
    assert sum(by_node.values()) == N_SYNSETS * PER_SYNSET
    assert release_bytes(clustered) == release_bytes(embedded)


def test_an_address_with_no_ray_is_one_line_not_a_traceback(tmp_path):
    src = _make_source(tmp_path / "src")
    build = [sys.executable, "-m", "synshard.cli", "build", *_build_args(src, tmp_path / "out"),
             "--ray-address", "127.0.0.1:6391"]
    run = subprocess.run([*UNSHARE, "bash", "-c", 'ip link set lo up && exec "$@"', "sh", *build],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("synshard: error:")]
    assert len(errors) == 1, run.stderr[-2000:]
    assert "cannot join the Ray cluster at 127.0.0.1:6391" in errors[0]
    assert "docs/cluster.md" in errors[0]
    assert not (tmp_path / "out" / "manifest.json").exists()
