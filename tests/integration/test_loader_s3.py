"""The loader reading a release from an S3-protocol server (moto, on 127.0.0.1) through s3fs
gives the same samples, in the same order, as from the local disk."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("moto")
s3fs = pytest.importorskip("s3fs")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "loader"))
import releasegen  # noqa: E402

from synshard.shards import ShardDataset  # noqa: E402

OPTS = dict(image_size=8, open_shards=8, buffer_size=40, seed=3)


@pytest.fixture(scope="module")
def s3(monkeypatch_module=None):
    from moto.server import ThreadedMotoServer

    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    yield {"client_kwargs": {"endpoint_url": endpoint}, "skip_instance_cache": True}
    server.stop()
    mp.undo()


@pytest.fixture(scope="module")
def release(s3, tmp_path_factory):
    local = tmp_path_factory.mktemp("rel")
    releasegen.build(local, 4, {"train": 25, "val": 6}, target_bytes=30_000)
    fs = s3fs.S3FileSystem(**s3)
    fs.mkdir("loader-bucket")
    fs.put(str(local) + "/", "loader-bucket/releases/r1/", recursive=True)
    return local, "s3://loader-bucket/releases/r1"


def samples(ds):
    return [(s["key"], s["label"], s["image"].tobytes(), s["bboxes"].tobytes()) for s in ds]


@pytest.mark.parametrize("split", ["train", "val"])
def test_s3_equals_disk(s3, release, split):
    local, uri = release
    remote = ShardDataset(uri, split, storage_options=s3, **OPTS)
    disk = ShardDataset(str(local), split, **OPTS)
    got = samples(remote)
    assert got == samples(disk) and len(got) == len(disk)
    assert remote.stats.unreadable == remote.stats.corrupt == 0


def test_s3_ranks_and_resume(s3, release):
    _, uri = release
    full = [k for k, *_ in samples(ShardDataset(uri, "train", storage_options=s3, rank=1, world_size=2, **OPTS))]
    ds = ShardDataset(uri, "train", storage_options=s3, rank=1, world_size=2, **OPTS)
    it = iter(ds)
    head = [next(it)["key"] for _ in range(7)]
    rest = ShardDataset(uri, "train", storage_options=s3, rank=1, world_size=2, **OPTS)
    rest.load_state_dict(ds.state_dict())
    assert head + [s["key"] for s in rest] == full
    assert np.isclose(len(full), 0.5 * ds.release.manifest.counts["by_split"]["train"], atol=1)


def test_s3_reads_each_span_once_per_process(s3, release, monkeypatch):
    """No read amplification: with 8 reader threads, each BLOCK_SIZE span of a shard is one
    ranged GET in the epoch (a per-thread read-ahead file made about one GET per sample)."""
    import logging

    from synshard.shards import loader_read

    monkeypatch.setattr(loader_read, "BLOCK_SIZE", 32768)  # several spans per small test shard
    gets: list[str] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.args and record.args[0] == "get_object":
                gets.append(str(record.args[1]))

    _, uri = release
    ds = ShardDataset(uri, "train", storage_options=s3, threads=8, **OPTS)
    logger, handler = logging.getLogger("s3fs"), Count()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        n = sum(1 for _ in ds)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert n == len(ds) and ds._reader is not None and ds._reader.cache is not None
    spans = 0  # the spans that hold some sample's bytes
    for shard in range(len(ds.shards)):
        starts, sizes = ds._reader.index(shard)[:2]
        spans += len({b for a, z in zip(starts, sizes) for b in range(a // 32768, (a + z - 1) // 32768 + 1)})
    assert ds._reader.cache.fetches == spans  # every span once: none twice, none skipped
    assert len(gets) == spans + len(ds.shards)  # plus one GET of each shard's index
    assert n > 2 * spans  # several samples a span: a GET per sample would be more
