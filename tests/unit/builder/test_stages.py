"""stages.run_task without Ray: the scheduler's idle callback reaches a URL-list task's stream."""
from __future__ import annotations

from typing import Any, Callable

import pyarrow as pa

from synshard.builder import stages
from synshard.builder.staging import Staging
from synshard.config import build_config
from synshard.ingest.fetch_options import FetchStats
from synshard.ingest.urltasks import UrlTask


class _Stream:
    """A fetch stream with nothing in it (the task then journals an empty metadata table)."""

    stats = FetchStats()
    deferred = pa.table({"url": pa.array([], pa.string())})  # no slow URLs handed on

    def __iter__(self) -> Any:
        return iter(())


class _Fetcher:
    def __init__(self) -> None:
        self.idle: list[Callable[[], None] | None] = []
        self.defer: list[bool] = []

    def stream(self, urls: pa.Table, batch_size: int,
               idle: Callable[[], None] | None = None, defer: bool = False) -> _Stream:
        self.idle.append(idle)
        self.defer.append(defer)
        return _Stream()


def test_run_task_hands_the_idle_callback_to_the_fetch_stream(tmp_path, monkeypatch) -> None:
    fetcher = _Fetcher()
    monkeypatch.setattr(stages, "_fetcher", lambda opts: fetcher)
    cfg = build_config({"sources": ["x"], "out": str(tmp_path / "out")})
    staging = Staging.for_build(cfg.out, {}, "f" * 16, cfg.files_per_task)
    task = UrlTask("list.csv", 0, pa.table({"url": pa.array([], pa.string())}))

    def pause() -> None:
        pass

    assert list(stages.run_task(0, task, cfg, staging, idle=pause)) == []
    assert list(stages.run_task(1, task, cfg, staging)) == []
    assert fetcher.idle == [pause, None]  # none given (the driver's own reading): no pause
    assert fetcher.defer == [True, True]  # a read task hands its slow URLs to a retry task
    assert staging.finished_tasks() == {0, 1}


def _candidates(n: int) -> pa.Table:
    import io

    from PIL import Image

    from synshard.transforms.schema import CANDIDATE_SCHEMA

    blobs = []
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (96 + i, 72), (10 * i, 80, 160)).save(buf, "JPEG", quality=90)
        blobs.append(buf.getvalue())
    given = {"source": [f"/src/n0144076{i % 2}/{i}.jpg" for i in range(n)],
             "synset": [["n01440764", "n01443537"][i % 2] for i in range(n)], "data": blobs}
    return pa.table({f.name: given.get(f.name, pa.nulls(n, f.type)) for f in CANDIDATE_SCHEMA},
                    schema=CANDIDATE_SCHEMA)


def test_staged_files_are_arrow_ipc_and_read_back_with_parquet_ones(tmp_path) -> None:
    """Records staged by a read task come back whole by their locators; a staging folder of
    Parquet files (what builds wrote before) still reads."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from synshard.shards.staging import read_part
    from synshard.transforms.schema import TRANSFORMED_SCHEMA

    cfg = build_config({"sources": ["x"], "out": str(tmp_path / "out")})
    staging = Staging.for_build(cfg.out, {}, "f" * 16, cfg.files_per_task)
    meta = stages.transform_and_stage(_candidates(6), cfg, staging)
    paths = sorted(set(meta["staged_path"].to_pylist()))
    assert len(paths) == 2 and all(p.endswith(".arrow") for p in paths)
    keep = meta.select(["staged_path", "staged_row"]).append_column(
        "split", pa.array(["train"] * 6)).append_column(
        "label", pa.array(list(range(6)), pa.int64())).append_column(
        "confidence", pa.nulls(6, pa.float32()))
    records = staging.read_staged(tuple(paths), keep)
    assert sorted(records["key"].to_pylist()) == sorted(meta["key"].to_pylist())
    assert pc.all(pc.greater(pc.binary_length(records["image"]), 0)).as_py()
    with open(paths[0], "rb") as f:
        arrow = read_part(f.read())
    assert arrow.schema.names == TRANSFORMED_SCHEMA.names
    as_parquet = tmp_path / "old.parquet"
    pq.write_table(arrow, as_parquet, compression="none")
    assert read_part(as_parquet.read_bytes()).equals(arrow)
