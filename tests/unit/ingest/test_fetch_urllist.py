"""URL lists in every format: columns normalised, bad rows kept with a reason."""
from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, strategies as st

from synshard.ingest.urllist import URLLIST_SCHEMA, parse_bboxes, read_url_list
from synshard.transforms.errors import SynshardError

CSV = (
    'url,synset,id,license,bboxes\n'
    'http://a/1.jpg,n01440764,7,CC-BY,"[[1, 2, 30, 40]]"\n'
    'http://a/2.jpg,n01440764,8,,\n'
    ',n01443537,9,,\n'
    'http://a/3.jpg,n01443537,10,,"[[1, 2, 3]]"\n'
    'http://a/4.jpg,n01443537,11,,{oops\n'
    'http://a/5.jpg,n01443537,12,,,extra,columns\n'
)


def test_csv(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(CSV)
    table = read_url_list(str(path))
    assert table.schema == URLLIST_SCHEMA
    assert table.num_rows == 6  # the malformed line is kept, not dropped
    rows = table.to_pylist()
    assert rows[0]["url"] == "http://a/1.jpg" and rows[0]["id"] == "7"
    assert rows[0]["bboxes"] == [[1.0, 2.0, 30.0, 40.0]] and rows[0]["license"] == "CC-BY"
    assert rows[1]["bboxes"] is None and rows[1]["reason"] is None
    assert rows[2]["reason"] == "no url (line 4)"
    assert rows[3]["reason"] == "bad bboxes: a box is not four numbers (line 5)"
    assert rows[4]["reason"] == "bad bboxes: not JSON (line 6)"
    assert rows[5]["url"] is None
    assert rows[5]["reason"] == "bad csv row (line 7): expected 5 columns, got 7"
    assert [r["row"] for r in rows] == [0, 1, 2, 3, 4, None]


def test_jsonl_gz_with_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"url": "http://a/1.jpg", "synset": "n1", "bboxes": [[0, 0, 5, 5], [1, 1, 2, 2]]}),
        json.dumps({"url": "http://a/2.jpg", "synset": "n1", "bboxes": "[[0, 0, 5, 5]]", "id": 3}),
        "{not json",
        "",
        json.dumps(["a list"]),
        json.dumps({"url": 42, "synset": "n1"}),
        json.dumps({"url": "http://a/3.jpg", "bbox": [0, 0, 9, 9], "attribution": "me"}),
    ]
    path = tmp_path / "list.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    rows = read_url_list(str(path)).to_pylist()
    assert len(rows) == 6  # the blank line is not a record
    assert rows[0]["bboxes"] == [[0, 0, 5, 5], [1, 1, 2, 2]]
    assert rows[1]["bboxes"] == [[0, 0, 5, 5]] and rows[1]["id"] == "3"
    assert rows[2]["reason"].startswith("bad url: not a string (line ")
    assert rows[3]["bboxes"] == [[0, 0, 9, 9]] and rows[3]["attribution"] == "me"
    assert rows[4]["reason"] == "bad json line 3: JSONDecodeError"
    assert rows[5]["reason"] == "bad json line 5: not an object"


def test_parquet_with_list_bboxes(tmp_path: Path) -> None:
    path = tmp_path / "list.parquet"
    pq.write_table(pa.table({
        "url": ["http://a/1.jpg", "http://a/2.jpg"],
        "synset": ["n1", None],
        "bboxes": pa.array([[[0.0, 0.0, 3.0, 4.0]], None], pa.list_(pa.list_(pa.float64()))),
        "extra": [1, 2],
    }), path)
    table = read_url_list(str(path))
    assert table.schema == URLLIST_SCHEMA
    assert table.column("bboxes").to_pylist() == [[[0, 0, 3, 4]], None]
    assert table.column("synset").to_pylist() == ["n1", None]


def test_a_bad_row_is_a_reason_with_its_line_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(b'url,synset,split,attribution\n'
                     b'http://a/1.jpg,n01440764,train,me\n'
                     b'http://a/2.jpg,n01440764,,caf\xe9\n'  # Latin-1, not UTF-8
                     b'\n'
                     b'http://a/3.jpg,n01440764,Training,"two\nlines"\n'
                     b'http://a/4.jpg,n01440764,holdout,\n'
                     b'http://a/5.jpg,n01440764,validation,\n')
    rows = read_url_list(str(path)).to_pylist()
    assert [(r["url"], r["reason"]) for r in rows] == [
        ("http://a/1.jpg", None),
        ("http://a/3.jpg", None),
        ("http://a/4.jpg", "bad split 'holdout': use one of train, val, test (line 7)"),
        ("http://a/5.jpg", None),
        (None, "bad csv row (line 3): not UTF-8 text"),
    ]
    assert rows[1]["attribution"] == "two\nlines"


