"""The manifest: what a committed release holds, as stable JSON.

Readers open a release only through `manifest.json`, so it carries everything they need: the class
list, counts, the shard list with sizes and hashes, the input accounting and the side tables. The
JSON is stable (sorted keys, indent 1, shards sorted by path), so two builds of the same inputs give
the same text apart from `created`; `without_created()` is what comparisons use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any, Iterable

from synshard.errors import SynshardError

from .layout import ShardEntry, ShardError, check_relpath

FORMAT_VERSION = 1
ACCOUNTING_KEYS = ("inputs", "accepted", "rejected", "duplicates")


class ManifestError(SynshardError):
    """A manifest that cannot be read: bad JSON, unknown format version, missing or bad fields."""


def utc_now() -> str:
    """The creation time as ISO 8601 UTC, to the second (`2024-05-01T12:00:00Z`)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Manifest:
    """A release's manifest. Plain JSON types everywhere but `shards` (ShardEntry, sorted by path)."""

    name: str
    tool_version: str
    config: dict[str, Any]
    classes: list[dict[str, Any]]  # [{"synset", "label", "lemmas"}], in label order
    counts: dict[str, Any]  # {"total", "by_split": {split: n}, "by_synset": {wnid: {split: n}}}
    shards: tuple[ShardEntry, ...]
    accounting: dict[str, int]  # inputs = accepted + rejected + duplicates
    tables: dict[str, dict[str, Any]]  # {"rejects": {path, rows, bytes, sha256}, "duplicates": ...}
    fingerprint: str
    created: str = field(default_factory=utc_now)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "shards", tuple(sorted(self.shards, key=lambda e: e.path)))

    def without_created(self) -> "Manifest":
        """A copy with an empty creation time: equal for equal builds."""
        return replace(self, created="")

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["shards"] = [e.to_dict() for e in self.shards]
        return data

    def to_json(self) -> str:
        """Stable text: sorted keys, indent 1, trailing newline."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=1, ensure_ascii=False,
                          allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> "Manifest":
        """Validate and build; every problem is a ManifestError that says what is wrong."""
        if not isinstance(data, dict):
            raise ManifestError("manifest is not a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ManifestError(
                f"manifest format_version {version!r} is not supported (this tool reads {FORMAT_VERSION})"
            )
        names = {f.name for f in fields(cls)}
        missing, unknown = sorted(names - set(data)), sorted(set(data) - names)
        if missing or unknown:
            raise ManifestError(f"manifest fields: missing {missing}, unknown {unknown}")
        try:
            shards = tuple(ShardEntry.from_dict(e) for e in data["shards"])
        except (ShardError, TypeError) as exc:
            raise ManifestError(f"manifest shard list: {exc}") from None
        manifest = cls(**{**data, "shards": shards})
        _check_types(manifest)
        return manifest

    @classmethod
    def from_json(cls, text: str | bytes) -> "Manifest":
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"manifest is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _check_types(m: Manifest) -> None:
    expected = {
        "name": str, "tool_version": str, "created": str, "fingerprint": str,
        "config": dict, "classes": list, "counts": dict, "accounting": dict, "tables": dict,
    }  # fmt: skip
    for name, kind in expected.items():
        if not isinstance(getattr(m, name), kind):
            raise ManifestError(f"manifest field {name!r} should be a {kind.__name__}")
    acc = m.accounting
    if any(not isinstance(acc.get(k), int) for k in ACCOUNTING_KEYS):
        raise ManifestError(f"manifest accounting needs integer {list(ACCOUNTING_KEYS)}, got {acc}")
    if acc["inputs"] != acc["accepted"] + acc["rejected"] + acc["duplicates"]:
        raise ManifestError(f"manifest accounting does not add up: {acc}")
    for name, table in m.tables.items():
        if not isinstance(table, dict) or not {"path", "rows", "bytes", "sha256"} <= set(table):
            raise ManifestError(f"manifest table {name!r} needs path, rows, bytes, sha256")
        try:
            check_relpath(table["path"])
        except ShardError as exc:
            raise ManifestError(f"manifest table {name!r}: {exc}") from None


def counts_from_shards(entries: Iterable[ShardEntry], format: str) -> dict[str, Any]:
    """The manifest's `counts` from the shards of one format (every format holds every sample)."""
    by_split: dict[str, int] = {}
    by_synset: dict[str, dict[str, int]] = {}
    for e in entries:
        if e.format != format:
            continue
        by_split[e.split] = by_split.get(e.split, 0) + e.samples
        per = by_synset.setdefault(e.synset, {})
        per[e.split] = per.get(e.split, 0) + e.samples
    return {"total": sum(by_split.values()), "by_split": by_split, "by_synset": by_synset}
