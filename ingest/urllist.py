"""URL lists (Parquet, CSV/TSV, JSONL; optionally compressed; any fsspec URI) as one table.

Columns out (`URLLIST_SCHEMA`): `url`, `synset`, `split`, `id`, `license`, `attribution` (strings
or null), `bboxes` (boxes `[x0, y0, x1, y1]` in source pixels, or null), `reason` (null, or why the
row cannot be fetched, with its line: `no url (line 4)`, `bad bboxes: ...`, `bad split ...`,
`bad csv row (line 7): not UTF-8 text`, `bad json line ...`) and `row` (the record's position
in the list, 0-based; null for rows too malformed to count).
Bad rows are kept with their reason, never dropped, so the build can account for every line.
In Parquet `bboxes` is a list of lists; in CSV and JSONL a JSON array string (JSONL may also give
the array itself). A column named `bbox` is accepted for `bboxes`, and a single flat box for a list.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import IO, Any, Callable

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synshard.transforms.errors import SynshardError
from synshard.transforms.schema import SPLITS, split_name

TEXT_COLUMNS = ("url", "synset", "split", "id", "license", "attribution")
BBOXES_TYPE = pa.list_(pa.list_(pa.float32(), 4))
URLLIST_SCHEMA = pa.schema(
    [pa.field(name, pa.string()) for name in TEXT_COLUMNS]
    + [
        pa.field("bboxes", BBOXES_TYPE),
        pa.field("reason", pa.string()),
        pa.field("row", pa.int64()),
    ]
)
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".lz4")
Columns = dict[str, list[Any]]


def list_format(uri: str) -> str:
    """`parquet`, `csv`, `tsv` or `jsonl`, from the name (compression suffixes ignored)."""
    name = uri.lower().rstrip("/")
    for suffix in COMPRESSIONS:
        name = name.removesuffix(suffix)
    for fmt, suffixes in _SUFFIXES.items():
        if name.endswith(suffixes):
            return fmt
    raise SynshardError(f"{uri}: not a URL list (use .parquet, .csv, .tsv or .jsonl, maybe .gz)")


_SUFFIXES = {
    "parquet": (".parquet", ".pq"),
    "csv": (".csv",),
    "tsv": (".tsv",),
    "jsonl": (".jsonl", ".ndjson", ".json"),
}


def read_url_list(uri: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """Read a URL list into `URLLIST_SCHEMA` rows, one per record, bad records included.

    A bad record (undecodable bytes, wrong column count, bad JSON, a bad `split`...) is a row with
    a reason naming its line; a header that names a column twice refuses the whole list.
    """
    fmt = list_format(uri)
    reader = _READERS[fmt]
    try:
        if fmt in _ARROW_READERS:  # a well-formed list: read and checked in Arrow, no row objects
            with fsspec.open(uri, "rb", compression="infer", **(storage_options or {})) as f:
                fast = _ARROW_READERS[fmt](f)
            if fast is not None:
                return fast
        with fsspec.open(uri, "rb", compression="infer", **(storage_options or {})) as f:
            records = reader(f)
    except (pa.ArrowInvalid, UnicodeDecodeError, csv.Error) as exc:
        raise SynshardError(f"{uri}: unreadable {fmt} URL list: {exc}") from None
    except FileNotFoundError:
        raise SynshardError(f"{uri}: no such URL list") from None
    except _BadHeader as exc:
        raise SynshardError(f"{uri}: {exc}: fix the header of the URL list") from None
    if "url" not in records.columns:
        raise SynshardError(f"{uri}: URL list has no `url` column")
    return _normalise(records)


@dataclass
class _Records:
    columns: Columns  # name -> one value per good record
    where: list[str]  # per good record: `line N` (text lists) or `row N` (Parquet)
    bad: list[str] = field(default_factory=list)  # reasons of records not even split into columns


class _BadHeader(Exception):
    """The list's column names are unusable (a name given twice, undecodable bytes)."""


def _unique_names(names: list[str]) -> list[str]:
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _BadHeader(f"column {twice[0]!r} is named twice in ({', '.join(names)})")
    return names


