"""The CLI handlers of synshard/cli/synsets.py, through a real argparse parser."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from synshard.cli.synsets import add_parsers
from synshard.synsets.simulate import CrowdSpec, simulate_crowd
from synshard.errors import SynshardError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="synshard")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synsets", "show", "n02084071", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"wnid", "lemmas", "gloss", "parents", "ancestors"}
    assert doc["lemmas"][0] == "dog" and len(doc["parents"]) == 2
    assert "n00001740" in doc["ancestors"]


def test_show_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synsets", "show", "n01440764"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("n01440764  tench, Tinca tinca") and "entity (n00001740)" in out


def test_show_unknown() -> None:
    with pytest.raises(SynshardError, match="unknown synset"):
        main(["synsets", "show", "n99999999"])


def test_find(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synsets", "find", "domestic", "dog"]) == 0
    assert capsys.readouterr().out.startswith("n02084071  dog, domestic dog")
    assert main(["synsets", "find", "xyzzyq"]) == 1


def test_subset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synsets", "subset", "ilsvrc2012"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1000 and lines[0] == "n01440764"


def release(tmp_path: Path) -> Path:
    manifest = {"counts": {"by_synset": {"n01440764": {"train": 3, "val": 1},
                                         "n02085620": {"train": 2}}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = str(release(tmp_path))
    assert main(["tree", uri, "n02084071", "--json"]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert tree["wnid"] == "n02084071" and tree["images"] == 2
    assert main(["tree", "file://" + uri, "--depth", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("n00001740 entity: 6 images") and len(lines) == 3


def test_tree_without_release(tmp_path: Path) -> None:
    with pytest.raises(SynshardError, match="no committed release"):
        main(["tree", str(tmp_path)])


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_votes(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    votes, truth = simulate_crowd(CrowdSpec(images=300, synsets=3, workers=30), 0)
    src, out = tmp_path / f"votes.{fmt}", tmp_path / f"post.{fmt}"
    if fmt == "csv":
        votes = votes.set_column(3, "vote", pa.array(
            ["yes" if v else "no" for v in votes["vote"].to_pylist()]))
        pacsv.write_csv(votes, src)
    else:
        pq.write_table(votes, src)
    assert main(["votes", str(src), "--out", str(out), "--method", "ds"]) == 0
    assert "300 (image, synset) posteriors" in capsys.readouterr().out
    post = pacsv.read_csv(out) if fmt == "csv" else pq.read_table(out)
    assert post.num_rows == 300 and "posterior" in post.column_names


def test_votes_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SynshardError):
        main(["votes", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "o.parquet")])
