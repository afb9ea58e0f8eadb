"""Benchmark: the exact near-duplicate search over N realistic 64-bit hashes, as Ray tasks over
every core against one process, in the same run, on the same hashes.

The hashes (`realistic_hashes`): uniform ones, loose clusters (similar photos), tight groups
(bursts: most pairs within the radius), a few near-blank images (one huge bucket in every
table), 1% exact copies and 2% near copies planted at distance 1..radius. Prints the planted
recall (must be 100%), that both runs found the same pairs, wall and CPU seconds, peak RSS of
the driver and of the largest Ray worker, and brute force measured on a subsample, scaled.

    .venv/bin/python bench/bench_neardup.py          # 10M hashes, r=6: Ray, 1 thread, N threads
    .venv/bin/python bench/bench_neardup.py --n 1000000 --compare-q
    .venv/bin/python bench/bench_neardup.py --policy        # near_dedup on 10M metadata rows
    .venv/bin/python bench/bench_neardup.py --profile-tables 7   # CPU per step of a table
"""
from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from synshard.transforms import neardup as nd

NEAR_DISTANCES = (0.30, 0.25, 0.20, 0.12, 0.08, 0.05)  # P(distance 1..6) of a planted copy


def _sparse_bits(rng: np.random.Generator, n: int, words: int) -> np.ndarray:
    """Random masks whose bits are set with probability 2**-words."""
    m = rng.integers(0, 2**64, n, dtype=np.uint64)
    for _ in range(words - 1):
        m &= rng.integers(0, 2**64, n, dtype=np.uint64)
    return m


