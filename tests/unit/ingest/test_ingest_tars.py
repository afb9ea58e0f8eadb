"""Tar sources: layouts, hostile members, gz streams, tars of tars read by ranged reads."""

from __future__ import annotations

import io
import tarfile

import pyarrow as pa
import pytest
from synshard.ingest.sources import plan_sources
from synshard.ingest.tars import read_tar
from test_ingest_folders import by_source, read_all
from test_ingest_support import add_special, huge_header, jpeg, memory_corner, tar_bytes

SPLIT_TAR = {
    "train/n01440764/a.JPEG": jpeg(1),
    "train/n01440764/b": jpeg(2),
    "Val/N02102040/c.jpg": jpeg(3),
    "n01530575/d.jpg": jpeg(4),
    "loose.jpg": jpeg(5),
}


@pytest.fixture
def memfs():
    yield from memory_corner()


def hostile_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in [("../evil", b"e"), ("/abs", b"a"), ("n01440764/ok.jpg", jpeg(1))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        add_special(tf, "n01440764/dir", tarfile.DIRTYPE)  # directories are not inputs
        add_special(tf, "n01440764/sym", tarfile.SYMTYPE, "/etc/passwd")
        add_special(tf, "n01440764/hard", tarfile.LNKTYPE, "n01440764/ok.jpg")
        add_special(tf, "n01440764/chr", tarfile.CHRTYPE)
        add_special(tf, "n01440764/blk", tarfile.BLKTYPE)
        add_special(tf, "n01440764/fifo", tarfile.FIFOTYPE)
    body = buf.getvalue().rstrip(b"\0")  # drop the end-of-archive blocks, then append
    body += b"\0" * (-len(body) % 512)
    return body + huge_header("n01440764/huge.jpg", 1 << 40)


HOSTILE_REASONS = {
    "../evil": "unsafe path",
    "/abs": "unsafe path",
    "n01440764/ok.jpg": None,
    "n01440764/sym": "link member",
    "n01440764/hard": "link member",
    "n01440764/chr": "special file",
    "n01440764/blk": "special file",
    "n01440764/fifo": "special file",
    "n01440764/huge.jpg": f"too large: {1 << 40} bytes",
}


def test_tar_with_split_folders(tmp_path):
    path = tmp_path / "data.tar"
    path.write_bytes(tar_bytes(SPLIT_TAR))
    rows = by_source(read_all(plan_sources([str(path)])))
    assert len(rows) == len(SPLIT_TAR)
    got = {k.split("::", 1)[1]: (r["synset"], r["split"], r["reason"]) for k, r in rows.items()}
    assert got == {
        "train/n01440764/a.JPEG": ("n01440764", "train", None),
        "train/n01440764/b": ("n01440764", "train", None),
        "Val/N02102040/c.jpg": ("n02102040", "val", None),
        "n01530575/d.jpg": ("n01530575", None, None),
        "loose.jpg": (None, None, "no synset"),
    }
    assert rows[f"{path}::n01530575/d.jpg"]["data"] == jpeg(4)


def test_hostile_members_become_rows(tmp_path):
    path = tmp_path / "evil.tar"
    path.write_bytes(hostile_tar())
    rows = by_source(read_all(plan_sources([str(path)])))
    assert {k.split("::", 1)[1]: r["reason"] for k, r in rows.items()} == HOSTILE_REASONS
    assert all(r["data"] is None for r in rows.values() if r["reason"])
    assert not (tmp_path.parent / "evil").exists()


def test_hostile_members_in_gz_stream(tmp_path):
    """Streamed: the huge claimed size is not skipped by a loop over 1 TiB of nothing."""
    import gzip

    path = tmp_path / "evil.tgz"
    path.write_bytes(gzip.compress(hostile_tar()))
    plan = plan_sources([str(path)])
    assert len(plan.tasks) == 1 and plan.tasks[0].compression == "gz"
    rows = by_source(read_all(plan))
    assert {k.split("::", 1)[1]: r["reason"] for k, r in rows.items()} == HOSTILE_REASONS


def test_gz_tar_equals_plain_tar(tmp_path):
    (tmp_path / "a.tar").write_bytes(tar_bytes(SPLIT_TAR))
    (tmp_path / "a.tar.gz").write_bytes(tar_bytes(SPLIT_TAR, "w:gz"))
    plain = read_all(plan_sources([str(tmp_path / "a.tar")])).drop(["source"])
    gz = read_all(plan_sources([str(tmp_path / "a.tar.gz")])).drop(["source"])
    assert plain.equals(gz)


def test_not_a_tar_is_one_bad_row(tmp_path):
    for name, data in [("x.tar", b"not a tar at all" * 64), ("y.tgz", b"\x1f\x8b garbage")]:
        (tmp_path / name).write_bytes(data)
        table = read_all(plan_sources([str(tmp_path / name)]))
        assert table.num_rows == 1
        assert table.column("reason")[0].as_py().startswith("bad tar:")


def test_truncated_member_is_a_read_error(tmp_path):
    data = tar_bytes({"n01440764/a.jpg": jpeg(1), "n01440764/b.jpg": b"z" * 5000})
    (tmp_path / "t.tar").write_bytes(data[: 512 * 4])  # cut inside b.jpg's data
    rows = by_source(read_all(plan_sources([str(tmp_path / "t.tar")])))
    reasons = {k.split("::")[1]: r["reason"] for k, r in rows.items()}
    assert reasons["n01440764/a.jpg"] is None
    assert reasons["n01440764/b.jpg"].startswith("read error")


def test_flat_tar_with_labels(tmp_path):
    (tmp_path / "val.tar").write_bytes(
        tar_bytes({"ILSVRC_1.JPEG": jpeg(1), "ILSVRC_2.JPEG": jpeg(2)})
    )
    (tmp_path / "labels").write_text("file,synset\nILSVRC_1.JPEG,n01440764\n")
    plan = plan_sources([str(tmp_path / "val.tar")], labels=str(tmp_path / "labels"))
    rows = by_source(read_all(plan))
    assert rows[f"{tmp_path}/val.tar::ILSVRC_1.JPEG"]["synset"] == "n01440764"
    assert rows[f"{tmp_path}/val.tar::ILSVRC_2.JPEG"]["reason"] == "no synset"


def test_large_tar_is_cut_by_header_offsets(tmp_path):
    members = {f"n01440764/{i:03}.jpg": jpeg(i) for i in range(23)}
    (tmp_path / "big.tar").write_bytes(tar_bytes(members))
    plan = plan_sources([str(tmp_path / "big.tar")], files_per_task=5)
    assert [t.count for t in plan.tasks] == [5, 5, 5, 5, 3]
    assert len({t.start for t in plan.tasks}) == 5
    for task, following in zip(plan.tasks, plan.tasks[1:], strict=False):
        assert task.start + task.length == following.start  # contiguous runs of members
    table = read_all(plan)
    assert [s.split("::")[1] for s in table.column("source").to_pylist()] == list(members)


INNER = {
    "n01440764.tar": {"n01440764_1.JPEG": jpeg(1), "n01440764_2.JPEG": jpeg(2)},
    "n02102040.tar": {"n02102040_1.JPEG": jpeg(3)},
    "notawnid.tar": {"x.jpg": jpeg(4)},
}


def tar_of_tars(mode: str = "w") -> bytes:
    return tar_bytes({name: tar_bytes(members) for name, members in INNER.items()}, mode)


def test_tar_of_tars_one_task_per_inner_tar(tmp_path):
    path = tmp_path / "ILSVRC2012_img_train.tar"
    outer = tar_of_tars()
    path.write_bytes(outer)
    plan = plan_sources([str(path)])
    assert [t.inner for t in plan.tasks] == list(INNER)
    for task in plan.tasks:  # each task locates its inner tar's bytes exactly
        inner = outer[task.start : task.start + task.length]
        assert inner == tar_bytes(INNER[task.inner])
    rows = by_source(read_all(plan))
    assert len(rows) == 4
    row = rows[f"{path}::n01440764.tar::n01440764_2.JPEG"]
    assert (row["synset"], row["data"], row["reason"]) == ("n01440764", jpeg(2), None)
    assert rows[f"{path}::notawnid.tar::x.jpg"]["reason"] == "no synset"


class SpyFile(io.BytesIO):
    """Records every byte range read, to check a task stays inside its inner tar."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.ranges: list[tuple[int, int]] = []

    def read(self, size=-1):
        start = self.tell()
        data = super().read(size)
        self.ranges.append((start, start + len(data)))
        return data


def test_inner_task_reads_only_its_range(tmp_path):
    path = tmp_path / "train.tar"
    outer = tar_of_tars()
    path.write_bytes(outer)
    task = plan_sources([str(path)]).tasks[1]
    spy = SpyFile(outer)
    table = pa.concat_tables(read_tar(spy, task, None, 64 << 20))
    assert table.column("synset").to_pylist() == ["n02102040"]
    assert spy.ranges and all(
        task.start <= a and b <= task.start + task.length for a, b in spy.ranges
    )


def test_gz_tar_of_tars_is_streamed(tmp_path):
    (tmp_path / "train.tgz").write_bytes(tar_of_tars("w:gz"))
    (tmp_path / "train.tar").write_bytes(tar_of_tars())
    plan = plan_sources([str(tmp_path / "train.tgz")])
    assert len(plan.tasks) == 1
    gz = read_all(plan)
    plain = read_all(plan_sources([str(tmp_path / "train.tar")]))

    def strip(table):
        return sorted(s.split("::", 1)[1] for s in table.column("source").to_pylist())

    assert strip(gz) == strip(plain)
    assert sorted(gz.column("synset").to_pylist(), key=str) == sorted(
        plain.column("synset").to_pylist(), key=str
    )


def test_tar_split_folders_with_inner_tars(tmp_path):
    outer = tar_bytes(
        {"train/n01440764.tar": tar_bytes({"a.jpg": jpeg(1)}), "val/n01440764/b.jpg": jpeg(2)}
    )
    (tmp_path / "x.tar").write_bytes(outer)
    rows = read_all(plan_sources([str(tmp_path / "x.tar")])).to_pylist()
    assert {(r["source"].split("::", 1)[1], r["synset"], r["split"]) for r in rows} == {
        ("train/n01440764.tar::a.jpg", "n01440764", "train"),
        ("val/n01440764/b.jpg", "n01440764", "val"),
    }


def test_memory_tar_of_tars(memfs):
    fs, root = memfs
    fs.pipe(f"{root}/train.tar", tar_of_tars())
    plan = plan_sources([f"memory://{root}/train.tar"])
    assert read_all(plan).num_rows == 4
    assert all(t.inner for t in plan.tasks)


def folder_with_tars(root):
    """ImageNet's training tar unpacked once: a folder of per-synset tars, plus other files."""
    root.mkdir()
    (root / "train").mkdir()
    (root / "train" / "n01440764.tar").write_bytes(
        tar_bytes({"a.JPEG": jpeg(1), "b.JPEG": jpeg(2)})
    )
    (root / "train" / "n02102040").mkdir()
    (root / "train" / "n02102040" / "c.jpg").write_bytes(jpeg(3))
    (root / "val.tgz").write_bytes(tar_bytes({"n01530575/d.jpg": jpeg(4)}, "w:gz"))
    return root


def test_tars_inside_a_folder_stand_for_folders(tmp_path):
    root = folder_with_tars(tmp_path / "src")
    plan = plan_sources([str(root)])
    got = {(r["source"], r["synset"], r["split"], r["reason"]) for r in read_all(plan).to_pylist()}
    assert got == {
        (f"{root}/train/n01440764.tar::a.JPEG", "n01440764", "train", None),
        (f"{root}/train/n01440764.tar::b.JPEG", "n01440764", "train", None),
        (f"{root}/train/n02102040/c.jpg", "n02102040", "train", None),
        (f"{root}/val.tgz::n01530575/d.jpg", "n01530575", "val", None),
    }


def test_limit_inside_a_folder_counts_tar_members(tmp_path):
    root = folder_with_tars(tmp_path / "src")
    got = [r["source"] for r in read_all(plan_sources([str(root)], limit=2)).to_pylist()]
    assert sorted(got) == [
        f"{root}/train/n01440764.tar::a.JPEG",
        f"{root}/train/n01440764.tar::b.JPEG",
    ]
    got = [r["source"] for r in read_all(plan_sources([str(root)], limit=3)).to_pylist()]
    assert f"{root}/train/n02102040/c.jpg" in got and len(got) == 3


def test_garbage_inside_a_tar_is_a_bad_row_not_a_silent_drop(tmp_path):
    head = tar_bytes({"n01440764/a.jpg": jpeg(1)}).rstrip(b"\0")
    head += b"\0" * (-len(head) % 512)
    data = head + b"garbage!" * 64 + tar_bytes({"n01440764/c.jpg": jpeg(3)})
    (tmp_path / "g.tar").write_bytes(data)
    lost = f"bad tar: invalid header, bytes {len(head)}-{len(head) + 512} unreadable"
    for limit, tail in ((None, [("n01440764/c.jpg", None)]), (2, [])):
        rows = read_all(plan_sources([str(tmp_path / "g.tar")], limit=limit)).to_pylist()
        assert [(r["source"].split("::")[-1], r["reason"]) for r in rows] == [
            ("n01440764/a.jpg", None),
            (str(tmp_path / "g.tar"), lost + " (read on after them)"),
        ] + tail


@pytest.mark.parametrize("name", ["c.tar", "c.tar.gz", "outer.tar"])
def test_a_bad_header_checksum_loses_one_member_not_the_rest(tmp_path, name):
    import gzip

    members = {f"n01440764/{i:02d}.jpg": jpeg(i) for i in range(12)}
    data = bytearray(tar_bytes(members))
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tf:
        fourth = tf.getmembers()[3]
        fifth = tf.getmembers()[4]
    data[fourth.offset + 148:fourth.offset + 156] = b"0000000\0"  # a wrong header checksum
    if name == "c.tar.gz":  # a stream: read on after the lost stretch
        data = bytearray(gzip.compress(bytes(data)))
    if name == "outer.tar":  # an inner tar read in place by a ranged read
        data = bytearray(tar_bytes({"n01440764.tar": bytes(data)}))
    (tmp_path / name).write_bytes(bytes(data))
    for files_per_task in (2, 100):
        plan = plan_sources([str(tmp_path / name)], files_per_task=files_per_task)
        rows = read_all(plan).to_pylist()
        good = [r["source"].split("::")[-1] for r in rows if r["reason"] is None]
        assert good == [name for i, name in enumerate(members) if i != 3]
        assert [r["reason"] for r in rows if r["reason"]] == [
            f"bad tar: invalid header, bytes {fourth.offset}-{fifth.offset} unreadable"
            " (read on after them)"]


def test_tar_changed_since_planning_reports_missing_members(tmp_path):
    path = tmp_path / "c.tar"
    path.write_bytes(tar_bytes({"n01440764/a.jpg": jpeg(1), "n01440764/b.jpg": jpeg(2)}))
    plan = plan_sources([str(path)])
    path.write_bytes(tar_bytes({"n01440764/a.jpg": jpeg(1)}))
    reasons = [r["reason"] for r in read_all(plan).to_pylist()]
    assert reasons == [None, "bad tar: unreadable member header"]
