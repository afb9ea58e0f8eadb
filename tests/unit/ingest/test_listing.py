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
import pytest


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


def test_fingerprint_where_path_order_and_line_order_differ(tmp_path):
    """A folder's lines are hashed in its listing's order, unless a path holds a character that
    sorts before the tab ("a" < "a\\t0" as paths, but "a\\t5..." > "a\\t0\\t1..." as lines): the
    same fingerprint as the sorted lines either way, with a limit too."""
    for tree in ({"n01440764/a": b"x" * 5, "n01440764/a\t0": b"y", "n01440764/b": b"z"},
                 {"n01440764/a": b"x", "n01440764/a\x01": b"yy", "n01443537/c.jpg": b"c"},
                 {f"n0144{i % 3}764/{i:03}.jpg": b"x" * i for i in range(40)}):
        root = write_tree(tmp_path / f"src{len(tree)}", tree)
        fs = fsspec.filesystem("file")
        found = sorted(fs.find(str(root), detail=True).items())
        lines = [f"{path}\t{info['size']}\t{stamp(info)}" for path, info in found]
        assert plan_sources([str(root)]).fingerprint == hashlib.sha256(
            "\n".join(sorted(lines)).encode()).hexdigest()
        kept = sorted(found)[:2]  # a limit notes the first files in path order
        limited = sorted(f"{p}\t{i['size']}\t{stamp(i)}" for p, i in kept) + ["limit=2"]
        assert plan_sources([str(root)], limit=2).fingerprint == hashlib.sha256(
            "\n".join(sorted(limited)).encode()).hexdigest()


def test_two_folders_and_loose_lines_merge_in_order(tmp_path):
    """Several sources' lines (folders, a tar, a lone file) interleave in the sorted digest."""
    a = write_tree(tmp_path / "a", {f"n01440764/{i:02}.jpg": b"1" * i for i in range(9)})
    b = write_tree(tmp_path / "a-b", {"n01443537/x.jpg": b"2", "n01443537/y.tar":
                                      tar_bytes({"m.jpg": b"abc"})})
    lone = tmp_path / "a.jpg"
    lone.write_bytes(b"abc")
    fs = fsspec.filesystem("file")
    lines = [f"{path}\t{info['size']}\t{stamp(info)}" for root in (a, b)
             for path, info in fs.find(str(root), detail=True).items()]
    lines.append(f"{lone}\t3\t{stamp(fs.info(str(lone)))}")
    plan = plan_sources([str(b), str(lone), str(a)], files_per_task=2)
    assert plan.fingerprint == hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def test_a_local_walk_finds_what_fsspec_finds(tmp_path):
    """folders._walk_local (os.scandir) gives each file the fields fsspec's walk gives it: links
    (inside, outside, broken, to a folder), a FIFO, nested and empty folders, odd names."""
    from synshard.ingest.folders import _walk_local

    root = write_tree(tmp_path / "src", {"n01440764/a.jpg": b"ab", "n01440764/deep/er/b.jpg": b"b",
                                         "c.jpg": b"ccc", "bad-\udcff-byte.jpg": b"x"})
    (root / "empty").mkdir()
    os.symlink(root / "c.jpg", root / "n01440764" / "in.jpg")
    os.symlink("/etc/hostname", root / "out.jpg")
    os.symlink(root / "gone.jpg", root / "broken.jpg")
    os.symlink(root / "n01440764", root / "folder-link")
    os.mkfifo(root / "n01440764" / "pipe.jpg")
    fields = ("name", "size", "type", "islink", "mtime")
    fs = fsspec.filesystem("file")
    walked = fs.walk(str(root), detail=True)
    expect = sorted(tuple(info[f] for f in fields) for _, _, files in walked
                    for info in files.values())
    got = sorted(tuple(info[f] for f in fields) for files in _walk_local(str(root))
                 for info in files)
    assert got == expect and len(got) == 9
    os.unlink(root / "bad-\udcff-byte.jpg")  # (a listing refuses a name that is not UTF-8)
    listed = list_folder(fs, str(root))
    assert dict(zip(listed["rel"].to_pylist(), listed["reason"].to_pylist())) == {
        "broken.jpg": "link to a folder or to nothing",
        "c.jpg": None, "folder-link": "link to a folder or to nothing",
        "n01440764/a.jpg": None, "n01440764/deep/er/b.jpg": None, "n01440764/in.jpg": None,
        "n01440764/pipe.jpg": "special file", "out.jpg": "link outside the source root"}


def test_a_folder_that_cannot_be_listed_stops_planning_with_one_line(tmp_path, monkeypatch):
    """An unlistable folder is named (fsspec's walk passed over it, and all its inputs, silently);
    root ignores permissions, so the refusal is made by a scandir that fails as it would."""
    from synshard.ingest import folders
    from synshard.transforms.errors import SynshardError

    root = write_tree(tmp_path / "src", {"n01440764/a.jpg": b"ab", "n01443537/b.jpg": b"b"})
    real = os.scandir

    def scandir(path):
        if str(path).endswith("n01443537"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(folders.os, "scandir", scandir)
    with pytest.raises(SynshardError) as refused:
        list_folder(fsspec.filesystem("file"), str(root))
    assert str(refused.value) == (f"cannot list {root}/n01443537 in a source folder: Permission denied; "
                       "make it readable (folders need r and x) or move it out of the source")
