"""A folder's listing in Arrow columns and packed files tasks: the same plan as per-file objects."""

from __future__ import annotations

import hashlib
import os
import pickle

from synshard.ingest.folders import LISTING_SCHEMA, list_folder, stamp
from synshard.ingest.sources import listing_digest, plan_sources
from synshard.ingest.tasks import Files, ReadTask
from test_ingest_support import tar_bytes, write_tree
import fsspec
import pyarrow as pa


def test_files_pack_and_unpack():
    names = ("n01440764/a.jpg", "é/ß.JPEG", "bad-\udcff-byte", "")
    files = Files.of(names, [3, 0, 1 << 40, 7])
    assert files.unpack() == (names, (3, 0, 1 << 40, 7))
    task = ReadTask("/src", 0, "files", files)
    assert (task.files, task.sizes) == (names, (3, 0, 1 << 40, 7))
    assert pickle.loads(pickle.dumps(task)) == task
    assert Files().unpack() == ((), ())


def test_packed_tasks_stay_small():
    names = [f"n01440764/n01440764_{i:08d}.JPEG" for i in range(256)]
    files = Files.of(names, [2500 + i for i in range(256)])
    assert len(files.packed) < 256 * 16  # ~34 B of path and 12 of numbers a file, unpacked


def test_listing_is_sorted_columns(tmp_path):
    root = write_tree(tmp_path, {"b/x.jpg": b"12", "a-b/y.jpg": b"1", "a/z.jpg": b"123"})
    os.symlink("/etc/hostname", root / "a" / "out.jpg")
    listed = list_folder(fsspec.filesystem("file"), str(root))
    assert listed.schema == LISTING_SCHEMA
    assert listed["rel"].to_pylist() == ["a-b/y.jpg", "a/out.jpg", "a/z.jpg", "b/x.jpg"]
    assert listed["size"].to_pylist()[2:] == [3, 2]
    assert listed["reason"].to_pylist() == [None, "link outside the source root", None, None]


def test_digest_is_the_sorted_joined_lines():
    lines = [f"/s/{name}\t{i}\t1.5" for i, name in enumerate(["b", "a", "é", "z", "a-b", "a/b"])]
    expect = hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
    assert listing_digest(lines) == expect
    assert listing_digest([*lines[:2], pa.array(lines[2:])]) == expect
    assert listing_digest([]) == hashlib.sha256(b"").hexdigest()


def test_plan_matches_a_per_file_listing(tmp_path):
    """Tasks and fingerprint as a plain per-file walk makes them (the previous implementation)."""
    tree = {f"n01440764/{i:03}.jpg": b"x" * i for i in range(11)}
    tree |= {"train/n01443537.tar": tar_bytes({f"m{i}.jpg": b"abc" for i in range(3)}),
             "train/n01530575/ü.jpg": b"u", "stray.jpg": b"s"}
    root = write_tree(tmp_path / "src", tree)
    for limit in (None, 2, 11, 12, 15):
        plan = plan_sources([str(root)], files_per_task=4, limit=limit)
        fs = fsspec.filesystem("file")
        found = sorted(fs.find(str(root), detail=True).items())
        lines = [f"{path}\t{info['size']}\t{stamp(info)}" for path, info in found]
        files = [t for t in plan.tasks if t.kind == "files"]
        planned = [f for t in files for f in t.files]
        if limit is None:
            assert len(lines) == 14 and len(planned) == 13  # the tar is read as a tar
            assert plan.fingerprint == hashlib.sha256("\n".join(lines).encode()).hexdigest()
        assert planned == sorted(planned)
        assert [t.start for t in files] == sorted(t.start for t in files)
        read = sum(len(t.files) for t in files) + sum(t.count or 0 for t in plan.tasks)
        assert read == (14 + 2 if limit is None else min(limit, 16))
