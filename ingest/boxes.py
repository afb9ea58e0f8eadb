"""Bounding boxes from ImageNet's PASCAL VOC XML annotations (`<boxes_dir>/<wnid>/<stem>.xml`).

Coordinates are returned as written (`xmin ymin xmax ymax`, source pixels), one box per
`<object>`. The XML is parsed with the standard library's ElementTree: it never fetches external
entities, and the expat it ships (>= 2.4.1 since Python 3.11) refuses entity-expansion bombs, so an
annotation file cannot make the parser fetch or blow up.
"""
from __future__ import annotations

import posixpath
from typing import NamedTuple, Sequence
from xml.etree import ElementTree

from fsspec.core import url_to_fs

Box = list[float]
_FIELDS = ("xmin", "ymin", "xmax", "ymax")


class BoxesError(ValueError):
    """An annotation file that is not VOC XML with numeric boxes."""


class BoxLookup(NamedTuple):
    """Per source: its boxes (None when it has no annotation file) and a problem (or None)."""

    boxes: list[list[Box] | None]
    problems: list[str | None]


def parse_voc_xml(data: bytes, synset: str | None = None) -> list[Box]:
    """The `[x0, y0, x1, y1]` boxes of a VOC annotation; with `synset`, only objects named so."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise BoxesError(f"not XML: {exc}") from None
    boxes = []
    for obj in root.iter("object"):
        if synset is not None and (obj.findtext("name") or "").strip() not in ("", synset):
            continue
        bndbox = obj.find("bndbox")
        if bndbox is None:
            continue
        try:
            box = [float(bndbox.findtext(name) or "") for name in _FIELDS]
        except ValueError:
            raise BoxesError("a bndbox coordinate is missing or not a number") from None
        boxes.append(box)
    return boxes


def source_stem(source: str) -> str:
    """The file stem of a source: `.../n01440764_10026.JPEG` and `tar::x/n1_2.jpg` -> `n1_2`."""
    name = posixpath.basename(source.rsplit("::", 1)[-1].split("?", 1)[0])
    stem, dot, _ = name.rpartition(".")
    return stem if dot else name


def boxes_for_sources(
    boxes_dir: str, sources: Sequence[str], synsets: Sequence[str | None]
) -> BoxLookup:
    """Look up each source's `<boxes_dir>/<wnid>/<stem>.xml` (any fsspec URI), one read per batch.

    A missing file means no boxes (most images have none); an unreadable or malformed one also
    gives None, with the problem reported alongside so it is counted, not silently lost.
    """
    fs, root = url_to_fs(boxes_dir)
    paths = [
        posixpath.join(root, synset, source_stem(source) + ".xml") if synset else None
        for source, synset in zip(sources, synsets)
    ]
    wanted = [p for p in paths if p is not None]
    # cat_ranges, not cat: concurrent on object stores, and no glob expansion of names
    blobs = fs.cat_ranges(wanted, [None] * len(wanted), [None] * len(wanted), on_error="return")
    found = dict(zip(wanted, blobs))
    boxes: list[list[Box] | None] = []
    problems: list[str | None] = []
    for path, synset in zip(paths, synsets):
        data = found.get(path) if path else None
        if data is None or isinstance(data, FileNotFoundError):
            boxes.append(None)
            problems.append(None)
        elif isinstance(data, Exception):
            boxes.append(None)
            problems.append(f"boxes unreadable: {type(data).__name__}")
        else:
            try:
                boxes.append(parse_voc_xml(data, synset))
                problems.append(None)
            except BoxesError as exc:
                boxes.append(None)
                problems.append(f"bad boxes xml: {exc}")
    return BoxLookup(boxes, problems)