def _flip(rng: np.random.Generator, h: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """h with `dist` distinct random bits flipped (per element)."""
    bits = rng.permuted(np.tile(np.arange(64, dtype=np.uint64), (h.size, 1)), axis=1)
    out = h.copy()
    for k in range(int(dist.max(initial=0))):
        out ^= np.where(k < dist, np.uint64(1) << bits[:, k], np.uint64(0))
    return out


def realistic_hashes(n: int, radius: int = 6, seed: int = 0, near: float = 0.02,
                     exact: float = 0.01
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(hashes, planted source index, planted copy index, origin: per hash, the index of the
    hash it copies or of its burst's first member, else its own): see the module docstring."""
    rng = np.random.default_rng(seed)
    n_near, n_exact = int(n * near), int(n * exact)
    n_blank = min(1000, n // 1000)
    n_base = n - n_near - n_exact - n_blank
    n_tight, n_loose = n_base // 100, n_base // 2
    uniform = rng.integers(0, 2**64, n_base - n_tight - n_loose, dtype=np.uint64)
    centres = rng.integers(0, 2**64, max(1, n_loose // 100), dtype=np.uint64)
    loose = centres[rng.integers(0, centres.size, n_loose)] ^ _sparse_bits(rng, n_loose, 2)
    bursts = rng.integers(0, 2**64, max(1, n_tight // 10), dtype=np.uint64)
    burst = rng.integers(0, bursts.size, n_tight)
    tight = bursts[burst] ^ _sparse_bits(rng, n_tight, 5)
    first = np.full(bursts.size, -1, np.int64)
    first[burst[::-1]] = np.arange(n_tight)[::-1]  # a burst's first member: its origin
    blank = _sparse_bits(rng, n_blank, 5)  # near-blank images: a few bits from all-zero
    base = np.concatenate([uniform, loose, tight, blank])
    src = rng.choice(base.size, n_near, replace=False)
    weights = np.array(NEAR_DISTANCES[:radius]) / sum(NEAR_DISTANCES[:radius])
    dist = rng.choice(np.arange(1, weights.size + 1), n_near, p=weights)
    copies = _flip(rng, base[src], dist)
    exact_src = rng.integers(0, base.size, n_exact)
    h = np.concatenate([base, copies, base[exact_src]])
    origin = np.arange(base.size)
    origin[uniform.size + loose.size:][:n_tight] = uniform.size + loose.size + first[burst]
    origin = np.concatenate([origin, origin[src], origin[exact_src]])
    perm = rng.permutation(h.size)
    where = np.empty_like(perm)
    where[perm] = np.arange(perm.size)  # where[k]: position of original item k
    return h[perm], where[src], where[base.size + np.arange(n_near)], where[origin[perm]]


def recall(uniq: np.ndarray, pairs: nd.Pairs, h: np.ndarray, src: np.ndarray,
           dst: np.ndarray) -> float:
    """Share of planted (source, copy) pairs among the distinct pairs found."""
    a, b = np.searchsorted(uniq, h[src]), np.searchsorted(uniq, h[dst])
    same = a == b  # a copy can land on another hash exactly (it is then distance 0)
    want = np.minimum(a, b)[~same] * uniq.size + np.maximum(a, b)[~same]
    got = pairs.i.astype(np.int64) * uniq.size + pairs.j
    return (np.isin(want, got).sum() + same.sum()) / max(src.size, 1)


def brute_rate(h: np.ndarray, m: int, radius: int) -> float:
    """Seconds per pair of brute force (xor + popcount + compare) over an m-hash subsample."""
    sub = h[:m]
    t = time.perf_counter()
    for a in range(m - 1):
        np.count_nonzero(nd.popcount64(sub[a + 1:] ^ sub[a]) <= radius)
    return (time.perf_counter() - t) / (m * (m - 1) / 2)


def timed(fn, *args, **kw):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - w, time.process_time() - c


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _proc_cpu_hwm(pid: int) -> tuple[float, float]:
    """CPU seconds and peak RSS (MB) of a process, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = [line for line in open(f"/proc/{pid}/status") if line.startswith("VmHWM")]
    return cpu, int(hwm[0].split()[1]) / 1024 if hwm else 0.0


def _getpid() -> int:
    return os.getpid()


def ray_search(uniq: np.ndarray, radius: int, cpus: int | None):
    """The Ray search in an embedded Ray (127.0.0.1): pairs, wall, CPU (driver + workers),
    the largest worker's peak RSS, CPUs. Workers are found by asking each for its pid."""
    from synshard.builder import neardup_ray
    from synshard.builder.raysession import loopback_ray_init, ray

    loopback_ray_init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        pid = ray.remote(num_cpus=1)(_getpid)
        n_cpu = int(ray.cluster_resources().get("CPU", 1))
        workers = set(ray.get([pid.remote() for _ in range(8 * n_cpu)]))
        before = {w: _proc_cpu_hwm(w)[0] for w in workers}
        pairs, wall, cpu = timed(neardup_ray.search_distinct_ray, uniq, radius)
        workers |= set(ray.get([pid.remote() for _ in range(8 * n_cpu)]))
        after = {w: _proc_cpu_hwm(w) for w in workers}
        task_cpu = sum(c - before.get(w, 0.0) for w, (c, _) in after.items())
        return pairs, wall, cpu + task_cpu, max(m for _, m in after.values()), n_cpu
    finally:
        ray.shutdown()


def policy_table(h: np.ndarray, origin: np.ndarray, seed: int):
    """A metadata table over the hashes: 1,000 synsets (a copy has its original's, but 3% of
    copies another: label conflicts), 2% val, distinct keys, random sizes."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    n = h.size
    keys = pa.array(np.char.add("k", np.arange(n).astype("U9")))
    synset = rng.integers(0, 1000, n)[origin]
    relabel = (origin != np.arange(n)) & (rng.random(n) < 0.03)
    synset[relabel] = rng.integers(0, 1000, int(relabel.sum()))
    synsets = pa.array(np.char.add("n", synset.astype("U8")))
    return pa.table({
        "key": keys, "synset": synsets,
        "split": pa.array(np.where(rng.random(n) < 0.02, "val", "train")),
        "width": pa.array(rng.integers(64, 500, n).astype(np.int32)),
        "height": pa.array(rng.integers(64, 500, n).astype(np.int32)),
        "phash": pa.array(h, pa.uint64()), "source": keys,
    })


def time_policy(h: np.ndarray, origin: np.ndarray, radius: int, seed: int) -> None:
    """near_dedup (the build's policy) on a metadata table of these hashes, search included."""
    from synshard.transforms.neardup_policy import near_dedup

    meta = policy_table(h, origin, seed)
    searched = []

    def search(uniq: np.ndarray, r: int) -> nd.Pairs:
        out, w, c = timed(nd.search_distinct, uniq, r)
        searched.append(c)
        return out

    res, wall, cpu = timed(near_dedup, meta, radius, "keep", search)
    print(f"near_dedup on {h.size:,} rows: wall {wall:.1f}s cpu {cpu:.1f}s, of which the "
          f"search {searched[0]:.1f}s cpu; dropped {int((~res.keep).sum()):,}, conflicts "
          f"{res.conflicts.num_rows:,}; peak RSS {peak_rss_mb():,.0f} MB", flush=True)


def profile_tables(uniq: np.ndarray, radius: int, tables: int) -> None:
    """CPU seconds per step of one table's search, mean over `tables` spread-out tables."""
    layout = nd.layout_for(64, radius, nd.choose_match_blocks(uniq.size, radius))
    picked = np.linspace(0, len(layout.tables) - 1, tables).astype(int).tolist()
    steps: dict[str, float] = {}

    def step(name: str, fn, *args):
        c = time.process_time()
        out = fn(*args)
        steps[name] = steps.get(name, 0.0) + time.process_time() - c
        return out

    for t in picked:
        shift = nd._key_shift(layout, t)
        ph = step("permute (key bits on top)", layout.permute, uniq, t)
        step("sort in place", ph.sort)
        step("scan: run boundaries + pairs up to SCAN_OFFSETS apart", nd._scan, ph, shift,
             radius, nd.SCAN_OFFSETS)
        step("all run pairs (scan + longer runs by size class + big runs)", nd._run_pairs, ph,
             shift, radius, nd.DEFAULT_MAX_BUCKET, 0)
        step("whole table (+ first-table filter, index lookup)", nd._table_pairs, uniq, layout,
             t, 0, 1 << 64, nd.DEFAULT_MAX_BUCKET)
    for name, s in steps.items():
        print(f"  {name}: {s / len(picked):.3f} s CPU / table", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--radius", type=int, default=6)
    ap.add_argument("--cpus", type=int, default=None, help="Ray CPUs (default: all)")
    ap.add_argument("--no-ray", action="store_true", help="only the one-process search")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads of the in-process search (default: every local CPU)")
    ap.add_argument("--brute-sample", type=int, default=10_000)
    ap.add_argument("--compare-q", action="store_true", help="also time q=1..4 (slow at big n)")
    ap.add_argument("--profile-tables", type=int, default=0,
                    help="only the per-step CPU of this many tables' searches")
    ap.add_argument("--policy", action="store_true",
                    help="only near_dedup (the policy, search included) on a metadata table")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    h, src, dst, origin = realistic_hashes(args.n, args.radius, args.seed)
    if args.policy:
        time_policy(h, origin, args.radius, args.seed)
        return
    uniq, _ = nd.collapse(h)
    if args.profile_tables:
        profile_tables(uniq, args.radius, args.profile_tables)
        return
    q = nd.choose_match_blocks(uniq.size, args.radius)
    print(f"n={args.n:,} distinct={uniq.size:,} radius={args.radius} planted={src.size:,} "
          f"q={q} tables={len(nd.Layout(64, args.radius, q).tables)}", flush=True)
    runs = {}
    if not args.no_ray:
        pairs, wall, cpu, worker_rss, n_cpu = ray_search(uniq, args.radius, args.cpus)
        runs["ray"] = (pairs, wall, cpu)
        print(f"ray ({n_cpu} CPUs): wall {wall:.1f}s cpu {cpu:.1f}s (driver + tasks) "
              f"pairs {len(pairs):,} recall {100 * recall(uniq, pairs, h, src, dst):.3f}% "
              f"driver peak RSS {peak_rss_mb():,.0f} MB, largest worker {worker_rss:,.0f} MB",
              flush=True)
    threads = args.threads or nd.local_cpus()
    pairs, wall, cpu = timed(nd.search_distinct, uniq, args.radius, threads=1)
    runs["one"] = (pairs, wall, cpu)
    print(f"one process, one thread: wall {wall:.1f}s cpu {cpu:.1f}s pairs {len(pairs):,} "
          f"recall {100 * recall(uniq, pairs, h, src, dst):.3f}% "
          f"peak RSS {peak_rss_mb():,.0f} MB", flush=True)
    if threads > 1:  # the build's in-process default: a table per local CPU
        pairs, wall, cpu = timed(nd.search_distinct, uniq, args.radius, threads=threads)
        runs["threads"] = (pairs, wall, cpu)
        print(f"one process, {threads} threads: wall {wall:.1f}s cpu {cpu:.1f}s pairs "
              f"{len(pairs):,} peak RSS {peak_rss_mb():,.0f} MB", flush=True)
    for other in ("ray", "threads"):
        if other in runs:
            same = all(np.array_equal(x, y) for x, y in zip(runs[other][0].as_tuple(),
                                                           runs["one"][0].as_tuple()))
            print(f"{other}: same pairs in the same order as one thread: {same}; "
                  f"{runs['one'][1] / runs[other][1]:.2f}x faster (wall), "
                  f"CPU {runs[other][2] / runs['one'][2]:.2f}x", flush=True)
    per_pair = brute_rate(uniq, min(args.brute_sample, uniq.size), args.radius)
    brute = per_pair * uniq.size * (uniq.size - 1) / 2
    print(f"brute force (measured on {min(args.brute_sample, uniq.size):,}, scaled): "
          f"{per_pair * 1e9:.2f} ns/pair -> {brute / 3600:,.1f}h; ratio {brute / cpu:,.0f}x "
          f"the one-process CPU time", flush=True)
    if args.compare_q:
        for qq in (1, 2, 3, 4):
            tasks = nd.plan_tasks(uniq.size, args.radius, q=qq)
            _, w, c = timed(nd.run_tasks, uniq, tasks)
            print(f"  q={qq}: {len(tasks)} tables, wall {w:.1f}s cpu {c:.1f}s", flush=True)


if __name__ == "__main__":
    main()
