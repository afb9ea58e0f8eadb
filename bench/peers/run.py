"""`make bench-peers`: synshard beside the tool a user would pick instead, same inputs, one run.

    .venv/bin/python bench/peers/run.py [--runs 2] [--crawl-urls 3000] [--jobs crawl,consensus,...]

For each job the inputs are generated once into .cache/bench-peers/ (bench/peers/peer_inputs.py),
then synshard and the peer run alternately, `--runs` times each, each run a fresh process; the
table reports the BEST run of each (highest rate, lowest time). Each peer has its own venv from
pinned versions (bench/peers/venv.sh NAME, bench/peers/requirements/NAME.txt). Prints one table
(job | peer | peer figure | synshard figure | advantage) and writes it as JSON to
bench/out/peers.json. Exits non-zero, with the reason in the row, when a peer could not be
installed or run, or a job failed.

Jobs: crawl (img2dataset), consensus (crowd-kit), neardup (imagededup), transform (plain Pillow
and OpenCV, via bench/bench_transform.py), loader (bench/bench_loader.py --json, H16's peers).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import peer_inputs  # noqa: E402
import peer_table  # noqa: E402
from peer_table import not_run, row  # noqa: E402

PY = ROOT / ".venv" / "bin" / "python"
CACHE = ROOT / ".cache" / "bench-peers"
SIDE_TIMEOUT = 1200  # seconds for one run of one side: a hung peer fails its job, not the bench
JOBS = ("crawl", "consensus", "neardup", "transform", "loader")


class JobError(Exception):
    """A peer could not be installed or a side could not run: the row says why."""


def peer_venv(name: str) -> Path:
    """The python of .venv-peers/NAME, installing it from its pinned requirements if need be."""
    done = subprocess.run(["bash", str(HERE / "venv.sh"), name], capture_output=True, text=True,
                          cwd=ROOT)
    if done.returncode != 0:
        raise JobError(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                       else f"venv.sh {name} exited {done.returncode}")
    return ROOT / done.stdout.strip().splitlines()[-1]


def version(python: Path, dist: str) -> str:
    done = subprocess.run([str(python), "-c", "import importlib.metadata as m, sys; "
                           "print(m.version(sys.argv[1]))", dist], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def side(python: Path, script: str, *args: str) -> dict:
    """Run one side in its own process; its last stdout line is its JSON result."""
    cmd = [str(python), str(HERE / script), *map(str, args)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=SIDE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise JobError(f"{script} {' '.join(map(str, args))} ran over {SIDE_TIMEOUT} s") from None
    if done.returncode != 0:
        err = done.stderr.strip().splitlines() or ["(no output)"]
        raise JobError(f"{python.parent.parent.name} {script} {' '.join(map(str, args))} "
                       f"exited {done.returncode}: {err[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def alternate(sides: dict, runs: int) -> dict[str, list[dict]]:
    """{label: [result per run]}, the sides taking turns: a, b, a, b, ..."""
    results: dict[str, list[dict]] = {label: [] for label in sides}
    for _ in range(runs):
        for label, fn in sides.items():
            results[label].append(fn())
    return results


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text} (load {os.getloadavg()[0]:.1f})", flush=True)


def photos(count: int) -> list[Path]:
    """Exactly `count` real-photo JPEGs from scripts/photos.py (made once, cached)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import photos as photo_source

    return photo_source.photo_paths(count)


# --- jobs -------------------------------------------------------------------------------------

def job_consensus(args) -> list[dict]:
    python = peer_venv("crowdkit")
    peer = f"crowd-kit {version(python, 'crowd-kit')} DawidSkene"
    rows = []
    for classes, spammers, title in ((2, "constant", "yes/no"),
                                     (10, "constant", "10-class, constant-answer spammers"),
                                     (10, "random", "10-class, random spammers")):
        path = CACHE / f"votes-{classes}c-{spammers}-{args.votes}v-{args.workers}w.npz"
        if not path.exists():
            images = args.votes // 5
            peer_inputs.save_votes(peer_inputs.simulate_votes(images, 5, args.workers, classes,
                                                              seed=0, spammers=spammers), path)
        say(f"consensus {title}: {path.name}")
        res = alternate({"synshard": lambda: side(PY, "consensus.py", "synshard", path),
                         "peer": lambda: side(python, "consensus.py", "crowdkit", path)},
                        args.runs)
        job = (f"Dawid-Skene {title}, {args.votes:,} votes, {args.votes // 5:,} images, "
               f"{args.workers:,} workers")
        ours, theirs = res["synshard"][-1], res["peer"][-1]
        ovr = "" if classes == 2 else f"; synshard one-vs-rest over candidates ({ours['rows']:,} rows)"
        rows.append(row(job + ": accuracy vs truth", peer, theirs["accuracy"], ours["accuracy"],
                        "accuracy", True, "simulated crowd, known truth" + ovr))
        rows.append(row(job + ": CPU-s", peer,
                        peer_table.best([r["cpu_s"] for r in res["peer"]], False),
                        peer_table.best([r["cpu_s"] for r in res["synshard"]], False),
                        "CPU-s", False, f"aggregation only, best of {args.runs}"))
    return rows


