"""bench/bench_decide.py's simulated metadata: the schema the driver gathers, the planted shares,
and `decide` settles every row of it (inputs = accepted + rejected + duplicates). No timing."""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))
import bench_decide as bd  # noqa: E402

from synshard.builder.decide.steps import decide  # noqa: E402
from synshard.config import BuildConfig  # noqa: E402
from synshard.shards.staging import decide_schema, derive_keys  # noqa: E402


def test_simulated_rows_have_the_planted_shares_and_settle():
    table, info = bd.simulate(20_000, 50, seed=1)
    assert table.schema == decide_schema() and table.num_rows == 20_000
    assert 100 < info["rejected"] < 300 and 100 < info["exact copies"] < 300
    assert 250 < info["near copies"] < 550
    assert pc.count_distinct(table["synset"].cast(pa.string())).as_py() <= 50
    keys = derive_keys(table["synset"], table["sha256"])
    assert keys.null_count == info["rejected"] == table["reason"].drop_null().length()
    assert len(set(keys.drop_null().to_pylist())) < 20_000 - info["rejected"]
    d = decide(table, BuildConfig(out="/tmp/unused", sources=("/data",)))
    acc = d.accounting
    assert acc["inputs"] == acc["accepted"] + acc["rejected"] + acc["duplicates"] == 20_000
    kinds = set(d.duplicates["kind"].to_pylist())
    assert {"exact", "near"} <= kinds
    assert "label conflict" in " ".join(d.rejects["reason"].to_pylist())
