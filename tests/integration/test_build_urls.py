"""URL lists through `synshard build`: every URL accounted for, over real HTTP on 127.0.0.1."""
from __future__ import annotations

import io
import json
import random
import resource
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import synshard
from synshard.shards.release import open_release

sys.path.insert(0, str(Path(__file__).parent))
from faultserver import FaultServer  # noqa: E402

FAST_FETCH = dict(fetch_connect_timeout=1.0, fetch_read_timeout=0.3, fetch_total_timeout=0.6,
                  fetch_retries=2, fetch_backoff_base=0.01, fetch_backoff_max=0.05,
                  fetch_retry_after_max=1.0, fetch_max_bytes=100_000)
# Loopback only: the SSRF guard stays on for everything else (a redirect to 10.0.0.1 must fail).
LOOPBACK = dict(fetch_allowed_networks=["127.0.0.0/8"])

EXPECTED = {
    "/img/1.jpg": None, "/flaky/2.jpg": None, "/ratelimited/3.jpg": None,
    "/redirect/2": None, "/wrongtype": None,
    # /slow answers after 2 s: its first try times out (0.3 s), and the build's retry task at the
    # end makes its one patient retry, which waits for it
    "/slow": None,
    "/404": "http 404", "/down": "http 503", "/reset": "connection reset",
    "/huge-streamed": "too large", "/loop": "too many redirects",
    "/to-private": "blocked: private address", "/page.html": "not an image",
    "/noai.jpg": "x-robots-tag noai", "/private/1.jpg": "robots.txt disallows",
}


@pytest.fixture
def fault_server():
    server = FaultServer().start()
    yield server
    server.stop()


def _write_list(path: Path, base: str, paths: list[str], synset: str = "n01440764") -> Path:
    rows = [{"url": base + p, "synset": synset, "license": "CC-BY-4.0"} for p in paths]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _outcomes(out: Path) -> tuple[dict[str, str | None], list[dict]]:
    release = open_release(str(out))
    accepted = {}
    for entry in release.manifest.shards:
        if entry.format == "parquet":
            for r in pq.read_table(release.uri(entry.path)).to_pylist():
                accepted[r["source"]] = r
    outcomes = {src: None for src in accepted}
    for r in release.read_table("rejects").to_pylist():
        outcomes[r["source"]] = r["reason"]
    dups = release.read_table("duplicates").to_pylist()
    return outcomes, dups


def test_every_url_has_its_outcome(ray_local, fault_server, tmp_path):
    base = fault_server.base
    paths = list(EXPECTED) + ["/img/1.jpg"]  # a repeated URL: fetched once, one duplicate
    url_list = _write_list(tmp_path / "crawl.parquet", base, paths)
    out = tmp_path / "rel"
    result = synshard.build([str(url_list)], str(out), progress=False, log=lambda m: None,
                            **FAST_FETCH, **LOOPBACK)
    acc = result.accounting
    assert acc == {"inputs": len(paths), "accepted": 6, "rejected": 9, "duplicates": 1}
    outcomes, dups = _outcomes(out)
    assert {p: outcomes[base + p] for p in EXPECTED} == EXPECTED
    assert [(d["source"], d["kept_source"]) for d in dups] == [(base + "/img/1.jpg",) * 2]
    # robots.txt once per fetching process: the read task's, and the retry task's (of /slow,
    # deferred after its timeout) when it runs in another worker
    assert fault_server.hits["/img/1.jpg"] == 1 and fault_server.hits["/robots.txt"] in (1, 2)
    build = json.loads((out / "build.json").read_text())
    fetch = build["stats"]["fetch"]
    assert fetch["urls"] == len(paths) and fetch["retries"] >= 2 and fetch["deferred"] == 1
    assert fault_server.hits["/slow"] == 2
    assert fetch["failures"]["http 404"] == 1
    release = open_release(str(out))
    shard = next(e for e in release.manifest.shards if e.format == "parquet")
    assert {r["license"] for r in pq.read_table(release.uri(shard.path)).to_pylist()} == {
        "CC-BY-4.0"}


def test_loopback_refused_without_opt_in_and_release_still_commits(ray_local, fault_server,
                                                                   tmp_path):
    url_list = _write_list(tmp_path / "crawl.csv", fault_server.base, ["/img/1.jpg", "/img/2.jpg"])
    url_list.unlink()
    url_list.write_text("url,synset\n" + "".join(
        f"{fault_server.base}/img/{i}.jpg,n01440764\n" for i in (1, 2)))
    out = tmp_path / "rel"
    result = synshard.build([str(url_list)], str(out), progress=False, log=lambda m: None)
    assert result.accounting == {"inputs": 2, "accepted": 0, "rejected": 2, "duplicates": 0}
    outcomes, _ = _outcomes(out)
    assert set(outcomes.values()) == {"blocked: loopback address"}
    assert sum(fault_server.hits.values()) == 0
    assert open_release(str(out)).manifest.counts["total"] == 0


def _noise_jpeg(n: int) -> bytes:
    rng = random.Random(n)
    image = Image.frombytes("RGB", (48, 40), bytes(rng.getrandbits(8) for _ in range(48 * 40 * 3)))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return buf.getvalue()


