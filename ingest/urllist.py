"""URL lists (Parquet, CSV/TSV, JSONL; optionally compressed; any fsspec URI) as one table.

Columns out (`URLLIST_SCHEMA`): `url`, `synset`, `split`, `id`, `license`, `attribution` (strings
or null), `bboxes` (boxes `[x0, y0, x1, y1]` in source pixels, or null), `reason` (null, or why the
row cannot be fetched: `no url`, `bad bboxes: ...`, `bad csv row ...`, `bad json line ...`) and
`row` (the record's position in the list, 0-based; null for CSV rows too malformed to count).
Bad rows are kept with their reason, never dropped, so the build can account for every line.
In Parquet `bboxes` is a list of lists; in CSV and JSONL a JSON array string (JSONL may also give
the array itself). A column named `bbox` is accepted for `bboxes`, and a single flat box for a list.
"""
from __future__ import annotations

import json
import math
from typing import IO, Any, Callable

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from synshard.transforms.errors import SynshardError

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
Bad = list[str]  # reasons of rows that could not even be split into columns


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
    """Read a URL list into `URLLIST_SCHEMA` rows, one per record, bad records included."""
    fmt = list_format(uri)
    reader = _READERS[fmt]
    try:
        with fsspec.open(uri, "rb", compression="infer", **(storage_options or {})) as f:
            columns, bad = reader(f)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise SynshardError(f"{uri}: unreadable {fmt} URL list: {exc}") from None
    except FileNotFoundError:
        raise SynshardError(f"{uri}: no such URL list") from None
    if "url" not in columns:
        raise SynshardError(f"{uri}: URL list has no `url` column")
    return _normalise(columns, bad)


def _read_parquet(f: IO[bytes]) -> tuple[Columns, Bad]:
    return pq.read_table(f).to_pydict(), []


def _read_csv(f: IO[bytes], delimiter: str = ",") -> tuple[Columns, Bad]:
    bad: Bad = []

    def keep(row: Any) -> str:
        line = f" (line {row.number})" if row.number is not None else ""
        bad.append(f"bad csv row{line}: expected {row.expected_columns} columns, "
                   f"got {row.actual_columns}")
        return "skip"

    table = pacsv.read_csv(
        f,
        read_options=pacsv.ReadOptions(use_threads=False),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter, newlines_in_values=True, invalid_row_handler=keep
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in (*TEXT_COLUMNS, "bboxes", "bbox")},
            strings_can_be_null=True,
        ),
    )
    return table.to_pydict(), bad


def _read_tsv(f: IO[bytes]) -> tuple[Columns, Bad]:
    return _read_csv(f, delimiter="\t")


def _read_jsonl(f: IO[bytes]) -> tuple[Columns, Bad]:
    """One JSON object per line; blank lines are skipped, others that fail become bad rows."""
    records: list[dict[str, Any]] = []
    bad: Bad = []
    for number, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            bad.append(f"bad json line {number}: {exc.__class__.__name__}")
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad.append(f"bad json line {number}: not an object")
    names = {"url"} | {k for record in records for k in record}
    return {name: [r.get(name) for r in records] for name in names}, bad


_READERS: dict[str, Callable[[IO[bytes]], tuple[Columns, Bad]]] = {
    "parquet": _read_parquet,
    "csv": _read_csv,
    "tsv": _read_tsv,
    "jsonl": _read_jsonl,
}


def _normalise(columns: Columns, bad: Bad) -> pa.Table:
    """Columns of raw values -> `URLLIST_SCHEMA`; per-row problems become reasons."""
    n = len(columns["url"])
    out: dict[str, list[Any]] = {
        name: [_text(v) for v in columns.get(name, [None] * n)] for name in TEXT_COLUMNS
    }
    nothing = [None] * n
    raw_boxes = [b if b is not None else a for b, a in
                 zip(columns.get("bboxes", nothing), columns.get("bbox", nothing))]
    parsed = [parse_bboxes(value) for value in raw_boxes]
    out["bboxes"] = [boxes for boxes, _ in parsed]
    out["reason"] = [
        _url_reason(url) or box_reason for url, (_, box_reason) in zip(columns["url"], parsed)
    ]
    out["url"] = [u.strip() if isinstance(u, str) and u.strip() else None for u in columns["url"]]
    out["row"] = list(range(n))
    for reason in bad:
        for name in URLLIST_SCHEMA.names:
            out[name].append(reason if name == "reason" else None)
    return pa.table(out, schema=URLLIST_SCHEMA)


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
