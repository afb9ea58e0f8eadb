"""PASCAL VOC XML boxes, as ImageNet's bounding-box release ships them."""
from __future__ import annotations

from pathlib import Path

import pytest

from synshard.ingest.boxes import BoxesError, boxes_for_sources, parse_voc_xml, source_stem

VOC = b"""<annotation>
  <folder>n01440764</folder><filename>n01440764_10026</filename>
  <size><width>500</width><height>375</height><depth>3</depth></size>
  <object><name>n01440764</name><bndbox>
    <xmin>12</xmin><ymin>34</ymin><xmax>456</xmax><ymax>300</ymax></bndbox></object>
  <object><name>n01440764</name><bndbox>
    <xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>
  <object><name>n99999999</name><bndbox>
    <xmin>0</xmin><ymin>0</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>
</annotation>"""

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]><annotation><object><name>&lol9;</name></object></annotation>"""


def test_parse_voc_xml() -> None:
    assert parse_voc_xml(VOC) == [[12, 34, 456, 300], [1, 2, 3, 4], [0, 0, 9, 9]]
    assert parse_voc_xml(VOC, synset="n01440764") == [[12, 34, 456, 300], [1, 2, 3, 4]]
    assert parse_voc_xml(b"<annotation/>") == []


@pytest.mark.parametrize("data", [b"not xml", b"<a><object><bndbox><xmin>x</xmin></bndbox></object></a>",
                                  BOMB])
def test_bad_xml_raises_boxes_error(data: bytes) -> None:
    with pytest.raises(BoxesError):
        parse_voc_xml(data)


def test_source_stem() -> None:
    assert source_stem("/data/n01440764/n01440764_10026.JPEG") == "n01440764_10026"
    assert source_stem("s3://b/train.tar::n1/n1_2.jpg") == "n1_2"
    assert source_stem("https://x/img/n1_3.jpg?size=large") == "n1_3"


def test_boxes_for_sources(tmp_path: Path) -> None:
    (tmp_path / "n01440764").mkdir()
    (tmp_path / "n01440764" / "n01440764_10026.xml").write_bytes(VOC)
    (tmp_path / "n01440764" / "n01440764_2.xml").write_bytes(b"<broken")
    found = boxes_for_sources(
        str(tmp_path),
        ["/d/n01440764/n01440764_10026.JPEG", "/d/n01440764/n01440764_1.JPEG",
         "/d/n01440764/n01440764_2.JPEG", "/d/x.jpg"],
        ["n01440764", "n01440764", "n01440764", None],
    )
    assert found.boxes == [[[12, 34, 456, 300], [1, 2, 3, 4]], None, None, None]
    assert found.problems[:2] == [None, None] and found.problems[3] is None
    assert found.problems[2] is not None and found.problems[2].startswith("bad boxes xml")
