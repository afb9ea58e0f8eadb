"""The crawl job's build in different modes, alternating on one server: wall, CPU, where it ran.

    .venv/bin/python bench/bench_crawl_modes.py [--rounds 2] [--urls 3000] [CPUS:MODE ...]

Each MODE is `auto` or `always` (`--embedded-ray`), CPUS is `--num-cpus` (in-process: the
driver's read threads); default `2:auto 2:always 1:auto`. The flags are bench/peers/crawl.py's.
Prints one line a build: wall seconds (start-up included), the process's own CPU seconds (user +
system, its reaped children too), the read stage's seconds, `cluster.address` from build.json and
the 1-minute load average. Only ratios within one run mean anything on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE / "peers"), str(ROOT / "scripts")]
import crawl  # noqa: E402
import peer_inputs  # noqa: E402
import photos  # noqa: E402

OUT = ROOT / "bench" / "out" / "crawl-modes"


def build(csv: Path, cpus: str, mode: str) -> str:
    out = OUT / "release"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%U %S", str(ROOT / ".venv" / "bin" / "synshard"), "build",
         str(csv), "--out", str(out), "--resize", "shorter:256", "--quality", "90", "--format",
         "webdataset", "--allow-private-network", "--fetch-per-host", "32", "--num-cpus", cpus,
         "--embedded-ray", mode, "--no-progress"], capture_output=True, text=True, timeout=1200)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"synshard exited {done.returncode}: {done.stderr.strip()[-300:]}")
    user, system = map(float, done.stderr.strip().splitlines()[-1].split())
    stats = json.loads((out / "build.json").read_text())["stats"]
    return (f"cpus {cpus} {mode:6s} wall {wall:5.1f} s  CPU {user + system:5.1f} s  read "
            f"{stats['timings_s']['read+transform+stage']:5.1f} s  {stats['cluster']['address']}"
            f"  load {Path('/proc/loadavg').read_text().split()[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--urls", type=int, default=3000)
    parser.add_argument("modes", nargs="*", default=["2:auto", "2:always", "1:auto"])
    args = parser.parse_args()
    files = photos.photo_paths(args.urls)
    with crawl.Server(files[0].parent) as base:
        _, csv = peer_inputs.write_url_lists(base, [p.name for p in files], OUT)
        for _ in range(args.rounds):
            for cpus, mode in (m.split(":") for m in args.modes):
                print(build(csv, cpus, mode), flush=True)


if __name__ == "__main__":
    main()
