"""A release path under a running build: readers see the old release or the new one, whole, and a
second build into the same output is refused with a clear message."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synshard.release.gc import collect_garbage
from synshard.shards.release import open_release
from synshard.shards.verify import verify_release
from synshard.errors import SynshardError


def _command(src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "synshard.cli", "build", str(src), "--out", str(out),
            "--files-per-task", "2", "--batch-size", "2", "--num-cpus", "1", "--no-progress",
            "--embedded-ray", "always", *extra]  # Ray's start keeps the build long enough to meet


@pytest.mark.slow
def test_readers_see_whole_releases_and_a_second_build_is_refused(sample_dir, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(sample_dir, src, ignore=shutil.ignore_patterns("*.md"))
    out = tmp_path / "release"
    subprocess.run(_command(src, out), check=True, capture_output=True, timeout=300)
    old = open_release(str(out)).manifest.fingerprint

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    build = subprocess.Popen(_command(src, out, "--val-fraction", "0.5", "--overwrite"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen, refused = set(), None
    try:
        while build.poll() is None:
            try:
                release = open_release(str(out))
            except SynshardError:
                pytest.fail("a reader found no committed release while a rebuild was running")
            # Every file the manifest lists is there, whole. (The running build's own new files
            # are `extra` until it commits: debris to a reader, invisible through the manifest.)
            problems = [p for p in verify_release(str(out), quick=True) if p.kind != "extra"]
            assert problems == [] or open_release(str(out)).manifest.fingerprint != \
                release.manifest.fingerprint, problems
            seen.add(release.manifest.fingerprint)
            if refused is None and (out / "_staging" / "build.lock").exists():
                second = subprocess.run(_command(src, out, "--test-fraction", "0.3",
                                                 "--overwrite"),
                                        capture_output=True, text=True, timeout=120, env=env)
                refused = second
            time.sleep(0.05)
        stdout, stderr = build.communicate(timeout=60)
    finally:
        if build.poll() is None:
            build.kill()
    assert build.returncode == 0, stderr[-2000:]
    new = open_release(str(out)).manifest.fingerprint
    assert new != old and seen <= {old, new} and old in seen
    # The replaced release's files are debris now: verify names them, gc removes them.
    assert {p.kind for p in verify_release(str(out))} == {"extra"}
    collect_garbage(str(out))
    assert verify_release(str(out)) == []
    assert refused is not None, "the build finished before a second one could be tried"
    assert refused.returncode != 0
    message = refused.stderr.strip().splitlines()[-1]
    assert message.startswith("synshard: error:") and "another build" in message, message
