"""Consensus job: Dawid-Skene over simulated crowd votes, synshard vs crowd-kit.

    python bench/peers/consensus.py synshard|crowdkit VOTES.npz     # prints one JSON line

Both sides read the same votes file (bench/peers/peer_inputs.py, with its truth), convert it to
their own input format outside the clock, and time only the aggregation in CPU seconds
(`time.process_time`, all threads of the process): accuracy is against the simulated truth.
- crowdkit: `crowd_kit.aggregation.DawidSkene()` on its defaults (n_iter=100, tol=1e-5),
  `fit_predict` on a (task, worker, label) DataFrame; multi-class natively.
- synshard: `synshard.synsets.consensus.consensus(votes, "ds")` on dictionary-encoded string
  columns (what `synshard votes` reads from Parquet). synshard's Dawid-Skene is binary per
  (image, synset): multi-class votes go in one-vs-rest over each image's candidate labels
  (`peer_inputs.one_vs_rest`), and the label with the highest posterior wins.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

import peer_inputs


def _names(prefix: str, codes: np.ndarray):
    import pyarrow as pa

    n = int(codes.max()) + 1
    dictionary = pa.array([f"{prefix}{i:08d}" for i in range(n)])
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), dictionary)


def run_synshard(votes: dict[str, np.ndarray]) -> dict:
    import pyarrow as pa

    from synshard.synsets.consensus import consensus

    binary = int(votes["label"].max()) <= 1 and int(votes["truth"].max()) <= 1
    rows = {"image": votes["image"], "synset": np.zeros_like(votes["image"]),
            "worker": votes["worker"], "vote": votes["label"] == 1} if binary \
        else peer_inputs.one_vs_rest(votes)
    table = pa.table({"image": _names("img", rows["image"]), "synset": _names("n", rows["synset"]),
                      "worker": _names("w", rows["worker"]), "vote": pa.array(rows["vote"])})
    c0 = time.process_time()
    result = consensus(table, "ds")
    cpu = time.process_time() - c0
    post = result.posteriors
    image = np.array([int(s[3:]) for s in post["image"].to_pylist()])
    synset = np.array([int(s[1:]) for s in post["synset"].to_pylist()])
    p = post["posterior"].to_numpy()
    if binary:
        pred = np.zeros(votes["truth"].size, dtype=np.int64)
        pred[image] = p >= 0.5
    else:
        order = np.lexsort((-p, image))  # per image, the highest posterior first
        first = np.ones(order.size, dtype=bool)
        first[1:] = image[order][1:] != image[order][:-1]
        pred = np.full(votes["truth"].size, -1, dtype=np.int64)
        pred[image[order][first]] = synset[order][first]
    return {"cpu_s": cpu, "accuracy": float(np.mean(pred == votes["truth"])),
            "rows": table.num_rows, "iterations": result.iterations}


def run_crowdkit(votes: dict[str, np.ndarray]) -> dict:
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    df = pd.DataFrame({"task": votes["image"], "worker": votes["worker"], "label": votes["label"]})
    c0 = time.process_time()
    labels = DawidSkene().fit_predict(df)
    cpu = time.process_time() - c0
    pred = np.full(votes["truth"].size, -1, dtype=np.int64)
    pred[labels.index.to_numpy()] = labels.to_numpy()
    return {"cpu_s": cpu, "accuracy": float(np.mean(pred == votes["truth"])), "rows": len(df)}


def main() -> None:
    side, path = sys.argv[1], Path(sys.argv[2])
    votes = peer_inputs.load_votes(path)
    result = {"synshard": run_synshard, "crowdkit": run_crowdkit}[side](votes)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
