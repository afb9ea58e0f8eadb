"""A crawl killed with -9 resumes: the same command fetches no URL of a finished chunk again (the
server counts its hits) and commits the release an uninterrupted crawl commits."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from faultserver import FaultServer
from releasefiles import release_bytes
from test_resume import _count, _kill_when

N_URLS, PER_TASK = 240, 12


def _command(url_list: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "synshard.cli", "build", str(url_list), "--out", str(out),
            "--files-per-task", str(PER_TASK), "--batch-size", "6", "--num-cpus", "1",
            "--no-progress", "--name", "r", "--allow-network", "127.0.0.1/32",
            "--embedded-ray", "always"]  # the crawl on Ray's workers, as a long one runs


def _finished_sources(out: Path) -> set[str]:
    """The sources (URLs) of every read task the journal says is finished."""
    return {s for f in (out / "_staging").glob("*/_tasks/task-*.parquet")
            for s in pq.read_table(f, columns=["source"]).column("source").to_pylist()}


@pytest.mark.slow
def test_kill_nine_mid_crawl_then_rerun_refetches_no_finished_chunk(tmp_path):
    server = FaultServer().start()
    try:
        urls = [f"{server.base}/img/{i}.jpg" for i in range(N_URLS)]
        url_list = tmp_path / "crawl.jsonl"
        url_list.write_text("".join(json.dumps({"url": u, "synset": ("n01440764", "n01443537")[
            i % 2]}) + "\n" for i, u in enumerate(urls)))
        reference = tmp_path / "reference"
        ref = subprocess.run(_command(url_list, reference), capture_output=True, text=True,
                             timeout=300)
        assert ref.returncode == 0, ref.stderr[-2000:]
        expected = release_bytes(reference)

        out = tmp_path / "out"
        before = dict(server.hits)
        ray_tmp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # short: socket paths
        try:
            killed = _kill_when(_command(url_list, out),
                                lambda: _count(out, "*/_tasks/task-*.parquet") >= 3, ray_tmp)
        finally:
            shutil.rmtree(ray_tmp, ignore_errors=True)
        assert killed, "the crawl finished before the kill point"
        assert not (out / "manifest.json").exists()
        finished = _finished_sources(out)
        assert finished and len(finished) < N_URLS
        at_kill = dict(server.hits)
        rerun = subprocess.run(_command(url_list, out), capture_output=True, text=True,
                               timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert "resuming: " in rerun.stdout, rerun.stdout
        paths = {u: u.removeprefix(server.base) for u in urls}
        refetched = [u for u in finished if server.hits[paths[u]] != at_kill.get(paths[u], 0)]
        assert not refetched, f"{len(refetched)} URLs of finished chunks fetched again"
        # every URL fetched at least once by the two runs together; unfinished ones again
        assert all(server.hits[paths[u]] > before.get(paths[u], 0) for u in urls)
        assert release_bytes(out) == expected
    finally:
        server.stop()
