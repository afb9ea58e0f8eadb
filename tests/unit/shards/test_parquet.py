"""Parquet shards: exact round trips, Hive partitioning, determinism, byte-sized cutting."""

from __future__ import annotations

import hashlib
import json
import uuid

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shardgen import make_records, record_groups

from synshard.shards.parquet import (
    FILE_SCHEMA,
    parquet_bytes,
    file_table,
    read_parquet_shard,
    records_from_parquet_table,
    write_parquet_shards,
)
from synshard.transforms.schema import RECORD_SCHEMA

MEM = fsspec.filesystem("memory")


def _root() -> str:
    return f"/pq-{uuid.uuid4().hex}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=record_groups(), target=st.integers(1, 8000))
def test_round_trip_is_exact(records: pa.Table, target: int) -> None:
    root = _root()
    entries = write_parquet_shards(MEM, root, records, target)
    back = pa.concat_tables([read_parquet_shard(MEM, f"{root}/{e.path}") for e in entries])
    assert back.equals(records)
    assert back.schema.equals(RECORD_SCHEMA)
    assert [e.samples for e in entries] and sum(e.samples for e in entries) == records.num_rows


def test_names_carry_index_and_content_hash() -> None:
    records = make_records("n01440764", "val", [5000] * 6)
    root = _root()
    entries = write_parquet_shards(MEM, root, records, 12000)
    assert len(entries) == 3
    for index, entry in enumerate(entries):
        data = MEM.cat_file(f"{root}/{entry.path}")
        digest = hashlib.sha256(data).hexdigest()
        assert (entry.sha256, entry.bytes) == (digest, len(data))
        assert (
            entry.path
            == f"parquet/split=val/synset=n01440764/part-{index:06d}-{digest[:8]}.parquet"
        )


def test_shards_are_cut_by_bytes() -> None:
    sizes = [3000, 500, 7000, 40000, 100, 100, 2500, 9000] * 3
    records = make_records("n01440764", "train", sizes)
    target = 20000
    entries = write_parquet_shards(MEM, _root(), records, target)
    images = records["image"].to_pylist()
    start = 0
    for entry in entries:
        chunk = sum(len(b) for b in images[start : start + entry.samples])
        assert chunk <= target or entry.samples == 1
        if start + entry.samples < len(images):
            assert chunk + len(images[start + entry.samples]) > target - 2000  # nearly full
        assert entry.bytes < chunk + 8000  # planned sizes track the file: images are stored raw
        start += entry.samples
    assert start == records.num_rows and len(entries) > 3


def test_writing_twice_gives_identical_names_and_bytes() -> None:
    records = make_records("n02084071", "train", [700, 1200, 90, 4000, 33])
    a, b = _root(), _root()
    ea = write_parquet_shards(MEM, a, records, 4096)
    eb = write_parquet_shards(MEM, b, records, 4096)
    assert ea == eb and len(ea) > 1
    for e in ea:
        assert MEM.cat_file(f"{a}/{e.path}") == MEM.cat_file(f"{b}/{e.path}")


def test_hive_dataset_reads_back_exactly_the_records(tmp_path) -> None:
    fs = fsspec.filesystem("file")
    groups = [
        make_records("n01440764", "train", [300, 400, 500, 600]),
        make_records("n01440764", "val", [100, 200]),
        make_records("n02084071", "train", [50, 60, 70]),
    ]
    for records in groups:
        write_parquet_shards(fs, str(tmp_path), records, 700)
    table = ds.dataset(str(tmp_path / "parquet"), format="parquet", partitioning="hive").to_table()
    assert set(table.column_names) == set(RECORD_SCHEMA.names)
    got = records_from_parquet_table(table).sort_by("key")
    want = pa.concat_tables(groups).sort_by("key")
    assert got.equals(want)


def test_image_column_is_a_huggingface_image(tmp_path) -> None:
    fs = fsspec.filesystem("file")
    records = make_records("n01440764", "train", [10, 20, 30])
    (entry,) = write_parquet_shards(fs, str(tmp_path), records, 1 << 20)
    table = pq.read_table(tmp_path / entry.path)
    assert table.schema.field("image").type == pa.struct(
        [("bytes", pa.binary()), ("path", pa.string())]
    )
    assert "split" not in table.column_names and "synset" not in table.column_names
    paths = [d["path"] for d in table["image"].to_pylist()]
    exts = [{"jpeg": "jpg"}.get(f, f) for f in records["format"].to_pylist()]
    assert paths == [f"{k}.{e}" for k, e in zip(records["key"].to_pylist(), exts)]
    features = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
    assert features["image"] == {"_type": "Image"}
    assert set(features) == set(FILE_SCHEMA.names)


