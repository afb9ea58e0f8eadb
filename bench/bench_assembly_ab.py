"""Benchmark: the shard writers and the staged read of this tree against those of REV, same run.

    .venv/bin/python bench/bench_assembly_ab.py RELEASE [--base REV] [--rounds 8]

RELEASE is any committed release with Parquet shards (e.g. one `synshard build` wrote); its
groups are the work. REV's `shards/*.py` are extracted with `git show` into a temporary package,
and both versions write every group as WebDataset and Parquet shards and read it back from
staged files, alternating in random order, on the CPU clock (the machine's load distorts wall
time far more than CPU time). Prints CPU microseconds per image of each step, old/new, and
checks that both wrote identical files (the release bytes are pinned).
"""
import argparse
import glob
import hashlib
import importlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import fsspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from synshard.shards import parquet as P_new, staging as S_new, webdataset as W_new  # noqa: E402
from synshard.transforms.schema import TRANSFORMED_SCHEMA  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("release")
ap.add_argument("--base", default="d4bf8d9", help="the old revision (default: before issue 15's assembly work)")
ap.add_argument("--rounds", type=int, default=8)
args = ap.parse_args()
old_root = Path(tempfile.mkdtemp(prefix="ab-old-"))
(old_root / "oldshards").mkdir()
names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", args.base, "shards/"],
                       check=True, capture_output=True, text=True).stdout.split()
for name in names:
    if name.endswith(".py"):
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{args.base}:{name}"], check=True,
                              capture_output=True).stdout
        (old_root / "oldshards" / Path(name).name).write_bytes(text)
sys.path.insert(0, str(old_root))
P_old = importlib.import_module("oldshards.parquet")
W_old = importlib.import_module("oldshards.webdataset")
S_old = importlib.import_module("oldshards.staging")
src = args.release
fs = fsspec.filesystem("file")
groups = []
for path in sorted(glob.glob(f"{src}/parquet/*/*/*.parquet")):
    groups.append(P_new.read_parquet_shard(fs, path))
n = sum(g.num_rows for g in groups)
stage = tempfile.mkdtemp(prefix="ha_ab_stage_")
staged = []
for i, g in enumerate(groups):
    t = g.append_column("stage", pa.nulls(g.num_rows, pa.string())).append_column("reason", pa.nulls(g.num_rows, pa.string()))
    t = t.select(TRANSFORMED_SCHEMA.names).cast(TRANSFORMED_SCHEMA)
    path = f"{stage}/{i}.parquet"
    pq.write_table(t, path, compression="none")
    keep = pa.table({"staged_path": pa.array([path] * g.num_rows).dictionary_encode(), "staged_row": pa.array(range(g.num_rows), pa.int32()),
                     "split": g["split"], "label": g["label"], "confidence": g["confidence"]})
    staged.append((path, keep))
def run(W, P, S):
    root = tempfile.mkdtemp(prefix="ha_ab_out_")
    c = time.process_time()
    for g in groups:
        W.write_webdataset_shards(fs, root, g, 1 << 28)
    w = time.process_time() - c
    c = time.process_time()
    for g in groups:
        P.write_parquet_shards(fs, root, g, 1 << 28)
    p = time.process_time() - c
    c = time.process_time()
    for path, keep in staged:
        S.read_staged(fs, (path,), keep)
    s = time.process_time() - c
    files = {os.path.relpath(f, root): hashlib.sha256(open(f, "rb").read()).hexdigest() for f in glob.glob(f"{root}/**/*.*", recursive=True)}
    shutil.rmtree(root)
    return np.array([w, p, s]) / n * 1e6, files
res = {"old": [], "new": []}
for r in range(args.rounds):
    pairs = [("old", (W_old, P_old, S_old)), ("new", (W_new, P_new, S_new))]
    random.shuffle(pairs)
    for name, mods in pairs:
        us, files = run(*mods)
        res[name].append(us)
        res[name + "files"] = files
assert res["oldfiles"] == res["newfiles"], "different bytes"
o, nw = np.median(res["old"], axis=0), np.median(res["new"], axis=0)
print(f"{n} images in {len(groups)} groups, mean image {np.mean([np.mean(pc.binary_length(g['image']).to_numpy()) for g in groups]):.0f} B; "
      f"load {os.getloadavg()[0]:.1f}; identical files: {len(res['newfiles'])}")
for i, what in enumerate(("webdataset write", "parquet write", "staged read")):
    print(f"  {what:17s} old {o[i]:6.0f} CPU-us/img  new {nw[i]:6.0f}  old/new {o[i]/nw[i]:.2f}x")
print(f"  {'total':17s} old {o.sum():6.0f}  new {nw.sum():6.0f}  old/new {o.sum()/nw.sum():.2f}x")
shutil.rmtree(stage)
shutil.rmtree(old_root)
