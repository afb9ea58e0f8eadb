"""Record <-> WebDataset sample conversions, and checks of a batch handed to a shard writer.

A sample is a plain dict keyed by extension, as in the `webdataset` library: `__key__`, the image
(`jpg`/`webp`/`png` from the record's `format`), `cls` (the label as ASCII digits) and `json`
(every record field but `image`, sorted keys, compact, UTF-8). The JSON holds everything needed
to rebuild the record exactly: float32 values survive the float64 detour unchanged, and uint64
`phash` is a plain JSON integer (readers in languages whose numbers are doubles lose its low bits).
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from synshard.transforms.schema import IMAGE_EXTENSIONS, RECORD_SCHEMA

from .layout import NAME_PATTERN, ShardError, check_name

KEY_PATTERN = f"^{NAME_PATTERN}$"
META_FIELDS: tuple[str, ...] = tuple(n for n in RECORD_SCHEMA.names if n != "image")
_EXT_TO_FORMAT = {ext: fmt for fmt, ext in IMAGE_EXTENSIONS.items()}


def image_extension(fmt: str) -> str:
    """`jpeg` -> `jpg`, `webp` -> `webp`, `png` -> `png`."""
    try:
        return IMAGE_EXTENSIONS[fmt]
    except KeyError:
        raise ShardError(f"unknown image format {fmt!r}: use one of {sorted(IMAGE_EXTENSIONS)}") from None


# json.dumps with these options, built once (json.dumps builds an encoder on every call).
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                         allow_nan=False)


def metadata_json(record: dict[str, Any]) -> bytes:
    """Every field but `image`, sorted keys, compact; NaN/inf are refused (not JSON)."""
    return _JSON.encode({name: record[name] for name in META_FIELDS}).encode("utf-8")


def metadata_jsons(records: pa.Table) -> list[bytes]:
    """`metadata_json` of every row of `records` (the META_FIELDS columns), made a column at a
    time: each column's values encoded as `json` encodes them (strings by its own C escaper,
    integers and finite floats by their repr, null as null, anything else by the encoder
    itself), then each row's into one format of its sorted keys. The same bytes as
    `metadata_json` row by row (tests/unit/shards/test_records.py), in a quarter of its time."""
    names = sorted(META_FIELDS)
    columns = [_json_values(records.schema.field(name).type, records[name].to_pylist())
               for name in names]
    template = "{" + ",".join(_JSON.encode(n).replace("%", "%%") + ":%s" for n in names) + "}"
    return [(template % row).encode("utf-8") for row in zip(*columns)]


def _json_values(kind: pa.DataType, values: list[Any]) -> list[str]:
    """Each value as `_JSON` would write it inside a record."""
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        quote = json.encoder.encode_basestring  # what the encoder uses with ensure_ascii=False
        return ["null" if v is None else quote(v) for v in values]
    if pa.types.is_integer(kind):
        return ["null" if v is None else int.__repr__(v) for v in values]
    if pa.types.is_floating(kind):
        return ["null" if v is None else _finite(v) for v in values]
    return [_JSON.encode(v) for v in values]


def _finite(value: float) -> str:
    if not math.isfinite(value):  # as the encoder refuses it (allow_nan=False)
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return float.__repr__(value)


def sample_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """One record (a row as a dict) -> a WebDataset sample dict."""
    return {
        "__key__": record["key"],
        image_extension(record["format"]): record["image"],
        "cls": str(record["label"]).encode("ascii"),
        "json": metadata_json(record),
    }


def record_from_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """A WebDataset sample dict -> a record dict; the parts must agree with each other."""
    key = sample.get("__key__")
    try:
        meta = json.loads(sample["json"])
        images = [ext for ext in sample if ext in _EXT_TO_FORMAT]
        label = int(sample["cls"].decode("ascii"))
    except (KeyError, ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise ShardError(f"sample {key!r} is malformed: {exc}") from None
    if len(images) != 1 or _EXT_TO_FORMAT[images[0]] != meta.get("format"):
        raise ShardError(
            f"sample {key!r}: image parts {images} do not match {meta.get('format')!r}"
        )
    if label != meta.get("label") or key != meta.get("key"):
        raise ShardError(f"sample {key!r}: .cls/.json disagree on label or key")
    if set(meta) != set(META_FIELDS):
        raise ShardError(f"sample {key!r}: json fields {sorted(meta)} != {sorted(META_FIELDS)}")
    return {**meta, "image": sample[images[0]]}


def records_from_samples(samples: Iterable[dict[str, Any]]) -> pa.Table:
    """WebDataset samples -> a RECORD_SCHEMA table, in the samples' order."""
    rows = [record_from_sample(s) for s in samples]
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)


def check_group(records: pa.Table) -> tuple[pa.Table, str, str]:
    """A writer's input: RECORD_SCHEMA, one (split, synset), sorted unique safe keys.

    Returns (records cast to RECORD_SCHEMA, split, synset); a table with RECORD_SCHEMA's columns
    marked nullable is accepted if it holds no nulls where RECORD_SCHEMA forbids them. Violations
    are programming errors upstream, so they raise ShardError.
    """
    if records.schema.names != RECORD_SCHEMA.names or records.schema.types != RECORD_SCHEMA.types:
        raise ShardError(f"records do not have RECORD_SCHEMA: {records.schema}")
    for f in RECORD_SCHEMA:  # what `cast` checks, without casting every column
        if not f.nullable and records[f.name].null_count:
            raise ShardError(f"records: column {f.name!r} holds nulls")
    if not records.schema.equals(RECORD_SCHEMA):  # differs in nullability only
        records = records.cast(RECORD_SCHEMA)
    if records.num_rows == 0:
        raise ShardError("no records to write")
    splits = pc.unique(records["split"]).to_pylist()
    synsets = pc.unique(records["synset"]).to_pylist()
    if len(splits) != 1 or len(synsets) != 1:
        raise ShardError(f"records span several groups: splits {splits}, synsets {synsets}")
    keys = records["key"].combine_chunks()
    if len(keys) > 1 and not pc.all(pc.less(keys[:-1], keys[1:])).as_py():
        raise ShardError("records must be sorted by key, keys unique")
    # every key at once (RE2 `$` is the end of the text, as fullmatch); a bad one is found and
    # reported by check_name
    if not pc.all(pc.match_substring_regex(keys, KEY_PATTERN)).as_py():
        for key in keys.to_pylist():
            check_name("key", key)
    return records, check_name("split", splits[0]), check_name("synset", synsets[0])
