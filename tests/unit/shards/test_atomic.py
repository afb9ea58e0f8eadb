"""shards.atomic: a rewrite of a file never shows a reader a truncated or half-written file."""
from __future__ import annotations

import os

import fsspec
import pytest

from synshard.shards.atomic import is_temporary, put_file


def test_a_reader_of_the_old_file_keeps_it_whole_while_it_is_rewritten(tmp_path):
    fs = fsspec.filesystem("file")
    path = tmp_path / "webdataset" / "train" / "n01440764-000000-deadbeef.tar"
    put_file(fs, str(path), b"a" * 4096)
    with open(path, "rb") as reader:
        head = reader.read(10)
        put_file(fs, str(path), b"b" * 4096)  # a rebuild writing the same name again
        assert head + reader.read() == b"a" * 4096  # a plain write had truncated it: b""
    assert path.read_bytes() == b"b" * 4096
    assert os.listdir(path.parent) == [path.name]  # no temporary file left beside it


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    fs = fsspec.filesystem("file")
    path = tmp_path / "rejects-0badc0de.parquet"
    put_file(fs, str(path), b"old")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        put_file(fs, str(path), b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == [path.name]


def test_temporary_names_are_recognised():
    assert is_temporary(".part-k2j4.tmp") and is_temporary(".manifest-1234.tmp")
    assert not is_temporary("part-000000-cafef00d.parquet") and not is_temporary("x.tmp")


def test_files_get_the_mode_a_plain_write_gives(tmp_path):
    from synshard.shards.atomic import FILE_MODE

    fs = fsspec.filesystem("file")
    put_file(fs, str(tmp_path / "a.tar"), b"x")
    with open(tmp_path / "plain", "wb") as f:
        f.write(b"x")
    mode = os.stat(tmp_path / "a.tar").st_mode & 0o777
    assert mode == FILE_MODE == os.stat(tmp_path / "plain").st_mode & 0o777


def test_a_copy_over_a_file_being_read_leaves_the_reader_its_file(tmp_path):
    from synshard.shards.atomic import copy_file

    fs = fsspec.filesystem("file")
    src, dst = tmp_path / "base.tar", tmp_path / "out.tar"
    src.write_bytes(b"b" * 4096)
    dst.write_bytes(b"a" * 4096)
    with open(dst, "rb") as reader:
        head = reader.read(10)
        copy_file(fs, str(src), str(dst))  # an incremental rebuild reusing a base shard
        assert head + reader.read() == b"a" * 4096
    assert dst.read_bytes() == b"b" * 4096
    assert sorted(os.listdir(tmp_path)) == ["base.tar", "out.tar"]


def test_partial_writes_are_removed_outside_staging(tmp_path):
    from synshard.shards.atomic import remove_partial_writes

    for rel in ("index/webdataset/train/n01/.part-ab.tmp", ".part-cd.tmp",
                "_staging/0123/.part-ef.tmp", "webdataset/train/n01/n01-000000-deadbeef.tar"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert remove_partial_writes(fsspec.filesystem("file"), str(tmp_path)) == 2
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["_staging/0123/.part-ef.tmp", "webdataset/train/n01/n01-000000-deadbeef.tar"]


def _parts(count: int) -> list:
    """Parts of mixed kinds and sizes (empty ones, views into a larger buffer, bytes)."""
    blob = bytes(range(256)) * 40
    return [memoryview(blob)[i % 97:i % 97 + i % 300] if i % 3 else bytes([i % 256]) * (i % 5)
            for i in range(count)]


def test_parts_are_written_as_their_concatenation_past_the_iovec_limit(tmp_path):
    from synshard.shards.atomic import _IOV_MAX, put_parts

    parts = _parts(2 * _IOV_MAX + 17)  # three writev calls
    put_parts(fsspec.filesystem("file"), str(tmp_path / "a.tar"), parts)
    assert (tmp_path / "a.tar").read_bytes() == b"".join(parts)
    assert os.listdir(tmp_path) == ["a.tar"]
    memory = fsspec.filesystem("memory")
    put_parts(memory, "/parts/a.tar", parts)  # an object store: one PUT of the joined bytes
    assert memory.cat_file("/parts/a.tar") == b"".join(parts)


@pytest.mark.parametrize("allowed", [1, 700, 4096])
def test_a_short_writev_goes_on_where_it_stopped(tmp_path, monkeypatch, allowed):
    from synshard.shards import atomic

    real = os.writev

    def short(fd, buffers):  # a kernel may write fewer bytes than asked (a signal, a quota)
        out, left = [], allowed
        for b in buffers:
            view = memoryview(b).cast("B")[:left]
            out.append(view)
            left -= len(view)
        return real(fd, out)

    monkeypatch.setattr(atomic.os, "writev", short)
    parts = _parts(3000)
    atomic.put_parts(fsspec.filesystem("file"), str(tmp_path / "b.tar"), parts)
    assert (tmp_path / "b.tar").read_bytes() == b"".join(parts)
