"""`synshard get` through its own parsers (cli.py registers them with `add_parsers`)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import fsspec
from shardgen import build_release

from synshard.cli import explore as cmd_explore
from synshard.shards.access import get_many
from synshard.shards.release import open_release


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cmd_explore.add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_get_writes_image_folder_and_meta(tmp_path, capsysbinary) -> None:
    root = str(tmp_path / "rel")
    build_release(fsspec.filesystem("file"), root)
    keys = [k for k in _keys(root)][:3]
    expected = get_many(root, keys)
    args = _parse(["get", root, keys[0], "-o", str(tmp_path / "one.img")])
    assert args.func(args) == 0
    assert (tmp_path / "one.img").read_bytes() == expected[keys[0]]
    args = _parse(["get", root, *keys, "-o", str(tmp_path / "many")])
    assert args.func(args) == 0
    assert {p.stem: p.read_bytes() for p in (tmp_path / "many").iterdir()} == expected
    args = _parse(["get", root, keys[1]])
    assert args.func(args) == 0
    assert capsysbinary.readouterr().out == expected[keys[1]]
    args = _parse(["get", root, *keys, "--meta"])
    assert args.func(args) == 0
    lines = capsysbinary.readouterr().out.decode().splitlines()
    assert [json.loads(line)["key"] for line in lines] == keys


def test_get_and_report_create_missing_folders_alike(tmp_path) -> None:
    """`-o` behaves the same for `get` and `report`: missing parent folders are created, and a
    folder (existing, or a path ending in /) gets the command's own file name inside it."""
    from synshard.cli import release as cmd_release

    root = str(tmp_path / "rel")
    build_release(fsspec.filesystem("file"), root)
    key = _keys(root)[0]
    image = get_many(root, [key])[key]
    args = _parse(["get", root, key, "-o", str(tmp_path / "new" / "deeper" / "one.jpg")])
    assert args.func(args) == 0  # before: FileNotFoundError (report created its folders)
    assert (tmp_path / "new" / "deeper" / "one.jpg").read_bytes() == image
    (tmp_path / "existing").mkdir()
    for folder in (str(tmp_path / "existing"), str(tmp_path / "fresh") + "/"):
        args = _parse(["get", root, key, "-o", folder])
        assert args.func(args) == 0  # before: IsADirectoryError
        assert (tmp_path / folder.rstrip("/") / f"{key}.jpg").read_bytes() == image

    parser = argparse.ArgumentParser()
    cmd_release.add_parsers(parser.add_subparsers(dest="command", required=True))
    for out, written in ((tmp_path / "r" / "s" / "rep.html", tmp_path / "r" / "s" / "rep.html"),
                         (tmp_path / "existing", tmp_path / "existing" / "report.html")):
        args = parser.parse_args(["report", root, "-o", str(out), "--thumbnails", "0"])
        assert args.func(args) == 0
        assert written.read_text().lstrip().lower().startswith("<!doctype html")


def test_get_names_files_by_the_stored_format_whatever_the_shard_format(tmp_path) -> None:
    """A Parquet-only release's index rows carry no extension: `get -o` takes it from the record's
    format, so both releases of the same records give the same files (before: every file of the
    Parquet release was `<key>.jpg`, WebP and PNG included)."""
    from synshard.shards.access import KeyReader

    fs = fsspec.filesystem("file")
    both, parquet = str(tmp_path / "both"), str(tmp_path / "parquet")
    build_release(fs, both)
    build_release(fs, parquet, formats=("parquet",))
    keys = _keys(parquet, "parquet")
    assert sorted(keys) == sorted(_keys(both))
    formats = {k: m["format"] for k, m in KeyReader(open_release(parquet)).records(keys).items()}
    assert set(formats.values()) == {"jpeg", "webp", "png"}
    expected = {f"{k}.{ {'jpeg': 'jpg'}.get(f, f)}" for k, f in formats.items()}
    written = {}
    for root in (both, parquet):
        out = tmp_path / f"out-{Path(root).name}"
        args = _parse(["get", root, *keys, "-o", str(out)])
        assert args.func(args) == 0
        written[root] = {p.name: p.read_bytes() for p in out.iterdir()}
        one = next(k for k, f in formats.items() if f == "webp")
        args = _parse(["get", root, one, "-o", f"{out}-one/"])
        assert args.func(args) == 0
        assert [p.name for p in Path(f"{out}-one").iterdir()] == [f"{one}.webp"]
    assert set(written[parquet]) == expected
    assert written[parquet] == written[both]


def test_serve_defaults_to_loopback() -> None:
    args = _parse(["serve", "some-release"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)


def _keys(root: str, fmt: str = "webdataset") -> list[str]:
    release = open_release(root)
    return [k for e in release.shards(format=fmt)
            for k in cmd_explore_index_keys(release, e)]


def cmd_explore_index_keys(release, entry) -> list[str]:
    from synshard.shards.index import read_index

    return read_index(release.fs, release.root, entry)["key"].to_pylist()