class _Images(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    images: list[bytes] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/robots.txt":
            body, ctype = b"User-agent: *\nAllow: /\n", "text/plain"
        else:
            body, ctype = self.images[int(self.path.rsplit("/", 1)[-1].split(".")[0])], "image/jpeg"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.slow
def test_two_thousand_urls_bounded_memory(ray_local, tmp_path):
    n = 2000
    _Images.images = [_noise_jpeg(i) for i in range(n)]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        rows = [{"url": f"{base}/{i}.jpg", "synset": ("n01440764", "n01443537")[i % 2]}
                for i in range(n)]
        url_list = tmp_path / "crawl.jsonl"
        url_list.write_text("".join(json.dumps(r) + "\n" for r in rows))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = synshard.build([str(url_list)], str(tmp_path / "rel"), progress=False,
                                log=lambda m: None, fetch_per_host=32, **LOOPBACK)
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    finally:
        server.shutdown()
        server.server_close()
    assert result.accounting == {"inputs": n, "accepted": n, "rejected": 0, "duplicates": 0}
    assert result.stats["fetch"]["fetched"] == n
    # The driver holds metadata only: far less than the images' bytes would need at scale.
    assert grown_mib < 400, f"driver memory grew by {grown_mib:.0f} MiB"


def test_hanging_urls_go_to_one_retry_task_at_the_end_and_never_hold_their_task(
        ray_local, fault_server, tmp_path):
    """5 URLs that hang (30 s), spread over 6 read tasks of 8 URLs: each task hands its hanging
    URL on after a quiet second instead of waiting for it; one retry task at the end fetches them
    all together, with what is left of each one's deadline (8 s), and rejects them "deadline"."""
    good = [f"/img/{i}.jpg" for i in range(43)]
    hanging = [f"/hang/{i}" for i in range(5)]
    paths = good[:2] + hanging[:1] + good[2:12] + hanging[1:3] + good[12:30] + hanging[3:] + good[30:]
    order: list[str] = []
    recording = fault_server.count

    def count(path: str) -> int:
        order.append(path)
        return recording(path)

    fault_server.count = count
    url_list = _write_list(tmp_path / "crawl.parquet", fault_server.base, paths)
    out = tmp_path / "rel"
    result = synshard.build([str(url_list)], str(out), progress=False, log=lambda m: None,
                            files_per_task=8, fetch_read_timeout=30.0, fetch_total_timeout=30.0,
                            fetch_deadline=8.0, fetch_defer_after=1.0, **LOOPBACK)
    assert result.accounting == {"inputs": 48, "accepted": 43, "rejected": 5, "duplicates": 0}
    outcomes, _ = _outcomes(out)
    assert {outcomes[fault_server.base + p] for p in hanging} == {"deadline"}
    # once in its own task (cut), once in the retry task: never more, and only after every good
    # URL had been requested (the retry task runs after all the read tasks)
    assert [fault_server.hits[p] for p in hanging] == [2] * 5
    last_good = max(i for i, p in enumerate(order) if p.startswith("/img/"))
    second_tries = [i for i, p in enumerate(order) if p.startswith("/hang/")][5:]
    assert len(second_tries) == 5 and min(second_tries) > last_good, order
    fetch = json.loads((out / "build.json").read_text())["stats"]["fetch"]
    assert fetch["urls"] == 48 and fetch["deferred"] >= 5
    assert fetch["failures"] == {"deadline": 5}


LOCAL_CRAWL = r"""
import json, sys
import synshard
options = json.loads(sys.argv[3])
result = synshard.build([sys.argv[1]], sys.argv[2], progress=False, log=lambda m: None,
                        **options)
stats = json.loads(open(sys.argv[2] + "/build.json").read())["stats"]
print(json.dumps({"accounting": result.accounting, "stats": stats,
                  "ray_imported": "ray" in sys.modules}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="local builds fork their workers on Linux")
def test_a_local_crawl_sends_its_retry_tasks_to_its_forked_workers(fault_server, tmp_path):
    """A local build (a fresh process: no Ray imported) of 3 read tasks: the URL whose first try
    times out is deferred to a retry task, which the forked workers were not forked with (it is
    planned from the journal after the read tasks): it is sent to them, and fetches it."""
    import subprocess

    paths = [f"/img/{i}.jpg" for i in range(8)] + ["/slow"] + [f"/img/{i}.jpg"
                                                               for i in range(8, 16)]
    url_list = _write_list(tmp_path / "crawl.parquet", fault_server.base, paths)
    out = tmp_path / "rel"
    options = {**FAST_FETCH, **LOOPBACK, "files_per_task": 8, "num_cpus": 2}
    done = subprocess.run([sys.executable, "-c", LOCAL_CRAWL, str(url_list), str(out),
                           json.dumps(options)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["stats"]["cluster"]["address"] == "local-processes" and not got["ray_imported"]
    assert got["stats"]["tasks"] == 3
    assert got["stats"]["fetch"]["deferred"] >= 1 and "retry tasks" in got["stats"]["timings_s"]
    accounting = got["accounting"]
    assert accounting["inputs"] == 17 and accounting["rejected"] == 0
    assert fault_server.hits["/slow"] == 2  # its first try, then its retry task's
    outcomes, dups = _outcomes(out)
    slow = fault_server.base + "/slow"  # fetched by its retry task: kept, or a copy of a kept one
    assert outcomes.get(slow, "missing") is None or slow in {d["source"] for d in dups}