def test_bad_split_in_jsonl_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    path.write_text('{"url": "http://a/1.jpg", "synset": "n01440764"}\n\n'
                    '{"url": "http://a/2.jpg", "synset": "n01440764", "split": "dev"}\n'
                    '{"url": "http://a/3.jpg", "url": "http://a/4.jpg"}\n')
    reasons = [r["reason"] for r in read_url_list(str(path)).to_pylist()]
    assert reasons == [None, "bad split 'dev': use one of train, val, test (line 3)",
                       "bad json line 4: key 'url' given twice"]


@pytest.mark.parametrize("name", ["list.csv", "list.tsv", "list.parquet"])
def test_a_column_named_twice_refuses_the_list(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".parquet"):
        table = pa.table([pa.array(["http://a/1"]), pa.array(["n1"]), pa.array(["http://a/2"])],
                         names=["url", "synset", "url"])
        pq.write_table(table, path)
    else:
        sep = "," if name.endswith(".csv") else "\t"
        path.write_text(sep.join(["url", "synset", "url"]) + "\n" + sep.join("abc") + "\n")
    with pytest.raises(SynshardError, match="column 'url' is named twice"):
        read_url_list(str(path))


@pytest.mark.parametrize("name, text, message", [
    ("list.txt", "url\n", "not a URL list"),
    ("list.csv", "link,synset\nhttp://a,n1\n", "no `url` column"),
    ("missing.csv", None, "no such URL list"),
])
def test_unusable_lists_are_user_errors(tmp_path: Path, name: str, text: str | None,
                                        message: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(SynshardError, match=message):
        read_url_list(str(path))


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(st.lists(st.tuples(finite, finite, finite, finite), max_size=5))
def test_bboxes_round_trip_through_json(boxes: list[tuple[float, float, float, float]]) -> None:
    ordered = [[min(a, c), min(b, d), max(a, c), max(b, d)] for a, b, c, d in boxes]
    parsed, reason = parse_bboxes(json.dumps(ordered))
    assert reason is None and parsed == ordered


@pytest.mark.parametrize("value", ["[[5, 0, 1, 1]]", "[[0, 0, 1, NaN]]", "[[true, 0, 1, 1]]",
                                   '"box"', "[[0, 0, 1, 1, 1]]", "7"])
def test_bad_bboxes(value: str) -> None:
    boxes, reason = parse_bboxes(value)
    assert boxes is None and reason and reason.startswith("bad bboxes")


WELL_FORMED = [
    "url,synset\nhttp://h/1.jpg,n01440764\nhttp://h/2.jpg,n01443537\n",
    "\ufeff url , synset ,extra\r\n  http://h/1.jpg ,n01440764,x\r\n\r\n\"http://h/a,b.jpg\",,\n",
    "url,split,license,attribution,id\nhttp://h/1.jpg,Train,CC-BY,\"Ann, \"\"A\"\"\",7\n"
    "http://h/2.jpg,validation,,,\n",
    "synset,url\n",
    "url,synset\n\"http://h/1\n.jpg\",n01440764\n",  # a line break in a quoted value
]
NEEDS_ROWS = [  # the row-by-row reader: a reason with its line, or what Arrow cannot parse
    "url,synset\nhttp://h/1.jpg,n01440764\n,n01440764\n",
    "url,synset\nhttp://h/1.jpg\n",
    "url,split\nhttp://h/1.jpg,dev\n",
    "url,bboxes\nhttp://h/1.jpg,\"[1,2,3,4]\"\n",
]


@pytest.mark.parametrize("text", WELL_FORMED + NEEDS_ROWS)
@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_the_arrow_path_gives_the_row_by_row_table_or_steps_aside(tmp_path: Path, text: str,
                                                                 suffix: str) -> None:
    from synshard.ingest import urllist

    if suffix == ".tsv":
        text = text.replace(",", "\t")
    path = tmp_path / f"list{suffix}"
    path.write_bytes(text.encode())
    slow = urllist._normalise((urllist._read_tsv if suffix == ".tsv" else urllist._read_csv)(
        io.BytesIO(path.read_bytes())))
    fast = (urllist._arrow_csv_tab if suffix == ".tsv" else urllist._arrow_csv)(
        io.BytesIO(path.read_bytes()))
    if text in NEEDS_ROWS or text.replace("\t", ",") in NEEDS_ROWS:
        assert fast is None
    else:
        assert fast is not None and fast.equals(slow), (fast.to_pylist(), slow.to_pylist())
    assert read_url_list(str(path)).equals(slow)


def test_not_utf8_takes_the_row_by_row_path(tmp_path: Path) -> None:
    from synshard.ingest import urllist

    data = b"url,synset\nhttp://h/\xff.jpg,n01440764\nhttp://h/2.jpg,n01440764\n"
    assert urllist._arrow_csv(io.BytesIO(data)) is None
    path = tmp_path / "l.csv"
    path.write_bytes(data)
    reasons = read_url_list(str(path))["reason"].to_pylist()
    assert reasons[0] is None and reasons[1].startswith("bad csv row (line ")