def test_row_groups_are_cut_by_bytes() -> None:
    records = make_records("n01440764", "train", [1000] * 10)
    data = parquet_bytes(file_table(records), [1000] * 10, row_group_bytes=3000)
    meta = pq.ParquetFile(pa.BufferReader(data)).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [3, 3, 3, 1]


def test_nullable_input_schema_is_accepted() -> None:
    records = make_records("n01440764", "train", [10, 20])
    loose = records.cast(pa.schema([f.with_nullable(True) for f in RECORD_SCHEMA]))
    root = _root()
    (entry,) = write_parquet_shards(MEM, root, loose, 1 << 20)
    assert read_parquet_shard(MEM, f"{root}/{entry.path}").equals(records)


def test_image_field_matches_huggingface_image_feature() -> None:
    # `datasets` uses the schema's feature metadata only where the arrow field is equal to the
    # feature's own, nullability included: Image is a nullable struct<bytes, path>.
    assert FILE_SCHEMA.field("image") == pa.field(
        "image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    )


def test_huggingface_datasets_decodes_images(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    pil = pytest.importorskip("PIL.Image")
    import io

    buf = io.BytesIO()
    pil.new("RGB", (5, 3), (200, 10, 10)).save(buf, format="PNG")
    records = make_records("n01440764", "train", [1, 1])
    records = records.set_column(4, "image", pa.array([buf.getvalue()] * 2, pa.binary())).cast(
        RECORD_SCHEMA
    )
    (entry,) = write_parquet_shards(fsspec.filesystem("file"), str(tmp_path), records, 1 << 20)
    ds_ = datasets.load_dataset("parquet", data_files=[str(tmp_path / entry.path)], split="train")
    assert isinstance(ds_.features["image"], datasets.Image)
    assert ds_[0]["image"].size == (5, 3)


def test_parquet_dataset_reads_committed_files_only() -> None:
    from synshard.shards.parquet import parquet_dataset

    root = _root()
    a = make_records("n01440764", "1", [30, 40])  # a numeric-looking split stays a string
    b = make_records("n02084071", "1", [50])
    entries = write_parquet_shards(MEM, root, a, 1 << 20) + write_parquet_shards(
        MEM, root, b, 1 << 20
    )
    MEM.pipe_file(
        f"{root}/parquet/split=1/synset=n09999999/part-000000-00000000.parquet", b"debris"
    )
    got = records_from_parquet_table(
        parquet_dataset(MEM, root, [e.path for e in entries]).to_table()
    )
    assert got.sort_by("key").equals(pa.concat_tables([a, b]).sort_by("key"))
    every = parquet_dataset(MEM, root)
    assert len(every.files) == 3  # a folder listing sees the debris too


def test_a_local_shard_has_the_bytes_of_the_in_memory_one(tmp_path) -> None:
    import os

    records = make_records("n01440764", "train", [3000 + 517 * i for i in range(40)])
    local = fsspec.filesystem("file")
    on_disk = write_parquet_shards(local, str(tmp_path), records, 50_000)
    in_memory = write_parquet_shards(MEM, f"/pq-{uuid.uuid4().hex}", records, 50_000)
    assert len(on_disk) > 1
    assert [(e.path, e.sha256, e.bytes, e.index_sha256) for e in on_disk] == \
        [(e.path, e.sha256, e.bytes, e.index_sha256) for e in in_memory]
    for entry in on_disk:
        data = (tmp_path / entry.path).read_bytes()
        assert len(data) == entry.bytes and hashlib.sha256(data).hexdigest() == entry.sha256
    folder = (tmp_path / on_disk[0].path).parent
    assert sorted(os.listdir(folder)) == sorted(e.path.rsplit("/", 1)[1] for e in on_disk)


def test_a_failed_local_write_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    import os

    from synshard.shards import parquet

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(parquet, "_write_parquet", fail)
    records = make_records("n01440764", "train", [100, 200])
    with pytest.raises(OSError, match="No space"):
        write_parquet_shards(fsspec.filesystem("file"), str(tmp_path), records, 50_000)
    assert [f for _, _, files in os.walk(tmp_path) for f in files] == []