def _read_parquet(f: IO[bytes]) -> _Records:
    parquet = pq.ParquetFile(f)
    _unique_names(parquet.schema_arrow.names)
    table = parquet.read()
    return _Records(table.to_pydict(), [f"row {i}" for i in range(table.num_rows)])


def _read_csv(f: IO[bytes], delimiter: str = ",") -> _Records:
    """The stdlib `csv` reader (it tells each record's line); bytes that are not UTF-8 make the
    record bad, not the list. Empty fields are null."""
    text = io.TextIOWrapper(f, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    header = next(reader, [])
    if not _is_text(header):
        raise _BadHeader("the header is not UTF-8 text")
    names = _unique_names([name.strip() for name in header])
    out = _Records({name: [] for name in names}, [])
    done = 0  # lines consumed before the current record
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            out.bad.append(f"bad csv row (line {done + 1}): {exc}")
            done = reader.line_num
            continue
        line, done = done + 1, reader.line_num
        if not row:
            continue  # a blank line is not a record
        if len(row) != len(names):
            out.bad.append(f"bad csv row (line {line}): expected {len(names)} columns, "
                           f"got {len(row)}")
        elif not _is_text(row):
            out.bad.append(f"bad csv row (line {line}): not UTF-8 text")
        else:
            for name, value in zip(names, row):
                out.columns[name].append(value or None)
            out.where.append(f"line {line}")
    return out


def _is_text(values: list[str]) -> bool:
    """False when a value holds undecodable bytes (kept as lone surrogates by the reader)."""
    try:
        "".join(values).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_tsv(f: IO[bytes]) -> _Records:
    return _read_csv(f, delimiter="\t")


def _read_jsonl(f: IO[bytes]) -> _Records:
    """One JSON object per line; blank lines are skipped, others that fail become bad rows."""
    records: list[dict[str, Any]] = []
    out = _Records({}, [])
    for number, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_object)
        except ValueError as exc:
            out.bad.append(f"bad json line {number}: {exc.__class__.__name__}")
            continue
        except _BadHeader as exc:
            out.bad.append(f"bad json line {number}: {exc}")
            continue
        if isinstance(record, dict):
            records.append(record)
            out.where.append(f"line {number}")
        else:
            out.bad.append(f"bad json line {number}: not an object")
    names = {"url"} | {k for record in records for k in record}
    out.columns = {name: [r.get(name) for r in records] for name in names}
    return out


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _BadHeader(f"key {twice[0]!r} given twice")
    return dict(pairs)


_READERS: dict[str, Callable[[IO[bytes]], _Records]] = {
    "parquet": _read_parquet,
    "csv": _read_csv,
    "tsv": _read_tsv,
    "jsonl": _read_jsonl,
}


def _arrow_csv(f: IO[bytes], delimiter: str = ",") -> pa.Table | None:
    """The list read by Arrow's CSV reader and normalised in Arrow, or None when it needs the
    row-by-row reader (a row it cannot parse, bytes that are not UTF-8, a value in a quoted
    line break, a row with a reason: those must name their line). Same table either way."""
    import pyarrow.csv as pacsv

    head = f.read(1 << 16)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        names = next(csv.reader([first.decode("utf-8")], delimiter=delimiter))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    stripped = _unique_names([n.strip() for n in names])  # a name twice: _BadHeader
    try:
        table = pacsv.read_csv(
            _Prefixed(head, f),
            # one thread: the reader's threads each kept their own allocator pages, ~9 MiB more
            # of the driver's RSS for a 100,000-URL list; no slower (13 ms, threaded 32 ms)
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=True,
                                                 quoted_strings_can_be_null=True))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return _arrow_normalise(table.rename_columns(stripped))


def _arrow_csv_tab(f: IO[bytes]) -> pa.Table | None:
    return _arrow_csv(f, delimiter="\t")


