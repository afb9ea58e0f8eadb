"""Folder sources end to end through plan_sources/read_task: rows, synsets, splits, reasons."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest
from synshard.ingest.sources import ReadTask, plan_sources, read_task
from synshard.transforms.errors import SynshardError
from synshard.transforms.schema import CANDIDATE_SCHEMA
from test_ingest_support import jpeg, memory_corner, write_tree

TREE = {
    "n01440764/a.JPEG": jpeg(1),
    "n01440764/b": jpeg(2),  # no extension
    "N02102040/sub/c.png": jpeg(3),  # nearest wnid ancestor, upper case
    "train/n01530575/d.jpg": jpeg(4),
    "VAL/n01530575/e.jpg": jpeg(5),
    "stray.jpg": jpeg(6),  # under no synset
    "train/f.jpg": jpeg(7),  # split but no synset
    "n01440764/empty.jpg": b"",
}


@pytest.fixture
def memfs():
    yield from memory_corner()


def read_all(plan, **kwargs) -> pa.Table:
    tables = [t for task in plan.tasks for t in read_task(task, **kwargs)]
    for table in tables:
        assert table.schema == CANDIDATE_SCHEMA
        assert table.num_rows <= 256
    return pa.concat_tables(tables) if tables else CANDIDATE_SCHEMA.empty_table()


def by_source(table: pa.Table) -> dict[str, dict]:
    return {row["source"]: row for row in table.to_pylist()}


def test_folder_rows(tmp_path):
    root = write_tree(tmp_path / "src", TREE)
    rows = by_source(read_all(plan_sources([str(root)])))
    assert len(rows) == len(TREE)
    expect = {
        "n01440764/a.JPEG": ("n01440764", None, None),
        "n01440764/b": ("n01440764", None, None),
        "N02102040/sub/c.png": ("n02102040", None, None),
        "train/n01530575/d.jpg": ("n01530575", "train", None),
        "VAL/n01530575/e.jpg": ("n01530575", "val", None),
        "stray.jpg": (None, None, "no synset"),
        "train/f.jpg": (None, "train", "no synset"),
        "n01440764/empty.jpg": ("n01440764", None, None),
    }
    for rel, (synset, split, reason) in expect.items():
        row = rows[f"{root}/{rel}"]
        assert (row["synset"], row["split"], row["reason"]) == (synset, split, reason), rel
        assert row["data"] == TREE[rel]


def test_tasks_are_small_picklable_and_chunked(tmp_path):
    root = write_tree(tmp_path, {f"n01440764/{i:03}.jpg": jpeg(i) for i in range(10)})
    plan = plan_sources([str(root)], files_per_task=4)
    assert [len(t.files) for t in plan.tasks] == [4, 4, 2]
    assert plan.tasks == sorted(plan.tasks, key=lambda t: t.order)
    for task in plan.tasks:
        assert isinstance(task, ReadTask)
        assert pickle.loads(pickle.dumps(task)) == task
        assert len(pickle.dumps(task)) < 2000  # no bytes travel in a task
    assert read_all(plan).num_rows == 10


def test_file_uri_and_trailing_slash(tmp_path):
    root = write_tree(tmp_path, {"n01440764/a.jpg": jpeg(1)})
    table = read_all(plan_sources([f"file://{root}/"]))
    assert table.column("source").to_pylist() == [f"file://{root}/n01440764/a.jpg"]


def test_memory_filesystem(memfs):
    fs, root = memfs
    fs.pipe({f"{root}/n01440764/a.jpg": jpeg(1), f"{root}/x/y.jpg": jpeg(2)})
    rows = by_source(read_all(plan_sources([f"memory://{root}"])))
    assert rows[f"memory://{root}/n01440764/a.jpg"]["synset"] == "n01440764"
    assert rows[f"memory://{root}/x/y.jpg"]["reason"] == "no synset"


def test_labels_for_flat_folder(tmp_path):
    root = write_tree(
        tmp_path / "val",
        {
            "ILSVRC_1.JPEG": jpeg(1),
            "ILSVRC_2.JPEG": jpeg(2),
            "n02102040/c.jpg": jpeg(3),
            "other.jpg": jpeg(4),
        },
    )
    labels = tmp_path / "val" / "labels"  # inside the source folder: not an input itself
    labels.write_text("ILSVRC_1.JPEG,n01440764\nILSVRC_2,n01530575\nc.jpg,n01440764\n")
    rows = by_source(read_all(plan_sources([str(root)], labels=str(labels))))
    assert len(rows) == 4
    assert rows[f"{root}/ILSVRC_1.JPEG"]["synset"] == "n01440764"
    assert rows[f"{root}/ILSVRC_2.JPEG"]["synset"] == "n01530575"  # matched without extension
    assert rows[f"{root}/n02102040/c.jpg"]["synset"] == "n02102040"  # the folder wins
    assert rows[f"{root}/other.jpg"]["reason"] == "no synset"


def test_too_large_file_is_a_row_not_read(tmp_path):
    root = write_tree(tmp_path, {"n01440764/big.jpg": b"x" * 1000, "n01440764/ok.jpg": b"y"})
    rows = by_source(read_all(plan_sources([str(root)]), max_member_bytes=999))
    assert rows[f"{root}/n01440764/big.jpg"]["reason"] == "too large: 1000 bytes"
    assert rows[f"{root}/n01440764/big.jpg"]["data"] is None
    assert rows[f"{root}/n01440764/ok.jpg"]["data"] == b"y"


def test_file_deleted_after_planning_is_a_row(tmp_path):
    root = write_tree(tmp_path, {"n01440764/a.jpg": jpeg(1), "n01440764/b.jpg": jpeg(2)})
    plan = plan_sources([str(root)])
    (root / "n01440764" / "a.jpg").unlink()
    rows = by_source(read_all(plan))
    assert rows[f"{root}/n01440764/a.jpg"]["reason"].startswith("read error: FileNotFoundError")
    assert rows[f"{root}/n01440764/b.jpg"]["reason"] is None


def test_glob_characters_in_names(tmp_path):
    root = write_tree(tmp_path, {"n01440764/a[1]*.jpg": jpeg(1), "n01440764/a1x.jpg": jpeg(2)})
    rows = by_source(read_all(plan_sources([str(root)])))
    assert rows[f"{root}/n01440764/a[1]*.jpg"]["data"] == jpeg(1)


def test_single_file_source(tmp_path):
    write_tree(tmp_path, {"a.jpg": jpeg(1)})
    labels = tmp_path / "labels.csv"
    labels.write_text("a.jpg,n01440764\n")
    table = read_all(plan_sources([str(tmp_path / "a.jpg")], labels=str(labels)))
    assert table.to_pylist()[0]["source"] == str(tmp_path / "a.jpg")
    assert table.to_pylist()[0]["synset"] == "n01440764"


def test_missing_source_raises(tmp_path):
    with pytest.raises(SynshardError, match="source not found") as info:
        plan_sources([str(tmp_path / "nope")])
    assert "\n" not in str(info.value)


def test_missing_labels_raises(tmp_path):
    with pytest.raises(SynshardError, match="labels file not found"):
        plan_sources([str(tmp_path)], labels=str(tmp_path / "nope"))


def test_empty_folder_plans_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    assert plan_sources([str(tmp_path / "empty")]).tasks == []


def test_batches_bounded_by_rows(tmp_path):
    root = write_tree(tmp_path, {f"n01440764/{i:04}.jpg": b"j" for i in range(600)})
    (task,) = plan_sources([str(root)], files_per_task=1000).tasks
    assert [t.num_rows for t in read_task(task)] == [256, 256, 88]


def test_batches_bounded_by_bytes():
    from synshard.ingest.candidates import Batcher

    batcher = Batcher(max_rows=100, max_bytes=10)
    out = [batcher.add(f"s{i}", "n01440764", None, b"x" * 4) for i in range(5)]
    assert [t.num_rows if t is not None else None for t in out] == [None, None, 3, None, None]
    assert batcher.flush().num_rows == 2 and batcher.flush() is None


def test_links_inside_the_root_are_followed_others_rejected(tmp_path):
    import os

    root = write_tree(tmp_path / "src", {"n01440764/real.jpg": jpeg(1), "store/x.jpg": jpeg(2)})
    outside = write_tree(tmp_path / "elsewhere", {"secret.jpg": jpeg(3)})
    links = root / "n01440764"
    for i in range(3):
        os.symlink(root / "store/x.jpg", links / f"in{i}.jpg")
    os.symlink("../store/x.jpg", links / "relative.jpg")
    os.symlink(outside / "secret.jpg", links / "out.jpg")
    os.symlink(root / "store", links / "folder.jpg")
    os.symlink(root / "gone.jpg", links / "dangling.jpg")
    os.symlink(outside / "secret.jpg", root / "n01440764.tar")  # not opened as a tar either
    os.mkfifo(links / "fifo.jpg")  # never opened: reading it would block
    rows = by_source(read_all(plan_sources([str(root)])))
    reasons = {src.removeprefix(f"{root}/"): row["reason"] for src, row in rows.items()}
    assert reasons == {
        "n01440764/real.jpg": None, "store/x.jpg": "no synset",
        "n01440764/in0.jpg": None, "n01440764/in1.jpg": None, "n01440764/in2.jpg": None,
        "n01440764/relative.jpg": None,
        "n01440764/out.jpg": "link outside the source root",
        "n01440764/folder.jpg": "link to a folder or to nothing",
        "n01440764/dangling.jpg": "link to a folder or to nothing",
        "n01440764.tar": "link outside the source root",
        "n01440764/fifo.jpg": "special file",
    }
    assert rows[f"{links}/in0.jpg"]["data"] == jpeg(2)
    refused = [row for row in rows.values() if row["reason"] not in (None, "no synset")]
    assert len(refused) == 5 and all(row["data"] is None for row in refused)
