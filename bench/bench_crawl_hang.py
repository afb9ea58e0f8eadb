"""Slow URLs must not hold the rest back: the crawl of 3,000 photos, clean and with 50 URLs that
answer 404 and 20 that hang 30 s before answering, both from 127.0.0.1 in the same run.

    .venv/bin/python bench/bench_crawl_hang.py [--urls 3000] [--hanging 20] [--missing 50] [--peer]

The server is the crawl job's (bench/peers/crawl.py, its own process; `<photo>?hang` is answered
after 30 s). The hanging URLs are spread through the list (`/<k>.jpg?hang` sorts beside
`/<k>.jpg`), so they land in many read tasks, the hard case. synshard runs with the crawl job's
flags (bench/peers/crawl.py) and default fetch options otherwise: per-URL deadline 90 s, read
timeout 30 s, slow URLs deferred to retry tasks at the end (`fetch.defer_after`, 5 s). The
target: the faulty crawl takes at most the clean time plus one deadline. Also printed: how many
URLs were deferred and how long the retry tasks took (build.json), which the machine's load
distorts less than the difference of two wall times. `--peer` also runs img2dataset 1.47 (the crawl
job's settings, its default 10 s timeout) on the faulty list. Every URL must be accounted for.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE / "peers"), str(ROOT / "scripts")]
import crawl  # noqa: E402
import peer_inputs  # noqa: E402
import photos  # noqa: E402

from synshard.ingest.fetch_options import FetchOptions  # noqa: E402

OUT = ROOT / "bench" / "out" / "crawl-hang"


def reasons(release: Path) -> dict[str, int]:
    import pyarrow.parquet as pq

    found: dict[str, int] = {}
    for path in release.glob("rejects-*.parquet"):
        for reason in pq.read_table(path, columns=["reason"]).column("reason").to_pylist():
            key = (reason or "?").split(" (")[0]
            found[key] = found.get(key, 0) + 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=3000)
    parser.add_argument("--hanging", type=int, default=20)
    parser.add_argument("--missing", type=int, default=50)
    parser.add_argument("--peer", action="store_true", help="img2dataset on the faulty list too")
    args = parser.parse_args()
    files = photos.photo_paths(args.urls)
    names = [p.name for p in files]
    step = max(1, args.urls // max(args.hanging, 1))
    faults = ([f"missing/{k}.jpg" for k in range(args.missing)]
              + [f"{names[k * step]}?hang" for k in range(args.hanging)])
    deadline = FetchOptions().deadline
    synshard = ROOT / ".venv" / "bin" / "synshard"
    results = {}
    with crawl.Server(files[0].parent) as base:
        clean_txt, clean_csv = peer_inputs.write_url_lists(base, names, OUT / "clean")
        bad_txt, bad_csv = peer_inputs.write_url_lists(base, names + faults, OUT / "faulty")
        total = len(names) + len(faults)
        results["clean"] = crawl.run_synshard(synshard, clean_csv, OUT / "clean" / "release",
                                              len(names))
        print(f"clean:  {args.urls} URLs in {results['clean']['wall_s']:.1f} s", flush=True)
        results["faulty"] = crawl.run_synshard(synshard, bad_csv, OUT / "faulty" / "release",
                                               total)
        results["faulty"]["reasons"] = reasons(OUT / "faulty" / "release")
        build = json.loads((OUT / "faulty" / "release" / "build.json").read_text())["stats"]
        results["faulty"]["deferred"] = build["fetch"].get("deferred", 0)
        results["faulty"]["retry_tasks_s"] = build["timings_s"].get("retry tasks", 0.0)
        print(f"faulty: {total} URLs in {results['faulty']['wall_s']:.1f} s "
              f"(rejected by reason {results['faulty']['reasons']}; "
              f"{results['faulty']['deferred']} URLs deferred to retry tasks, which took "
              f"{results['faulty']['retry_tasks_s']:.1f} s at the end)", flush=True)
        if args.peer:
            python = ROOT / ".venv-peers" / "img2dataset" / "bin" / "python"
            results["img2dataset faulty"] = crawl.run_img2dataset(
                python, bad_txt, OUT / "faulty" / "img2dataset", total)
            print(f"img2dataset faulty: {results['img2dataset faulty']['wall_s']:.1f} s",
                  flush=True)
    extra = results["faulty"]["wall_s"] - results["clean"]["wall_s"]
    verdict = "within" if extra <= deadline else "OVER"
    print(f"faulty - clean = {extra:.1f} s: {verdict} one deadline ({deadline:.0f} s)")
    (OUT / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
