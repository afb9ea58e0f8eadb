"""A crawl at scale: `synshard build` on URL lists of 10,000 and 100,000 entries from a local server.

    .venv/bin/python bench/bench_crawl_scale.py [--sizes 10000,100000] [--per-host 32]

The server (this file, `serve`: aiohttp.web in its own process, 127.0.0.1 only) answers
`/img/<n>.jpg` with a small distinct JPEG (96x72, a random colour field seeded by n, ~2 kB) and
`/robots.txt` with "allow all". For each size the list (url, synset over 10 ILSVRC synsets) is
written once into bench/out/crawl-scale/ (ignored), then built under `/usr/bin/time -v` with the
guard opened for 127.0.0.1 only, `--resize shorter:64`, the rest on its defaults (robots.txt
honoured, per-host cap `--per-host` per fetching worker). While it runs, a sampler reads the peak
RSS (VmHWM) of the driver and of every Ray worker in its process tree from /proc.

Prints per size: wall seconds, URLs/s, driver peak RSS (sampled VmHWM, and GNU time's maximum,
which may include a reaped child of the driver), the largest worker's peak RSS, accounting; then
the driver's growth per URL between the two sizes (flat: a few hundred bytes at most).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "crawl-scale"
SYNSETS = ("n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331",
           "n01498041", "n01514668", "n01514859", "n01518878")  # the first 10 of ILSVRC-2012


def jpeg(n: int) -> bytes:
    import numpy as np
    from PIL import Image

    field = np.random.default_rng(n).integers(0, 256, (9, 12, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(field).resize((96, 72), Image.BILINEAR).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def serve() -> None:
    from aiohttp import web

    async def image(request: web.Request) -> web.Response:
        try:
            n = int(request.match_info["n"])
        except ValueError:
            raise web.HTTPNotFound() from None
        return web.Response(body=jpeg(n), content_type="image/jpeg")

    async def robots(request: web.Request) -> web.Response:
        return web.Response(text="User-agent: *\nAllow: /\n")

    async def start() -> None:
        app = web.Application()
        app.router.add_get("/img/{n}.jpg", image)
        app.router.add_get("/robots.txt", robots)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"http://127.0.0.1:{port}", flush=True)
        while True:
            await asyncio.sleep(3600)

    import asyncio
    asyncio.run(start())


def url_list(base: str, n: int) -> Path:
    path = OUT / f"urls-{n}.csv"
    OUT.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["url", "synset"])
        for i in range(n):
            out.writerow([f"{base}/img/{i}.jpg", SYNSETS[i % len(SYNSETS)]])
    return path


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _hwm_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(found.group(1)) if found else None


class Sampler(threading.Thread):
    """Peak RSS of the driver (`pid`) and of the Ray workers among its descendants."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.driver_kb, self.workers_kb = pid, 0, {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.driver_kb = max(self.driver_kb, _hwm_kb(self.pid) or 0)
            tree, todo = _children(), [self.pid]
            while todo:
                for child in tree.get(todo.pop(), []):
                    todo.append(child)
                    try:
                        cmd = Path(f"/proc/{child}/cmdline").read_bytes()
                    except OSError:
                        continue
                    if b"default_worker" in cmd or cmd.startswith(b"ray::"):
                        kb = _hwm_kb(child) or 0
                        self.workers_kb[child] = max(self.workers_kb.get(child, 0), kb)
            self.done.wait(0.5)


def build(urls: Path, n: int, per_host: int) -> dict:
    out = OUT / f"release-{n}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "synshard.cli", "build", str(urls),
           "--out", str(out), "--resize", "shorter:64", "--allow-network", "127.0.0.1/32",
           "--fetch-per-host", str(per_host), "--no-progress", "--name", "crawl-scale"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)
    driver = next((c for c in _children().get(proc.pid, [])), proc.pid)  # time's child
    sampler = Sampler(driver)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        said = stderr.split("\tCommand being timed:")[0].strip().splitlines() or ["?"]
        raise SystemExit(f"build of {n} URLs exited {proc.returncode}: {said[-1]}")
    gnu = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    manifest = json.loads((out / "manifest.json").read_text())
    timings = json.loads((out / "build.json").read_text()).get("stats", {}).get("timings_s", {})
    shutil.rmtree(out, ignore_errors=True)
    return {"urls": n, "wall_s": wall, "urls_per_s": n / wall,
            "driver_peak_mb": sampler.driver_kb / 1024,
            "gnu_time_max_rss_mb": int(gnu.group(1)) / 1024 if gnu else None,
            "worker_peak_mb": max(sampler.workers_kb.values(), default=0) / 1024,
            "workers_seen": len(sampler.workers_kb), "accounting": manifest["accounting"],
            "timings_s": {k: round(v, 1) for k, v in timings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--per-host", type=int, default=32)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    server = subprocess.Popen([sys.executable, __file__, "serve"], stdout=subprocess.PIPE,
                              text=True)
    try:
        base = server.stdout.readline().strip()  # type: ignore[union-attr]
        if not base.startswith("http://127.0.0.1:"):
            raise SystemExit(f"server did not start (said {base!r})")
        results = []
        for n in sizes:
            r = build(url_list(base, n), n, args.per_host)
            results.append(r)
            acc = r["accounting"]
            print(f"{n:>8,} URLs: {r['wall_s']:6.1f} s  {r['urls_per_s']:5.0f} URL/s  driver peak "
                  f"{r['driver_peak_mb']:6.1f} MB (GNU time max {r['gnu_time_max_rss_mb']:.1f})  "
                  f"largest worker {r['worker_peak_mb']:6.1f} MB of {r['workers_seen']}  "
                  f"accepted {acc['accepted']} rejected {acc['rejected']} dups "
                  f"{acc['duplicates']}  phases {r['timings_s']}", flush=True)
    finally:
        server.terminate()
        server.wait()
    if len(results) >= 2:
        a, b = results[0], results[-1]
        per = (b["driver_peak_mb"] - a["driver_peak_mb"]) * 2**20 / (b["urls"] - a["urls"])
        print(f"driver growth {a['urls']:,} -> {b['urls']:,} URLs: {per:.0f} bytes per URL "
              f"(load average now {os.getloadavg()[0]:.1f})")
    (OUT / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve()
    else:
        main()