def pip_no_deps(python: Path, *what: str) -> None:
    """Install `what` into a peer venv without its dependencies (those come from its venv.sh)."""
    done = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "install", "-q",
                           "--no-deps", *what], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        err = done.stderr.strip().splitlines() or ["(no output)"]
        raise JobError(f"pip install --no-deps {' '.join(what)}: {err[-1]}")


def synshard_plain() -> Path:
    """The python of .venv-peers/synshard-plain: synshard (--no-deps) on plain Pillow."""
    python = peer_venv("synshard-plain")
    if not getattr(synshard_plain, "installed", False):
        pip_no_deps(python, str(ROOT))
        synshard_plain.installed = True  # type: ignore[attr-defined]
    return python


def job_neardup(args) -> list[dict]:
    plain = synshard_plain()
    python = peer_venv("imagededup")
    pip_no_deps(python, "-r", str(HERE / "requirements" / "imagededup-nodeps.txt"))
    peer = f"imagededup {version(python, 'imagededup')} PHash (no CNN extras)"
    folder = CACHE / f"neardup-{args.distinct}-{args.copies}"
    if not (folder / "manifest.json").exists():
        peer_inputs.plant_copies(photos(args.distinct), folder, args.copies, seed=0)
    say(f"neardup: {folder.name}, radius {args.radius}")
    res = alternate({"synshard": lambda: side(PY, "neardup.py", "synshard", folder, args.radius),
                     "peer": lambda: side(python, "neardup.py", "imagededup", folder,
                                          args.radius),
                     "plain": lambda: side(plain, "neardup.py", "synshard", folder, args.radius)},
                    args.runs)
    job = f"near dups, {args.distinct:,} photos + {args.copies} planted copies, radius {args.radius}"
    ours, theirs = res["synshard"][-1], res["peer"][-1]
    best = (lambda label, key: peer_table.best([r[key] for r in res[label]], False))
    kinds = "/".join(peer_inputs.COPY_KINDS)
    return [
        row(job + ": recall of planted copies", peer, theirs["recall"], ours["recall"], "recall",
            True, f"copies {kinds}; found {ours['found']} vs {theirs['found']} of {ours['planted']}"),
        row(job + ": false pairs among distinct photos", peer, theirs["false_pairs_distinct"],
            ours["false_pairs_distinct"], "pairs", False,
            f"all pairs reported: {ours['pairs']} vs {theirs['pairs']}"),
        row(job + ": search", peer, best("peer", "search_s"), best("synshard", "search_s"), "s",
            False, f"wall, best of {args.runs}; imagededup brute force on its default pool"),
        row(job + ": hashing (synshard on Pillow-SIMD)", peer, best("peer", "hash_s"),
            best("synshard", "hash_s"), "s", False,
            f"wall, best of {args.runs}; imagededup on a process pool, synshard 1 process"),
        row(job + ": hashing (synshard on plain Pillow)", peer, best("peer", "hash_s"),
            best("plain", "hash_s"), "s", False,
            f"wall, best of {args.runs}; both on plain Pillow 13.0.0"),
    ]


def job_crawl(args) -> list[dict]:
    import crawl

    python = peer_venv("img2dataset")
    peer = f"img2dataset {version(python, 'img2dataset')} (2 processes x 32 threads)"
    files = photos(args.crawl_urls)
    work = CACHE / f"crawl-{args.crawl_urls}"
    rows = []
    with crawl.Server(files[0].parent) as base:
        txt, csv = peer_inputs.write_url_lists(base, [p.name for p in files], work)
        say(f"crawl: {args.crawl_urls} URLs from {base}")
        res = alternate({"synshard": lambda: crawl.run_synshard(ROOT / ".venv/bin/synshard", csv,
                                                                work / "synshard", args.crawl_urls),
                         "peer": lambda: crawl.run_img2dataset(python, txt, work / "img2dataset",
                                                               args.crawl_urls)}, args.runs)
    ours, theirs = res["synshard"][-1], res["peer"][-1]
    rows.append(row(f"crawl {args.crawl_urls:,} URLs from 127.0.0.1, shorter side 256, q90", peer,
                    peer_table.best([r["urls_per_s"] for r in res["peer"]], True),
                    peer_table.best([r["urls_per_s"] for r in res["synshard"]], True), "URL/s",
                    True, f"wall incl. startup, best of {args.runs}; in output: img2dataset "
                    f"{theirs['ok']} ok of {theirs['accounted']}, synshard {ours['ok']} kept + "
                    f"{ours['duplicates']} near/exact dups + {ours['rejected']} rejected"))
    return rows


