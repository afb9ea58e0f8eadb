"""Crash-resume: `kill -9` of the driver at several points, then the same command again, commits a
release byte-identical to an uninterrupted build, redoing no finished read task."""
from __future__ import annotations

import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image

from synshard.synsets.subsets import load_subset
from releasefiles import release_bytes

N_SYNSETS, PER_SYNSET = 6, 24


def _make_source(root: Path) -> Path:
    rng = random.Random(7)
    for wnid in load_subset("ilsvrc2012")[:N_SYNSETS]:
        folder = root / wnid
        folder.mkdir(parents=True)
        for i in range(PER_SYNSET):
            pixels = bytes(rng.getrandbits(8) for _ in range(80 * 60 * 3))
            buf = io.BytesIO()
            Image.frombytes("RGB", (80, 60), pixels).save(buf, "JPEG", quality=85)
            (folder / f"{folder.name}_{i}.JPEG").write_bytes(buf.getvalue())
    return root


def _command(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "synshard.cli", "build", str(src), "--out", str(out),
            "--files-per-task", "8", "--batch-size", "4", "--num-cpus", "2", "--no-progress",
            "--val-fraction", "0.2", "--name", "r", "--shard-size", "64KB",
            "--embedded-ray", "always"]  # a few quick tasks: Ray would not start otherwise


def _reap_ray(ray_tmp: Path) -> None:
    """The killed driver's embedded Ray (GCS, raylet, workers) outlives it: stop it here."""
    subprocess.run(["pkill", "-9", "-f", str(ray_tmp)], check=False)


def _kill_when(cmd: list[str], ready, ray_tmp: Path, timeout: float = 240.0) -> bool:
    """Start the build in its own process group; SIGKILL the group once `ready()`; True if killed."""
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _reap_ray(ray_tmp)
    return False


def _count(out: Path, pattern: str) -> int:
    return len(list((out / "_staging").glob(pattern))) if (out / "_staging").exists() else 0


@pytest.mark.slow
def test_kill_nine_then_rerun_gives_identical_release(tmp_path):
    src = _make_source(tmp_path / "src")
    reference = tmp_path / "reference"
    subprocess.run(_command(src, reference), check=True, capture_output=True, timeout=300)
    expected = release_bytes(reference)
    points = {
        "first task journalled": lambda out: _count(out, "*/_tasks/task-*.parquet") >= 1,
        "half the tasks journalled": lambda out: _count(out, "*/_tasks/task-*.parquet") >= 9,
        "first synset assembled": lambda out: _count(out, "*/_shards/*.json") >= 1,
    }
    outcomes = {}
    for name, ready in points.items():
        out = tmp_path / name.replace(" ", "-")
        ray_tmp = Path(tempfile.mkdtemp(prefix="rk", dir="/tmp"))  # short: socket paths
        try:
            killed = _kill_when(_command(src, out), lambda: ready(out), ray_tmp)
        finally:
            shutil.rmtree(ray_tmp, ignore_errors=True)
        assert killed, f"the build finished before the kill point '{name}'"
        assert not (out / "manifest.json").exists()
        done_before = _count(out, "*/_tasks/task-*.parquet")
        rerun = subprocess.run(_command(src, out), capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        if done_before:  # tasks that finished as the kill landed may add to those counted
            assert "resuming: " in rerun.stdout, rerun.stdout
        assert release_bytes(out) == expected, name
        assert not (out / "_staging").exists()
        outcomes[name] = done_before
    assert len(outcomes) == len(points)
