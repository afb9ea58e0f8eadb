"""Every file a build reads is in its fingerprint: edit one in place and the same command
rebuilds (with --overwrite it really rewrites), and the release shows the edit.

Before this test, `--classes FILE`, `--votes` and `--boxes` entered the fingerprint by URI only:
the second build said "already this build: nothing to do" and kept the stale release.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

import synshard
from synshard.shards.release import open_release

SYNSETS = ("n02165456", "n09428293")  # ladybug, seashore: no label conflict between them
X, Y = "n02165456_10551", "n02165456_19644"  # two accepted ladybugs


@pytest.fixture(scope="module")
def source(sample_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inputs") / "src"
    for wnid in SYNSETS:
        shutil.copytree(sample_dir / wnid, root / wnid)
    return root


def _build(source: Path, out: Path, **opts):
    return synshard.build([str(source)], str(out), log=lambda m: None, progress=False,
                          val_fraction=0.25, overwrite=True, **opts)


def _records(out: Path) -> dict[str, dict]:
    release = open_release(str(out))
    rows = {}
    for e in release.shards(format="parquet"):
        table = pq.read_table(release.uri(e.path), columns=["key", "label", "source", "bboxes"])
        for r in table.to_pylist():
            rows[Path(r["source"]).stem] = {**r, "synset": e.synset}
    return rows


def _classes(out: Path) -> list[str]:
    return [c["synset"] for c in open_release(str(out)).manifest.classes]


def _copy_image(src: Path, dest: Path) -> None:
    with Image.open(src) as im:  # a re-encoded copy: near, not exact
        im.convert("RGB").save(dest, quality=80)


def _voc(wnid: str, box: tuple[int, int, int, int]) -> str:
    x0, y0, x1, y1 = box
    return (f"<annotation><object><name>{wnid}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object></annotation>")


def _case_classes(src: Path, tmp: Path):
    path = tmp / "classes.txt"
    path.write_text("\n".join(SYNSETS) + "\n")
    return ({"classes": str(path)}, lambda: path.write_text("\n".join(reversed(SYNSETS)) + "\n"),
            lambda before, after: (_classes(before), _classes(after))
            == (list(SYNSETS), list(reversed(SYNSETS))))


def _case_votes(src: Path, tmp: Path):
    path = tmp / "votes.csv"

    def write(x_vote: str) -> None:
        rows = [f"{src / SYNSETS[0] / (stem + '.JPEG')},{SYNSETS[0]},w{i},{vote}"
                for stem, vote in ((X, x_vote), (Y, "yes")) for i in range(3)]
        path.write_text("image,synset,worker,vote\n" + "\n".join(rows) + "\n")

    write("yes")
    return ({"votes": str(path), "vote_method": "mv", "min_confidence": 0.5},
            lambda: write("no"),
            lambda before, after: X in _records(before) and X not in _records(after)
            and Y in _records(after))


def _case_boxes(src: Path, tmp: Path):
    boxes = tmp / "boxes"
    (boxes / SYNSETS[0]).mkdir(parents=True)
    xml = boxes / SYNSETS[0] / f"{X}.xml"
    xml.write_text(_voc(SYNSETS[0], (10, 10, 100, 100)))
    return ({"boxes": str(boxes)},
            lambda: xml.write_text(_voc(SYNSETS[0], (20, 30, 120, 140))),
            lambda before, after: _records(before)[X]["bboxes"] != _records(after)[X]["bboxes"]
            and _records(after)[X]["bboxes"])


def _case_remove(src: Path, tmp: Path):
    path = tmp / "remove.txt"
    path.write_text(f"{src / SYNSETS[0] / (X + '.JPEG')}\n")
    return ({"remove": str(path)},
            lambda: path.write_text(f"{src / SYNSETS[0] / (Y + '.JPEG')}\n"),
            lambda before, after: (X in _records(before), Y in _records(before),
                                   X in _records(after), Y in _records(after))
            == (False, True, True, False))


def _like_case(option: str):
    def case(src: Path, tmp: Path):
        folder = tmp / option
        folder.mkdir()
        _copy_image(src / SYNSETS[0] / f"{X}.JPEG", folder / "copy.jpg")
        return ({option: [str(folder)]},
                lambda: _copy_image(src / SYNSETS[0] / f"{Y}.JPEG", folder / "copy.jpg"),
                lambda before, after: (X in _records(before), Y in _records(before),
                                       X in _records(after), Y in _records(after))
                == (False, True, True, False))
    return case


CASES = {"classes": _case_classes, "votes": _case_votes, "boxes": _case_boxes,
         "remove": _case_remove, "remove_like": _like_case("remove_like"),
         "dedup_against": _like_case("dedup_against")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_input_edited_in_place_rebuilds_the_release(ray_local, source, tmp_path, name):
    options, edit, changed = CASES[name](source, tmp_path)
    out, before = tmp_path / "rel", tmp_path / "before"
    first = _build(source, out, **options)
    assert not first.noop
    shutil.copytree(out, before)
    fingerprint = open_release(str(out)).manifest.fingerprint
    assert _build(source, out, **options).noop  # nothing edited: nothing to do
    edit()
    second = _build(source, out, **options)
    assert not second.noop, f"an in-place edit of --{name} was not seen"
    assert open_release(str(out)).manifest.fingerprint != fingerprint
    assert changed(before, out)
