"""Builds without a Ray already running in the process (as the CLI runs them):

- one read task (the demo): the whole build runs in the driver, Ray is never imported, and the
  release is byte for byte the pinned demo release (tests/integration/test_sample_bytes.py);
- many read tasks (`embedded_ray="always"`): Ray starts in a thread beside the driver, and
  readers forked from it run read tasks until Ray is up; every input is settled once, and the
  release is byte-identical to the same build on the test session's shared Ray;
- many read tasks (`embedded_ray="auto"`, the default, on Linux): a local build, whose read
  tasks and assembly run in worker processes forked from the driver, and Ray never starts; the
  same bytes again;
- a local build's driver killed with -9 takes its workers with it, and the same command then
  resumes (redoing no journalled read task) and commits the same bytes.
"""
from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from releasefiles import release_bytes
from synshard.builder.reaper import processes, tree
from synshard.synsets.subsets import load_subset
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


@pytest.mark.skipif(sys.platform != "linux", reason="local builds fork their workers on Linux")
def test_a_local_build_runs_in_forked_workers_without_ray_and_gives_the_same_bytes(tmp_path):
    src = _make_source(tmp_path / "src")
    stats = _run(MANY, str(src), str(tmp_path / "auto"), "auto")
    inputs = sum(1 for p in src.rglob("*") if p.is_file())
    assert stats["tasks"] > 1 and stats["cluster"]["address"] == "local-processes"
    assert stats["cluster"]["cpus"] == 2  # one worker a CPU (num_cpus=2)
    assert stats["cluster"]["inputs_read_by_node"] == {"local": inputs}
    assert not stats["ray_imported"]
    again = _run(MANY, str(src), str(tmp_path / "always"), "always")
    assert again["cluster"]["address"] == "local"
    assert release_bytes(tmp_path / "auto") == release_bytes(tmp_path / "always")


def _larger_source(root: Path, synsets: int = 8, per_synset: int = 60) -> Path:
    """480 small noise JPEGs: a local build's read stage of about a second on 2 cores, long
    enough to kill it after its first task."""
    rng = random.Random(11)
    for wnid in load_subset("ilsvrc2012")[:synsets]:
        (root / wnid).mkdir(parents=True)
        for i in range(per_synset):
            buf = io.BytesIO()
            Image.frombytes("RGB", (160, 120), rng.randbytes(160 * 120 * 3)).save(buf, "JPEG")
            (root / wnid / f"{wnid}_{i}.JPEG").write_bytes(buf.getvalue())
    return root


def _local_command(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "synshard.cli", "build", str(src), "--out", str(out),
            "--files-per-task", "8", "--num-cpus", "2", "--no-progress", "--val-fraction",
            "0.2", "--name", "r"]


def _tasks_journalled(out: Path) -> int:
    return len(list(out.glob("_staging/*/_tasks/task-*.parquet")))


@pytest.mark.skipif(sys.platform != "linux", reason="local builds fork their workers on Linux")
def test_a_killed_local_build_leaves_no_worker_and_resumes_to_the_same_bytes(tmp_path):
    src = _larger_source(tmp_path / "src")
    reference = tmp_path / "reference"
    subprocess.run(_local_command(src, reference), check=True, capture_output=True, timeout=300)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_local_command(src, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not _tasks_journalled(out):  # bounded by the build
            time.sleep(0.01)
        table = processes()
        workers = {p: start for p, start in tree({proc.pid: table[proc.pid][1]}, table).items()
                   if p != proc.pid} if proc.pid in table else {}
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone, not its process group
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert workers, "the build should have had its workers running"
    assert not (out / "manifest.json").exists(), "the build finished before the kill"
    for _ in range(600):  # a liveness bound, not a timing claim
        if not tree(workers, processes()):
            break
        time.sleep(0.05)
    assert not tree(workers, processes()), "a worker outlived its driver"
    rerun = subprocess.run(_local_command(src, out), capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming: " in rerun.stdout, rerun.stdout
    assert release_bytes(out) == release_bytes(reference)
    assert not (out / "_staging").exists()

