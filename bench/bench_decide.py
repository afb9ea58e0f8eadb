"""The decisions alone, at scale: `decide` on N simulated metadata rows, per step.

    .venv/bin/python bench/bench_decide.py [--rows 10000000] [--synsets 21000] [--near-radius 6]

Simulates the table the driver gathers from the read tasks' journal (Staging.gather_metas,
`decide_schema()`), written once to `.cache/decide/meta-<rows>-<synsets>.parquet` (ignored):
- rows in synset order (read tasks go folder by folder), class sizes skewed (log-normal,
  sigma 1: the largest class ~10-30x the median);
- 1% rejected by the read stage (decode errors: no key, hash or staged file);
- 1% exact copies (the sha256 and phash of an earlier row; 90% in the same synset, 10% under
  another synset: label conflicts, rejected under the default policy), 2% near copies (the phash
  of another row with 1-6 bits flipped, a new sha256; 90% same synset);
- keys `<wnid>_<sha256[:16]>` (exact copies in one synset share their key, as real ones do; the
  gathered table does not hold them: they are made from synset and sha256 where read), sources `/data/imagenet21k/train/<wnid>/<wnid>_<n>.JPEG`, staged files of 256 rows.

Then, in this process: reads the table (what the driver holds after the gather), resets the
peak-RSS counter (/proc/self/clear_refs), runs `decide` (the real function, default options:
splits from keys, exact dedup, near dedup at --near-radius, labels) with each step timed (wall
and CPU seconds; CPU counts every thread) and RSS read after it, and prints the peak RSS of the
whole process and the accounting.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 1_000_000
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
DIGITS = np.frombuffer(b"0123456789", np.uint8)


def _strings(matrix: np.ndarray) -> pa.Array:
    """An Arrow string array from an (n, width) uint8 matrix of ASCII, one row a string."""
    n, width = matrix.shape
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * width).tobytes())
    return pa.StringArray.from_buffers(n, offsets, pa.py_buffer(np.ascontiguousarray(matrix)))


def _hex(raw: np.ndarray) -> np.ndarray:
    out = np.empty((raw.shape[0], raw.shape[1] * 2), np.uint8)
    out[:, 0::2], out[:, 1::2] = HEX[raw >> 4], HEX[raw & 15]
    return out


def _decimal(values: np.ndarray, width: int) -> np.ndarray:
    out = np.empty((values.size, width), np.uint8)
    v = values.astype(np.int64).copy()
    for col in range(width - 1, -1, -1):
        out[:, col] = DIGITS[v % 10]
        v //= 10
    return out


def simulate(rows: int, synsets: int, seed: int = 0) -> tuple[pa.Table, dict]:
    """The whole simulated table (numbers first, strings built per chunk of CHUNK rows)."""
    from synshard.shards.staging import decide_schema, split_sources

    rng = np.random.default_rng(seed)
    sizes = rng.lognormal(0.0, 1.0, synsets)
    synset = np.sort(rng.choice(synsets, size=rows, p=sizes / sizes.sum())).astype(np.int32)
    wnids = _decimal(np.arange(synsets) * 37 + 1_000_000, 8)  # n + 8 digits, distinct
    wnid_m = np.hstack([np.full((synsets, 1), ord("n"), np.uint8), wnids])
    sha = rng.integers(0, 256, (rows, 32), dtype=np.uint8)
    phash = rng.integers(0, 2**63, rows, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    phash ^= rng.integers(0, 2, rows, dtype=np.uint64)
    reject = rng.random(rows) < 0.01
    kind = rng.random(rows)
    exact = ~reject & (kind < 0.01)
    near = ~reject & (kind >= 0.01) & (kind < 0.03)

    def sources_of(copies: np.ndarray) -> np.ndarray:
        """For each copy, an earlier row: 90% of the same synset (sorted rows: near by)."""
        idx = np.flatnonzero(copies)
        same = rng.random(idx.size) < 0.9
        back = rng.integers(1, 50, idx.size)
        src = np.where(same, np.maximum(idx - back, 0), rng.integers(0, rows, idx.size))
        src = np.where(reject[src] | (src == idx), np.maximum(idx - 1, 0), src)
        return idx, src

    ei, es = sources_of(exact)
    sha[ei] = sha[es]
    phash[ei] = phash[es]
    ni, ns = sources_of(near)
    bits = rng.integers(1, 7, ni.size)
    flips = np.zeros(ni.size, np.uint64)
    for b in range(6):
        pos = rng.integers(0, 64, ni.size).astype(np.uint64)
        flips |= np.where(bits > b, np.uint64(1) << pos, np.uint64(0))
    phash[ni] = phash[ns] ^ flips
    # within-synset file numbers for the sources
    first = np.searchsorted(synset, synset, side="left")
    number = np.arange(rows) - first
    staged_row = np.where(reject, -1, np.arange(rows) % 256).astype(np.int32)
    n_files = (rows + 255) // 256
    staged_file = (np.arange(rows) // 256).astype(np.int32)
    paths = _strings(np.hstack([
        np.frombuffer(b"/data/rel/_staging/0123456789abcdef/part-", np.uint8)[None].repeat(
            n_files, 0), _decimal(np.arange(n_files), 9),
        np.frombuffer(b".parquet", np.uint8)[None].repeat(n_files, 0)]))
    schema = decide_schema()
    wnid_strings = _strings(wnid_m)
    chunks = []
    prefix = np.frombuffer(b"/data/imagenet21k/train/", np.uint8)
    for start in range(0, rows, CHUNK):
        sl = slice(start, min(rows, start + CHUNK))
        m = sl.stop - sl.start
        w = wnid_m[synset[sl]]
        src = np.hstack([prefix[None].repeat(m, 0), w, np.full((m, 1), ord("/"), np.uint8), w,
                         np.full((m, 1), ord("_"), np.uint8), _decimal(number[sl], 8),
                         np.frombuffer(b".JPEG", np.uint8)[None].repeat(m, 0)])
        bad = reject[sl]
        folder, name = split_sources(_strings(src))
        cols = {
            "source_dir": folder, "source_name": name,
            "synset": pa.DictionaryArray.from_arrays(pa.array(synset[sl]), wnid_strings),
            "split": pa.nulls(m, pa.string()),
            "width": pa.array(np.full(m, 85, np.int32), mask=bad),
            "height": pa.array(np.full(m, 64, np.int32), mask=bad),
            "sha256": pa.Array.from_buffers(pa.binary(32), m, [
                pa.py_buffer(np.packbits(~bad, bitorder="little")),
                pa.py_buffer(np.ascontiguousarray(sha[sl]).tobytes())]),
            "phash": pa.array(phash[sl], pa.uint64(), mask=bad),
            "confidence": pa.nulls(m, pa.float32()),
            "stage": pa.array(np.where(bad, "decode", None).tolist(), pa.string()),
            "reason": pa.array(np.where(bad, "undecodable: truncated JPEG", None).tolist(),
                               pa.string()),
            "staged_path": pa.DictionaryArray.from_arrays(
                pa.array(staged_file[sl], mask=bad), paths),
            "staged_row": pa.array(staged_row[sl], mask=bad),
        }
        chunks.append(pa.table(cols).cast(schema))
    info = {"rejected": int(reject.sum()), "exact copies": int(ei.size),
            "near copies": int(ni.size), "synsets": synsets}
    return pa.concat_tables(chunks), info


def arrow_bytes() -> int:
    """Bytes allocated in Arrow's default pool and, where that is another pool, the C heap's
    (decide allocates from the system pool on glibc: synshard/builder/decide/memory.py)."""
    default, system = pa.default_memory_pool(), pa.system_memory_pool()
    extra = system.bytes_allocated() if default.backend_name != system.backend_name else 0
    return default.bytes_allocated() + extra


def _rss() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS"):
            out[k] = int(v.split()[0]) * 1024
    return out


class Steps:
    """Times each step of decide by wrapping the names steps.py calls (no change to decide)."""

    NAMES = ("plain", "_reject_rows", "assign_splits_batch", "_confidence_step",
             "_takedown_step", "_external_step", "sha256_block", "exact_dedup", "near_dedup",
             "_classes_step", "_cap_step", "_kept_table", "_with_labels", "_finish")

    def __init__(self) -> None:
        from synshard.builder.decide import steps

        self.rows: list[tuple[str, float, float, int, int, int, int, int]] = []
        self.depth, self.peak = 0, 0
        self.module = steps
        self.saved = {n: getattr(steps, n) for n in self.NAMES if hasattr(steps, n)}
        for name, fn in self.saved.items():
            setattr(steps, name, self._wrap(name, fn))

    def _wrap(self, name, fn):
        def inner(*args, **kwargs):
            self.depth += 1
            if self.depth == 1:  # a step's own peak (steps called inside another: the outer's)
                self.peak = max(self.peak, _rss()["VmHWM"])
                Path("/proc/self/clear_refs").write_text("5")
                if tracemalloc.is_tracing():
                    tracemalloc.reset_peak()
            w, c = time.perf_counter(), time.process_time()
            try:
                result = fn(*args, **kwargs)
            finally:
                self.depth -= 1
            rss = _rss()
            traced = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (-1, -1)
            self.rows.append((name, time.perf_counter() - w, time.process_time() - c,
                              rss["VmRSS"], rss["VmHWM"] if self.depth == 0 else 0,
                              arrow_bytes(), traced[0],
                              traced[1] if self.depth == 0 else -1))
            return result
        return inner

    def overall_peak(self) -> int:
        return max(self.peak, _rss()["VmHWM"])

    def restore(self) -> None:
        for name, fn in self.saved.items():
            setattr(self.module, name, fn)


class Tracer:
    """`--trace`: a thread samples the RSS every few ms; at each new peak (16 MiB above the last)
    it records the Arrow pool's allocated bytes, NumPy's (tracemalloc: NumPy traces its data
    buffers) and the main thread's stack, so the peak is attributed to a line, not a step."""

    STEP = 16 << 20

    def __init__(self, interval: float = 0.002) -> None:
        self.interval, self.best, self.record = interval, 0, None
        self.main = threading.main_thread().ident
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.stop = threading.Event()
        tracemalloc.start(1)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with open("/proc/self/statm") as f:
            while not self.stop.wait(self.interval):
                f.seek(0)
                rss = int(f.read().split()[1]) * self.page
                if rss > self.best + self.STEP or (self.record is None and rss > self.best):
                    self.best = rss
                    frame = sys._current_frames().get(self.main)
                    stack = []
                    while frame is not None:
                        code = frame.f_code
                        if "site-packages" not in code.co_filename:
                            stack.append(f"{Path(code.co_filename).name}:{frame.f_lineno} "
                                         f"{code.co_name}")
                        frame = frame.f_back
                    self.record = (rss, arrow_bytes(),
                                   tracemalloc.get_traced_memory()[0], stack[:8])

    def report(self) -> None:
        self.stop.set()
        self.thread.join()
        mib = 1024 * 1024
        if self.record is None:
            return
        rss, arrow, numpy, stack = self.record
        print(f"sampled peak RSS {rss / mib:,.0f} MiB: Arrow allocated {arrow / mib:,.0f} MiB, "
              f"NumPy/Python traced {numpy / mib:,.0f} MiB, the rest (interpreter, libraries, "
              f"allocator retention) {(rss - arrow - numpy) / mib:,.0f} MiB; at")
        for line in stack:
            print(f"    {line}")
        tracemalloc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--synsets", type=int, default=21_000)
    ap.add_argument("--near-radius", default="6", help="phash radius, or none")
    ap.add_argument("--cache", default=str(ROOT / ".cache" / "decide"))
    ap.add_argument("--task-rows", type=int, default=0,
                    help="re-chunk the table read back into chunks of this many rows, as the "
                         "gather holds it (a chunk per read task: 256); default: as read")
    ap.add_argument("--trace", action="store_true",
                    help="attribute the peak: Arrow vs NumPy bytes and the stack at the peak")
    args = ap.parse_args()
    from synshard.builder.decide.steps import decide
    from synshard.config import BuildConfig
    from synshard.shards.staging import decide_schema
    from synshard.transforms.options import DedupOptions

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"meta-{args.rows}-{args.synsets}.parquet"
    print(f"load average {os.getloadavg()[0]:.1f}")
    if path.exists() and pq.read_schema(path) != decide_schema():
        print(f"{path} was simulated in an older schema: simulating again")
        path.unlink()
    if not path.exists():
        t = time.perf_counter()
        table, info = simulate(args.rows, args.synsets)
        pq.write_table(table, str(path) + ".tmp", row_group_size=CHUNK)
        os.replace(str(path) + ".tmp", path)
        print(f"simulated {args.rows:,} rows in {time.perf_counter() - t:.0f} s: {info}")
        del table
        print("re-run to measure decide in a fresh process (the simulation's memory is gone)")
        os.execv(sys.executable, [sys.executable, *sys.argv])
    t = time.perf_counter()
    meta = pq.read_table(path)
    if args.task_rows:
        meta = pa.Table.from_batches(meta.to_batches(max_chunksize=args.task_rows),
                                     meta.schema)  # (slices: the dictionaries stay shared)
        print(f"re-chunked as gathered: {meta.column(0).num_chunks:,} chunks a column")
    load_s = time.perf_counter() - t
    held = _rss()["VmRSS"]
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
    radius = None if args.near_radius == "none" else int(args.near_radius)
    cfg = BuildConfig(out="/tmp/unused", sources=("/data",), dedup=DedupOptions(near_radius=radius))
    steps = Steps()
    tracer = Tracer() if args.trace else None
    w, c = time.perf_counter(), time.process_time()
    decisions = decide(meta, cfg)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    steps.restore()
    peak = steps.overall_peak()
    mib = 1024 * 1024
    print(f"\n{args.rows:,} rows, {args.synsets:,} synsets: table read in {load_s:.1f} s, "
          f"{meta.nbytes / args.rows:.0f} B/row in Arrow ({meta.nbytes / mib:,.0f} MiB); "
          f"process RSS with it {held / mib:,.0f} MiB")
    print(f"{'step':<22}{'wall s':>9}{'CPU s':>9}{'RSS after MiB':>15}{'peak in it MiB':>16}"
          f"{'Arrow after':>13}{'NumPy after':>13}{'NumPy peak':>12}")
    for name, sw, sc, rss, top, arrow, traced, traced_top in steps.rows:
        inner = f"{top / mib:16,.0f}" if top else f"{'(in its caller)':>16}"
        numpy = f"{traced / mib:13,.0f}" if traced >= 0 else f"{'-':>13}"
        numpy += f"{traced_top / mib:12,.0f}" if traced_top >= 0 else f"{'-':>12}"
        print(f"{name:<22}{sw:9.1f}{sc:9.1f}{rss / mib:15,.0f}{inner}{arrow / mib:13,.0f}{numpy}")
    print(f"{'decide (total)':<22}{wall:9.1f}{cpu:9.1f}")
    near = sum(row[1] for row in steps.rows if row[0] == "near_dedup")
    print(f"near-dup step share of decide's wall time: {near / max(wall, 1e-9):.0%}")
    print(f"peak RSS during decide {peak / mib:,.0f} MiB "
          f"(getrusage max {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB, "
          f"which includes reading the table)")
    if tracer is not None:
        tracer.report()
    print(f"accounting {decisions.accounting}; duplicates by kind "
          f"{_kinds(decisions.duplicates)}; conflicts {decisions.conflicts.num_rows:,}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


def _kinds(table: pa.Table) -> dict:
    return {d["values"]: d["counts"] for d in pc.value_counts(table["kind"]).to_pylist()}


if __name__ == "__main__":
    main()
