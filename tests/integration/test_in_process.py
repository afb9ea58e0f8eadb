"""Builds without a Ray already running in the process (as the CLI runs them):

- one read task (the demo): the whole build runs in the driver, Ray is never imported, and the
  release is byte for byte the pinned demo release (tests/integration/test_sample_bytes.py);
- many read tasks (`embedded_ray="always"`): Ray starts in a thread beside the driver, and
  readers forked from it run read tasks until Ray is up; every input is settled once, and the
  release is byte-identical to the same build on the test session's shared Ray;
- many quick read tasks (`embedded_ray="auto"`, the default): the driver runs them all and Ray
  never starts; the same bytes again.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from releasefiles import release_bytes
from test_resume import _make_source
from test_sample_bytes import FIXTURE

HERE = Path(__file__).resolve().parent
DEMO = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from test_sample_bytes import build_sample
summary = build_sample(Path(sys.argv[2]))
stats = json.loads((Path(sys.argv[2]) / "build.json").read_text())["stats"]
print(json.dumps({"summary": summary, "ray_imported": "ray" in sys.modules,
                  "cluster": stats["cluster"]}))
"""
MANY = r"""
import json, sys
import synshard
out = sys.argv[2]
synshard.build([sys.argv[1]], out, files_per_task=8, batch_size=4, num_cpus=2,
               val_fraction=0.2, name="r", progress=False, log=lambda m: None,
               embedded_ray=sys.argv[3])
stats = json.loads(open(out + "/build.json").read())["stats"]
print(json.dumps({**stats, "ray_imported": "ray" in sys.modules}))
"""
OPTIONS = dict(files_per_task=8, batch_size=4, val_fraction=0.2, name="r")


def _run(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_one_task_build_runs_without_ray_and_gives_the_pinned_demo_bytes(tmp_path):
    got = _run(DEMO, str(HERE), str(tmp_path / "rel"))
    assert not got["ray_imported"]
    assert got["cluster"]["address"] == "in-process"
    expected = json.loads(FIXTURE.read_text())
    assert got["summary"]["files"] == expected["files"]
    assert got["summary"]["manifest"] == expected["manifest"]


def test_a_build_of_many_tasks_starting_ray_beside_the_driver_settles_each_input_once(
        ray_local, tmp_path):
    import synshard

    src = _make_source(tmp_path / "src")
    stats = _run(MANY, str(src), str(tmp_path / "fresh"), "always")
    inputs = sum(1 for p in src.rglob("*") if p.is_file())
    assert stats["tasks"] > 1 and stats["cluster"]["address"] == "local"
    assert sum(stats["cluster"]["inputs_read_by_node"].values()) == inputs
    before = stats["cluster"]["read_before_ray"]  # each reader is given a task at once
    assert before["forked_readers"] == 2 and 0 < before["inputs"] <= inputs
    synshard.build([str(src)], str(tmp_path / "shared"), progress=False, log=lambda m: None,
                   **OPTIONS)
    assert release_bytes(tmp_path / "fresh") == release_bytes(tmp_path / "shared")


def test_a_build_of_a_few_quick_tasks_runs_without_ray_and_gives_the_same_bytes(tmp_path):
    src = _make_source(tmp_path / "src")
    stats = _run(MANY, str(src), str(tmp_path / "auto"), "auto")
    inputs = sum(1 for p in src.rglob("*") if p.is_file())
    assert stats["tasks"] > 1 and stats["cluster"]["address"] == "in-process"
    assert stats["cluster"]["cpus"] == 2  # the driver's read threads (num_cpus=2)
    assert stats["cluster"]["inputs_read_by_node"] == {"driver": inputs}
    assert not stats["ray_imported"]
    again = _run(MANY, str(src), str(tmp_path / "always"), "always")
    assert again["cluster"]["address"] == "local"
    assert release_bytes(tmp_path / "auto") == release_bytes(tmp_path / "always")
