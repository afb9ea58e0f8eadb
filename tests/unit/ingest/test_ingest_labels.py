"""Labels files: CSV `file,synset`, optional header, basename matching, errors as SynshardError."""

from __future__ import annotations

import pytest
from synshard.ingest.labels import lookup, parse_labels, read_labels
from synshard.transforms.errors import SynshardError


def test_parse_with_and_without_header():
    body = "a.JPEG,n01440764\nsub/b.jpg,N02102040\n\n"
    assert parse_labels(body) == {"a.JPEG": "n01440764", "b.jpg": "n02102040"}
    assert parse_labels("file,synset\n" + body) == parse_labels(body)


def test_imagenet_loc_solution_format():
    text = "ImageId,PredictionString\nILSVRC2012_val_00000001,n01751748 1 2 3 4 n01751748 5 6 7 8\n"
    labels = parse_labels(text)
    assert lookup(labels, "val/ILSVRC2012_val_00000001.JPEG") == "n01751748"


def test_lookup_prefers_exact_basename():
    labels = {"x.jpg": "n00000001", "x": "n00000002"}
    assert lookup(labels, "deep/dir/x.jpg") == "n00000001"
    assert lookup(labels, "x.png") == "n00000002"
    assert lookup(labels, "y.jpg") is None
    assert lookup(None, "x.jpg") is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("a.jpg,n01440764\nb.jpg,not-a-wnid\n", "line 2"),
        ("a.jpg,n01440764\na.jpg,n02102040\n", "labelled both"),
        ("header,here\nonly-one-column\n", "line 2"),
    ],
)
def test_bad_labels_raise(text, message):
    with pytest.raises(SynshardError, match=message):
        parse_labels(text)


def test_read_labels_missing(tmp_path):
    with pytest.raises(SynshardError, match="labels file not found"):
        read_labels(str(tmp_path / "nope.csv"))


def test_read_labels_bom(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes("\ufefffile,synset\na.jpg,n01440764\n".encode("utf-8"))
    assert read_labels(str(path)) == {"a.jpg": "n01440764"}
