"""CPU seconds per URL of the crawl, synshard against img2dataset, on the same 3,000 photos.

    .venv/bin/python bench/bench_crawl_cpu.py [--urls 3000]

Wall-clock ratios on the shared 2-core machine swing with other sessions' load; CPU seconds do
not as much. Each tool runs under `/usr/bin/time -v` (user + system seconds of the process and
the children it reaped): img2dataset with the crawl job's settings (bench/peers/crawl.py, its two
worker processes are reaped children), synshard with the crawl job's flags plus
`--files-per-task N`, so the list is one read task and the build runs in one process without Ray
(`pipeline.in_process`): every CPU second of the crawl, fetch, decode, resize, encode, hashes,
dedup, shards and commit, is counted, Ray's start-up not. Prints both and their ratio; the
photo server (its own process) is not counted.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE / "peers"), str(ROOT / "scripts")]
import crawl  # noqa: E402
import peer_inputs  # noqa: E402
import photos  # noqa: E402

OUT = ROOT / "bench" / "out" / "crawl-cpu"


def timed(cmd: list[str], log: Path) -> dict[str, float]:
    """Run `cmd` under GNU time; its wall, user + system CPU seconds and peak RSS."""
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True,
                          timeout=1800)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} exited {done.returncode} (see {log})")

    def field(name: str) -> str:
        match = re.search(rf"{re.escape(name)}: (.+)", done.stderr)
        if match is None:
            raise RuntimeError(f"no '{name}' in GNU time's output (see {log})")
        return match.group(1).strip()

    h, m, s = ([0.0] + [float(x) for x in field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
                        .split(":")])[-3:]
    return {"wall_s": h * 3600 + m * 60 + s,
            "cpu_s": float(field("User time (seconds)")) + float(field("System time (seconds)")),
            "max_rss_mb": int(field("Maximum resident set size (kbytes)")) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=3000)
    args = parser.parse_args()
    files = photos.photo_paths(args.urls)
    names = [p.name for p in files]
    peer = ROOT / ".venv-peers" / "img2dataset" / "bin" / "img2dataset"
    if not peer.exists():
        subprocess.run(["bash", str(HERE / "peers" / "venv.sh"), "img2dataset"], check=True,
                       stdout=subprocess.DEVNULL)
    results = {}
    with crawl.Server(files[0].parent) as base:
        txt, csv = peer_inputs.write_url_lists(base, names, OUT)
        for out in (OUT / "img2dataset", OUT / "synshard"):
            shutil.rmtree(out, ignore_errors=True)
        results["img2dataset"] = timed(
            [str(peer), "--url_list", str(txt), "--input_format", "txt", "--output_folder",
             str(OUT / "img2dataset"), "--processes_count", "2", "--thread_count", "32",
             "--resize_mode", "keep_ratio", "--image_size", "256", "--encode_quality", "90",
             "--output_format", "webdataset", "--number_sample_per_shard",
             str(-(-args.urls // 2))], OUT / "img2dataset.log")
        results["synshard"] = timed(
            [str(ROOT / ".venv" / "bin" / "synshard"), "build", str(csv), "--out",
             str(OUT / "synshard"), "--resize", "shorter:256", "--quality", "90", "--format",
             "webdataset", "--allow-private-network", "--fetch-per-host", "32",
             "--files-per-task", str(args.urls), "--no-progress"], OUT / "synshard.log")
    build = json.loads((OUT / "synshard" / "build.json").read_text())["stats"]
    assert build["cluster"]["address"] == "in-process", build["cluster"]
    for name, r in results.items():
        print(f"  {name:12s} wall {r['wall_s']:6.1f} s  CPU {r['cpu_s']:6.1f} s "
              f"({1000 * r['cpu_s'] / args.urls:.1f} ms/URL)  peak RSS {r['max_rss_mb']:.0f} MB")
    ratio = results["synshard"]["cpu_s"] / results["img2dataset"]["cpu_s"]
    print(f"  synshard / img2dataset CPU per URL: {ratio:.2f}x; synshard's phases: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in build["timings_s"].items()))
    (OUT / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
