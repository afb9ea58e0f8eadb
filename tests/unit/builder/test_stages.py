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


def _keep(meta: pa.Table) -> pa.Table:
    n = meta.num_rows
    return meta.select(["staged_path", "staged_row"]).append_column(
        "split", pa.array(["train"] * n)).append_column(
        "label", pa.array(list(range(n)), pa.int32())).append_column(
        "confidence", pa.nulls(n, pa.float32()))


def test_read_staged_gives_each_record_its_own_decisions_in_key_order(tmp_path) -> None:
    cfg = build_config({"sources": ["x"], "out": str(tmp_path / "out")})
    staging = Staging.for_build(cfg.out, {}, "f" * 16, cfg.files_per_task)
    meta = pa.concat_tables([stages.transform_and_stage(_candidates(6), cfg, staging)
                             for _ in range(2)]).slice(0, 9)  # the same images, staged twice
    keep = _keep(meta).take(pa.array([8, 0, 5, 3, 1]))  # some rows of three files, unordered
    records = staging.read_staged(tuple(sorted(set(meta["staged_path"].to_pylist()))), keep)
    decided = {(k, s): label for k, s, label in zip(
        meta.take(pa.array([8, 0, 5, 3, 1]))["key"].to_pylist(),
        meta.take(pa.array([8, 0, 5, 3, 1]))["source"].to_pylist(), keep["label"].to_pylist())}
    got = list(zip(records["key"].to_pylist(), records["source"].to_pylist()))
    assert got == sorted(decided)  # by key, then source
    assert records["label"].to_pylist() == [decided[g] for g in got]


def test_an_assembled_synset_frees_its_staged_files_and_a_retry_returns_its_entries(tmp_path):
    """Once a synset's shards are journalled its staged files go (the assembly task frees them,
    not the driver's final clear); a retried task that runs the job again gets the journal's
    entries instead of failing on the missing files."""
    from pathlib import Path

    from synshard.builder.assembly import SynsetJob, run_job

    cfg = build_config({"sources": ["x"], "out": str(tmp_path / "out")})
    staging = Staging.for_build(cfg.out, {}, "f" * 16, cfg.files_per_task)
    meta = stages.transform_and_stage(_candidates(6), cfg, staging)
    mine = meta.filter(pa.compute.equal(meta["synset"], "n01440764"))
    paths = tuple(sorted(set(mine["staged_path"].to_pylist())))
    job = SynsetJob("n01440764", paths, _keep(mine))
    args = (staging, {}, None, ("webdataset", "parquet"), 1 << 20)
    entries = run_job(job, *args)
    assert {e.format for e in entries} == {"webdataset", "parquet"}
    assert not any(Path(p).exists() for p in paths)
    assert run_job(job, *args) == entries
    assert staging.journalled_synsets() == {"n01440764": entries}