class _Prefixed(io.RawIOBase):
    """`head` (already read) followed by the rest of `f`, as one readable stream."""

    def __init__(self, head: bytes, f: IO[bytes]) -> None:
        self.head, self.f = memoryview(head), f

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.f.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _arrow_normalise(table: pa.Table) -> pa.Table | None:
    """`_normalise` in Arrow for a list whose every row is good (else None: the row-by-row path
    gives the reasons with their lines). Boxes also take that path (they are parsed per row)."""
    import pyarrow.compute as pc

    names = set(table.column_names)
    if "url" not in names or ({"bboxes", "bbox"} & names and any(
            table[c].null_count < table.num_rows for c in {"bboxes", "bbox"} & names)):
        return None
    n = table.num_rows
    columns: dict[str, Any] = {}
    for name in TEXT_COLUMNS:
        column = table[name] if name in names else pa.nulls(n, pa.string())
        if not pa.types.is_string(column.type) and not pa.types.is_null(column.type):
            return None
        columns[name] = column.cast(pa.string())
    url = pc.utf8_trim_whitespace(columns["url"])
    if url.null_count or pc.any(pc.equal(url, "")).as_py():
        return None  # "no url": a reason with its line
    columns["url"] = url
    splits = [v for v in pc.unique(columns["split"]).to_pylist() if v is not None]
    if any(_split_reason(v) for v in splits):
        return None
    columns["bboxes"] = pa.nulls(n, BBOXES_TYPE)
    columns["reason"] = pa.nulls(n, pa.string())
    columns["row"] = pa.array(np.arange(n, dtype=np.int64))
    return pa.table(columns, schema=URLLIST_SCHEMA)


def _arrow_parquet(f: IO[bytes]) -> pa.Table | None:
    parquet = pq.ParquetFile(f)
    _unique_names(parquet.schema_arrow.names)
    return _arrow_normalise(parquet.read())


_ARROW_READERS: dict[str, Callable[[IO[bytes]], pa.Table | None]] = {
    "csv": _arrow_csv,
    "tsv": _arrow_csv_tab,
    "parquet": _arrow_parquet,
}


def _normalise(records: _Records) -> pa.Table:
    """Columns of raw values -> `URLLIST_SCHEMA`; per-row problems become reasons with the line."""
    columns = records.columns
    n = len(columns["url"])
    out: dict[str, list[Any]] = {
        name: [_text(v) for v in columns.get(name, [None] * n)] for name in TEXT_COLUMNS
    }
    nothing = [None] * n
    raw_boxes = [b if b is not None else a for b, a in
                 zip(columns.get("bboxes", nothing), columns.get("bbox", nothing))]
    parsed = [parse_bboxes(value) for value in raw_boxes]
    out["bboxes"] = [boxes for boxes, _ in parsed]
    reasons = [
        _url_reason(url) or box_reason or _split_reason(split)
        for url, (_, box_reason), split in zip(columns["url"], parsed, out["split"])
    ]
    out["reason"] = [r and f"{r} ({where})" for r, where in zip(reasons, records.where)]
    out["url"] = [u.strip() if isinstance(u, str) and u.strip() else None for u in columns["url"]]
    out["row"] = list(range(n))
    for reason in records.bad:
        for name in URLLIST_SCHEMA.names:
            out[name].append(reason if name == "reason" else None)
    return pa.table(out, schema=URLLIST_SCHEMA)


def _split_reason(split: str | None) -> str | None:
    if split is None or split_name(split) is not None:
        return None
    return f"bad split {split!r}: use one of {', '.join(SPLITS)}"


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


def _url_reason(url: Any) -> str | None:
    if url is None or (isinstance(url, str) and not url.strip()):
        return "no url"
    return None if isinstance(url, str) else "bad url: not a string"


def parse_bboxes(value: Any) -> tuple[list[list[float]] | None, str | None]:
    """(boxes, None), or (None, reason). Null/empty means no boxes; one flat box is a list of one.

    A box is four finite numbers `[x0, y0, x1, y1]` with x0 <= x1 and y0 <= y1.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None, "bad bboxes: not JSON"
    if not isinstance(value, (list, tuple)):
        return None, "bad bboxes: not a list"
    if len(value) == 4 and all(_is_number(v) for v in value):
        value = [value]
    boxes = []
    for box in value:
        if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(map(_is_number, box)):
            return None, "bad bboxes: a box is not four numbers"
        x0, y0, x1, y1 = (float(v) for v in box)
        if not all(map(math.isfinite, (x0, y0, x1, y1))) or x0 > x1 or y0 > y1:
            return None, "bad bboxes: a box is not finite with x0 <= x1, y0 <= y1"
        boxes.append([x0, y0, x1, y1])
    return boxes, None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
