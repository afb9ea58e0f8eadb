"""Crawl job: N URLs from a local threaded HTTP server, resized shorter side 256, JPEG q90.

    python bench/peers/crawl.py serve DIR      # the server: prints its base URL, serves DIR

The runner starts the server in its own process (so it does not share a GIL with either tool)
and runs each tool's CLI as a new process, timed in wall seconds from start to exit (startup
included: that is what a user waits for). Settings matched on both sides:
- img2dataset: `--processes_count 2 --thread_count 32` (the issue's setting),
  `--resize_mode keep_ratio --image_size 256` (shorter side to 256), `--encode_quality 90`,
  `--output_format webdataset`, `--number_sample_per_shard N/2` (a shard is one process's unit
  of work: with the default 10,000 a 3,000-URL list is one shard and one process works); the
  rest on its defaults.
- synshard: `build URLS.csv --resize shorter:256 --quality 90 --format webdataset
  --allow-private-network --fetch-per-host 32 --num-cpus 2` (per host per fetching worker:
  32 x 2 like img2dataset's threads, instead of the default 8; loopback allowed, the SSRF guard
  refuses it by default); near dedup and the rest on its defaults.
Accounting: every URL must be in each tool's output: img2dataset's per-shard `*_stats.json`
(`count` = successes + failures), synshard's manifest (`inputs` = accepted + rejected +
duplicates). The figure is URLs in the output per wall second.
"""
from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import time
from pathlib import Path


HANG_S = 30.0  # a URL whose query is `?hang` is answered (with its file) only after this long


class _Quiet(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real image host

    def log_message(self, *args) -> None:  # no line per request
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.endswith("?hang"):  # bench/bench_crawl_hang.py: a host that hangs
            time.sleep(HANG_S)
        super().do_GET()


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A client that hangs up mid-body (a crawler closing its connections at the end) is not
        # the server's error: no traceback for it; anything else is still printed.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def serve(root: Path) -> None:
    handler = functools.partial(_Quiet, directory=str(root))
    with _Server(("127.0.0.1", 0), handler) as server:
        server.daemon_threads = True
        print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
        server.serve_forever()


class Server:
    """The photo server in its own process, for a `with` block."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __enter__(self) -> str:
        self.proc = subprocess.Popen([sys.executable, __file__, "serve", str(self.root)],
                                     stdout=subprocess.PIPE, text=True)
        base = self.proc.stdout.readline().strip()  # type: ignore[union-attr]
        if not base.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"photo server did not start (said {base!r})")
        return base

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _timed(cmd: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as out:
        try:
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=1200)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{Path(cmd[0]).name} ran over 1200 s (see {log})") from None
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{Path(cmd[0]).name} exited {done.returncode}: {tail[0]} (see {log})")
    return wall


def run_img2dataset(python: Path, urls_txt: Path, out: Path, n: int) -> dict:
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    exe = python.parent / "img2dataset"
    wall = _timed([str(exe), "--url_list", str(urls_txt), "--input_format", "txt",
                   "--output_folder", str(out), "--processes_count", "2", "--thread_count", "32",
                   "--resize_mode", "keep_ratio", "--image_size", "256", "--encode_quality", "90",
                   "--output_format", "webdataset",
                   "--number_sample_per_shard", str(-(-n // 2))], out.with_suffix(".log"))
    stats = [json.loads(p.read_text()) for p in sorted(out.glob("*_stats.json"))]
    count = sum(s["count"] for s in stats)
    ok = sum(s["successes"] for s in stats)
    if count != n:
        raise RuntimeError(f"img2dataset accounted for {count} of {n} URLs (see {out})")
    return {"wall_s": wall, "urls_per_s": n / wall, "ok": ok, "accounted": count}


def run_synshard(synshard: Path, urls_csv: Path, out: Path, n: int) -> dict:
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    wall = _timed([str(synshard), "build", str(urls_csv), "--out", str(out), "--resize",
                   "shorter:256", "--quality", "90", "--format", "webdataset",
                   "--allow-private-network", "--fetch-per-host", "32", "--num-cpus", "2",
                   "--no-progress"], out.with_suffix(".log"))
    acc = json.loads((out / "manifest.json").read_text())["accounting"]
    if acc["inputs"] != n or acc["inputs"] != acc["accepted"] + acc["rejected"] + acc["duplicates"]:
        raise RuntimeError(f"synshard accounted for {acc} of {n} URLs (see {out})")
    return {"wall_s": wall, "urls_per_s": n / wall, "ok": acc["accepted"], "accounted": n,
            "duplicates": acc["duplicates"], "rejected": acc["rejected"]}


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(Path(sys.argv[2]))
    else:
        sys.exit(__doc__)
