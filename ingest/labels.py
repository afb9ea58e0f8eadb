"""Labels files: synsets for flat folders or tars of images, as ImageNet's validation set ships.

A labels file is CSV `file,synset` (header optional), matched on the file's basename; a file named
without its extension (ImageNet's `LOC_val_solution.csv`: `ImageId,PredictionString` whose first
token is the wnid) matches the basename without extension too.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import posixpath
from collections.abc import Mapping

import fsspec
from synshard.transforms.errors import SynshardError

from .layout import as_wnid

Labels = Mapping[str, str]


def parse_labels(text: str, *, name: str = "labels") -> dict[str, str]:
    """Basename -> wnid from CSV text; a first row that names no wnid is a header.

    A malformed row or a basename given two different synsets is a user error (SynshardError),
    caught at planning time, before any worker reads a byte.
    """
    labels: dict[str, str] = {}
    rows = (r for r in enumerate(csv.reader(io.StringIO(text)), 1) if any(c.strip() for c in r[1]))
    for index, (line, row) in enumerate(rows):
        file, wnid = _cells(row)
        if wnid is None and index == 0:
            continue  # header
        if not file or wnid is None:
            raise SynshardError(f"{name} line {line}: expected `file,synset`, got {row!r}")
        key = posixpath.basename(file.replace("\\", "/"))
        if labels.setdefault(key, wnid) != wnid:
            raise SynshardError(f"{name} line {line}: {key} labelled both {labels[key]} and {wnid}")
    return labels


def _cells(row: list[str]) -> tuple[str, str | None]:
    """(file, wnid or None) of a CSV row; the synset cell's first token is the wnid."""
    if len(row) < 2:
        return (row[0].strip() if row else ""), None
    tokens = row[1].split()
    return row[0].strip(), as_wnid(tokens[0]) if tokens else None


def lookup(labels: Labels | None, name: str) -> str | None:
    """The labelled synset of a file path or tar member name, by basename (with or without ext)."""
    if not labels:
        return None
    base = posixpath.basename(name.replace("\\", "/"))
    found = labels.get(base)
    if found is None and "." in base:
        found = labels.get(base.rsplit(".", 1)[0])
    return found


def read_labels(uri: str, storage_options: Mapping | None = None) -> dict[str, str]:
    """Read and parse a labels file from any fsspec URI; a missing or unreadable one raises."""
    try:
        with fsspec.open(uri, "rb", **dict(storage_options or {})) as f:
            raw = f.read()
    except FileNotFoundError:
        raise SynshardError(f"labels file not found: {uri}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SynshardError(f"labels file {uri} is not UTF-8 text: {exc.reason}") from None
    return parse_labels(text, name=uri)


def cached_labels(uri: str, storage_options: Mapping | None = None) -> dict[str, str]:
    """`read_labels`, once per worker process: every read task of a build shares one file."""
    return _cached(uri, json.dumps(storage_options or {}, sort_keys=True, default=str))


@functools.lru_cache(maxsize=4)
def _cached(uri: str, options_json: str) -> dict[str, str]:
    return read_labels(uri, json.loads(options_json))
