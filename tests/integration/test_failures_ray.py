"""Failures through Ray are one line too: the error a task raised, not Ray's traceback; a build
into a full disk says where and that the same command resumes (and then it does)."""
from __future__ import annotations

import errno
import os
import subprocess

import pytest

from synshard.cli import main
from synshard.cli.failures import failure_line
from synshard.errors import SynshardError


def test_errors_raised_in_ray_tasks_are_unwrapped(ray_local):
    def fail(exc: BaseException) -> None:  # nested: pickled by value for the worker
        raise exc

    task = ray_local.remote(fail)
    cases = [(OSError(errno.ENOSPC, "No space left on device", "/rel/_staging/x"),
              "synshard: error: no space left on the device writing under /rel/_staging/x; "
              "free some space and run the same command again: the build resumes where it "
              "stopped"),
             (SynshardError("shard n1-000000 is truncated"),
              "synshard: error: shard n1-000000 is truncated")]
    for exc, line in cases:
        with pytest.raises(Exception) as caught:
            ray_local.get(task.remote(exc))
        assert "ray" in type(caught.value).__module__  # what the driver gets: Ray's wrapper
        assert failure_line(caught.value, type("A", (), {"command": "build"})()) == line


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs, smaller than the sample's release alone (assembly frees staged files as it
    goes, so staging + release never sit there whole); root only: skipped where not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                                            str(disk)], capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_full_disk_is_one_line_and_the_same_command_resumes(ray_local, capsys, sample_dir,
                                                            small_disk, monkeypatch):
    monkeypatch.delenv("SYNSHARD_DEBUG", raising=False)
    out = small_disk / "rel"
    argv = ["build", str(sample_dir), "--out", str(out), "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "Ray" not in err
    assert err.startswith(f"synshard: error: no space left on the device writing under {out}")
    assert err.rstrip().endswith("run the same command again: the build resumes where it stopped")
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"release {out}: committed" in printed
