"""Benchmark: exact near-duplicate search over N synthetic 64-bit hashes with planted pairs.

Prints wall and CPU time, recall on the planted pairs (must be 100%), and the ratio against
brute-force popcount over all pairs, measured on a subsample in the same run and scaled by n^2.

    .venv/bin/python bench/bench_neardup.py                 # 10M hashes, r=4
    .venv/bin/python bench/bench_neardup.py --n 1000000 --compare-q
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from synshard.transforms import neardup as nd


def planted_set(n: int, pairs: int, radius: int, seed: int):
    """n random hashes; the last `pairs` are copies of earlier ones at distance 1..radius."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, n, dtype=np.uint64)
    src = rng.choice(n - pairs, pairs, replace=False)
    dst = np.arange(n - pairs, n)
    dist = rng.integers(1, radius + 1, pairs)
    flips = rng.permuted(np.tile(np.arange(64, dtype=np.uint64), (pairs, 1)), axis=1)[:, :radius]
    copy = h[src].copy()
    for k in range(radius):
        copy ^= np.where(k < dist, np.uint64(1) << flips[:, k], np.uint64(0))
    h[dst] = copy
    return h, src, dst, dist


def brute_rate(h: np.ndarray, m: int) -> float:
    """Seconds per pair of brute force (xor + popcount + compare) over an m-hash subsample."""
    sub = h[:m]
    t = time.perf_counter()
    for a in range(m - 1):
        np.count_nonzero(nd.popcount64(sub[a + 1:] ^ sub[a]) <= 4)
    return (time.perf_counter() - t) / (m * (m - 1) / 2)


def timed(fn, *args, **kw):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--radius", type=int, default=4)
    ap.add_argument("--planted", type=int, default=100_000)
    ap.add_argument("--brute-sample", type=int, default=20_000)
    ap.add_argument("--compare-q", action="store_true", help="also time q=1..3 (slow at big n)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    h, src, dst, dist = planted_set(args.n, min(args.planted, args.n // 2), args.radius, args.seed)
    q = nd.choose_match_blocks(args.n, args.radius)
    print(f"n={args.n:,} radius={args.radius} planted={src.size:,} q={q} "
          f"tables={len(nd.Layout(64, args.radius, q).tables)}", flush=True)
    (i, j, d), wall, cpu = timed(nd.find_pairs, h, args.radius)
    found = set(zip(i.tolist(), j.tolist()))
    hits = sum((int(a), int(b)) in found for a, b in zip(src, dst))
    print(f"find_pairs: wall {wall:.1f}s cpu {cpu:.1f}s pairs {i.size:,} "
          f"recall {hits}/{src.size} = {100 * hits / max(src.size, 1):.3f}%", flush=True)
    per_pair = brute_rate(h, min(args.brute_sample, args.n))
    brute = per_pair * args.n * (args.n - 1) / 2
    print(f"brute force (measured on {min(args.brute_sample, args.n):,}, scaled): "
          f"{per_pair * 1e9:.2f} ns/pair -> {brute:,.0f}s = {brute / 3600:.1f}h; "
          f"ratio {brute / wall:,.0f}x (wall), {brute / cpu:,.0f}x (cpu)", flush=True)
    if args.compare_q:
        uniq, _ = nd.collapse(h)
        for qq in (1, 2, 3):
            tasks = nd.plan_tasks(uniq.size, args.radius, q=qq)
            _, w, c = timed(lambda: [nd.run_task(uniq, t) for t in tasks])
            print(f"  q={qq}: {len(tasks)} tables, wall {w:.1f}s cpu {c:.1f}s", flush=True)


if __name__ == "__main__":
    main()
