"""A crawl at scale: `synshard build` on URL lists of 10,000 and 100,000 entries from a local server.

    .venv/bin/python bench/bench_crawl_scale.py [--sizes 10000,100000] [--per-host 32]

The server (this file, `serve`: aiohttp.web in its own process, 127.0.0.1 only) answers
`/img/<n>.jpg` with a small distinct JPEG (96x72, a random colour field seeded by n, ~2 kB) and
`/robots.txt` with "allow all". For each size the list (url, synset over 10 ILSVRC synsets) is
written once into bench/out/crawl-scale/ (ignored), then built by bench/timed_build.py (under
`/usr/bin/time -v`, a /proc sampler beside it) with the guard opened for 127.0.0.1 only,
`--resize shorter:64`, the rest on its defaults (robots.txt honoured, per-host cap `--per-host`
per fetching worker).

Prints per size: wall seconds, URLs/s, CPU seconds of the process tree, driver peak RSS (sampled
VmHWM, and GNU time's maximum, which may be a descendant's), the largest worker's peak RSS,
accounting; then the driver's growth per URL between the two sizes (flat: a few hundred bytes at
most).

    .venv/bin/python bench/bench_crawl_scale.py --sizes 30000,100000 --phases [--trace]

`--phases`: each size built in a process of its own instead (the driver is that process), with
bench/bench_driver_memory.py's seams: every segment's own peak RSS (planning the URL list, the
read stage, the gather, each step of decide, the assembly, commit) and the RSS split and Arrow
pool after each phase; `--trace` adds tracemalloc's census by source line (its own bookkeeping
adds RSS: compare its heap figures, not its RSS).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timed_build import timed_build  # noqa: E402

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


def build(urls: Path, n: int, per_host: int) -> dict:
    """One crawl-and-build of `urls` under bench/timed_build.py (its /proc sampler: the driver's
    and the largest Ray worker's peak RSS, the process tree's CPU seconds)."""
    out = OUT / f"release-{n}"
    shutil.rmtree(out, ignore_errors=True)
    r = timed_build([str(urls), "--out", str(out), "--resize", "shorter:64", "--allow-network",
                     "127.0.0.1/32", "--fetch-per-host", str(per_host), "--no-progress",
                     "--name", "crawl-scale"], out)
    shutil.rmtree(out, ignore_errors=True)
    mb = 2**20
    return {"urls": n, "wall_s": r["wall_s"], "urls_per_s": n / r["wall_s"],
            "cpu_s": r["cpu_s"], "driver_peak_mb": r["driver_peak"] / mb,
            "gnu_time_max_rss_mb": r["time_v_max_rss"] / mb,
            "worker_peak_mb": r["worker_peak"] / mb, "workers_seen": r["workers_seen"],
            "accounting": r["accounting"],
            "timings_s": {k: round(v, 1) for k, v in r["timings"].items()}}


def phases(urls: Path, n: int, per_host: int, python_heap: bool) -> None:
    """One crawl-and-build of `urls` in this process, with bench_driver_memory's seams (and two
    of the URL list's own: planning its tasks, and the retry tasks after the read stage)."""
    import tracemalloc

    import bench_driver_memory as mem
    import synshard
    from synshard.builder import commit, inputs, pipeline
    from synshard.builder.decide import steps

    modules = {"pipeline": pipeline, "commit": commit, "steps": steps, "inputs": inputs}
    saved = [(modules[m], name, getattr(modules[m], name))
             for m, name in (("inputs", "plan_url_lists"), ("pipeline", "_with_retries"),
                             *mem.SEGMENT_SEAMS, *((m, name) for m, name, _ in mem.SEAMS))
             if m in modules and hasattr(modules[m], name)]
    segments = mem.Segments() if not python_heap else None

    def wrapped(fn, name, label):  # type: ignore[no-untyped-def]
        def inner(*args, **kwargs):  # type: ignore[no-untyped-def]
            if segments is not None:
                segments.seam(f"{name}(")
            try:
                return fn(*args, **kwargs)
            finally:
                if segments is not None:
                    segments.seam(f"){name}")
                if label:
                    mem.census(label, None, n)
        return inner

    labels = {(m, name): label for m, name, label in mem.SEAMS}
    for module, name, fn in saved:
        key = next(k for k, v in modules.items() if v is module)
        label = labels.get((key, name))
        if segments is None and label is None:
            continue
        setattr(module, name, wrapped(fn, name, label))
    out = OUT / f"release-{n}-phases"
    shutil.rmtree(out, ignore_errors=True)
    print(f"== {n:,} URLs, built in this process", flush=True)
    try:
        if python_heap:
            tracemalloc.start(1)
        synshard.build([str(urls)], str(out), resize="shorter:64", progress=False,
                       name="crawl-scale", log=lambda m: None,
                       fetch_allowed_networks=["127.0.0.1/32"], fetch_per_host=per_host)
        mem.census("after the build (Ray shut down)", None, n)
    finally:
        tracemalloc.stop()
        for module, name, fn in saved:
            setattr(module, name, fn)
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--per-host", type=int, default=32)
    parser.add_argument("--phases", action="store_true",
                        help="build in this process: each phase's peak RSS (see above)")
    parser.add_argument("--trace", action="store_true", help="--phases with tracemalloc")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if (args.phases or args.trace) and len(sizes) > 1:
        # one fresh process per size: a size built after another in the same process starts
        # from the first one's pages (its RSS figures would be the sum, not the size's own)
        for n in sizes:
            subprocess.run([sys.executable, __file__, "--sizes", str(n), "--per-host",
                            str(args.per_host), "--phases", *(["--trace"] if args.trace else [])],
                           check=True)
        return
    server = subprocess.Popen([sys.executable, __file__, "serve"], stdout=subprocess.PIPE,
                              text=True)
    try:
        base = server.stdout.readline().strip()  # type: ignore[union-attr]
        if not base.startswith("http://127.0.0.1:"):
            raise SystemExit(f"server did not start (said {base!r})")
        results = []
        for n in sizes:
            if args.phases or args.trace:
                phases(url_list(base, n), n, args.per_host, python_heap=args.trace)
                continue
            r = build(url_list(base, n), n, args.per_host)
            results.append(r)
            acc = r["accounting"]
            print(f"{n:>8,} URLs: {r['wall_s']:6.1f} s  {r['urls_per_s']:5.0f} URL/s  "
                  f"{r['cpu_s']:6.1f} CPU-s  driver peak "
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
    if results:
        (OUT / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve()
    else:
        main()