def job_transform(args) -> list[dict]:
    subprocess.run(["bash", str(ROOT / "bench" / "venv_bench.sh")], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    plain = synshard_plain()
    folder = photos(args.transform_photos)[0].parent
    subset = CACHE / f"transform-{args.transform_photos}"
    subset.mkdir(parents=True, exist_ok=True)
    for p in photos(args.transform_photos):
        if not (subset / p.name).exists():
            (subset / p.name).write_bytes(p.read_bytes())
    say(f"transform: {args.transform_photos} photos from {folder}, one core")
    res = alternate({"simd": lambda: side(PY, "transform.py", "simd", subset),
                     "plain": lambda: side(plain, "transform.py", "plain", subset)}, args.runs)
    b = (lambda label, key: peer_table.best([r[key] for r in res[label]], True))
    versions = res["simd"][-1]["versions"]
    simd_pil, plain_pil = res["simd"][-1]["pil"], res["plain"][-1]["pil"]
    job = f"transform kernel, {args.transform_photos} photos, shorter 256, q90, 1 core"
    note = f"best of {args.runs}; synshard on {{}}; {versions}"
    rows = []
    for label, pil in (("simd", "Pillow-SIMD " + simd_pil.split()[-1]),
                       ("plain", "plain Pillow " + plain_pil.split()[-1])):
        for peer_key, peer in (("pillow", "plain Pillow (LANCZOS)"), ("opencv", "OpenCV (INTER_AREA)")):
            rows.append(row(f"{job} (synshard on {pil.rsplit(' ', 1)[0]})", peer, b("simd", peer_key),
                            b(label, "transform"), "img/CPU-s", True, note.format(pil)))
    return rows


def job_loader(args) -> list[dict]:
    script = ROOT / "bench" / "bench_loader.py"
    helptext = subprocess.run([str(PY), str(script), "--help"], capture_output=True, text=True,
                              cwd=ROOT).stdout
    if "--json" not in helptext:
        raise JobError("bench/bench_loader.py has no --json option yet (issue 16 adds it)")
    out = CACHE / "loader.json"
    say("loader: bench/bench_loader.py --json")
    done = subprocess.run([str(PY), str(script), "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        err = done.stderr.strip().splitlines() or ["(no output)"]
        raise JobError(f"bench_loader.py exited {done.returncode}: {err[-1]}")
    return [peer_table.check(r) for r in json.loads(out.read_text())["rows"]]


PEERS = {"crawl": "img2dataset", "consensus": "crowd-kit", "neardup": "imagededup",
         "transform": "plain Pillow / OpenCV", "loader": "webdataset, streaming, LitData, ImageFolder"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated subset of {JOBS}")
    ap.add_argument("--runs", type=int, default=2, help="runs of each side, alternating (>= 2)")
    ap.add_argument("--crawl-urls", type=int, default=3000)
    ap.add_argument("--votes", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2000)
    ap.add_argument("--distinct", type=int, default=2000)
    ap.add_argument("--copies", type=int, default=500)
    ap.add_argument("--radius", type=int, default=6)
    ap.add_argument("--transform-photos", type=int, default=600)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "peers.json")
    args = ap.parse_args(argv)
    if args.runs < 2:
        ap.error("--runs must be >= 2 (the sides alternate)")
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    unknown = sorted(set(jobs) - set(JOBS))
    if unknown:
        ap.error(f"unknown job(s) {', '.join(unknown)}; choose from {', '.join(JOBS)}")
    CACHE.mkdir(parents=True, exist_ok=True)
    say(f"bench-peers: jobs {', '.join(jobs)}, {args.runs} alternating runs each, "
        f"{os.cpu_count()} CPUs")
    rows, t0 = [], time.perf_counter()
    load = {"start": os.getloadavg()}
    for name in jobs:
        try:
            rows += globals()[f"job_{name}"](args)
        except Exception as exc:  # noqa: BLE001  (one broken job must not hide the others)
            rows.append(not_run(name, PEERS[name], str(exc) or type(exc).__name__))
            say(f"{name}: NOT RUN: {exc}")
    load["end"] = os.getloadavg()
    table = peer_table.render(rows)
    print("\n" + table + "\n")
    print(f"advantage = synshard/peer when higher is better, peer/synshard when lower is better "
          f"(> 1: synshard ahead). {os.cpu_count()} CPUs, load average {load['start'][0]:.1f} "
          f"at start, {load['end'][0]:.1f} at end, {time.perf_counter() - t0:.0f} s in all.")
    peer_table.write_json(rows, args.json, runs=args.runs, cpus=os.cpu_count(), load=load,
                          command=" ".join(["bench/peers/run.py", *(argv or sys.argv[1:])]))
    print(f"written: {args.json}")
    bad = [r for r in rows if peer_table.failed(r)]
    if bad:
        print(f"bench-peers: FAILED: {'; '.join(r['job'] + ': ' + r['note'] for r in bad)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
