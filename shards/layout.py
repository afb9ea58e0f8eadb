"""Where things live in a release, and the shard list entry that points at them.

A release is a folder (any fsspec URI). Shard names carry their index within (split, synset) and
the first 8 hex digits of the sha256 of their content, so a rebuild writes new names instead of
overwriting files that a committed manifest still references (DESIGN.md §4).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal, Sequence

from synshard.errors import SynshardError

ShardFormat = Literal["webdataset", "parquet"]
SHARD_FORMATS: tuple[str, ...] = ("webdataset", "parquet")

MANIFEST_NAME = "manifest.json"
BUILD_NAME = "build.json"
WEBDATASET_DIR = "webdataset"
PARQUET_DIR = "parquet"

# Split and synset names become folder names and the key becomes tar member names: keep them to
# a safe alphabet (no dots: WebDataset splits names at the first dot; no slashes, no `=`).
NAME_PATTERN = r"[A-Za-z0-9_-]{1,80}"
_NAME = re.compile(NAME_PATTERN)  # fullmatch: no trailing newline


class ShardError(SynshardError):
    """A shard that cannot be written or read as the layout says (bad names, malformed file)."""


def check_name(kind: str, value: str) -> str:
    """Return `value` if it is safe as a path component / tar member stem, else raise ShardError."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ShardError(f"bad {kind} {value!r}: use 1-80 characters from A-Z a-z 0-9 _ -")
    return value


def webdataset_shard_path(split: str, synset: str, index: int, sha256: str) -> str:
    """`webdataset/<split>/<synset>/<synset>-<NNNNNN>-<hash8>.tar`, relative to the release."""
    name = f"{synset}-{index:06d}-{sha256[:8]}.tar"
    return posixpath.join(WEBDATASET_DIR, split, synset, name)


def parquet_shard_path(split: str, synset: str, index: int, sha256: str) -> str:
    """`parquet/split=<split>/synset=<synset>/part-<NNNNNN>-<hash8>.parquet` (Hive layout)."""
    name = f"part-{index:06d}-{sha256[:8]}.parquet"
    return posixpath.join(PARQUET_DIR, f"split={split}", f"synset={synset}", name)


def hive_values(path: str) -> dict[str, str]:
    """The `name=value` folder components of a path (`{"split": ..., "synset": ...}`)."""
    values = {}
    for part in path.split("/")[:-1]:
        name, eq, value = part.partition("=")
        if eq:
            values[name] = value
    return values


def join(root: str, relpath: str) -> str:
    """`root` + `/` + a release-relative posix path (works for local paths and URIs alike)."""
    return root.rstrip("/") + "/" + relpath if root else relpath


def check_relpath(path: str) -> str:
    """A release-relative path from a manifest must stay inside the release."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise ShardError(f"bad release path {path!r}: must be relative, posix, inside the release")
    return path


@dataclass(frozen=True)
class ShardEntry:
    """One shard file of a release, as listed in the manifest."""

    path: str  # relative to the release root, posix
    format: ShardFormat
    split: str
    synset: str
    samples: int
    bytes: int
    sha256: str  # hex of the file's content
    # The shard's key index (shards/index.py); None in releases built before indexes.
    index: str | None = None  # relative to the release root, posix
    index_bytes: int | None = None
    index_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest dict; the index fields only when set, so old manifests read back equal."""
        return {k: v for k, v in asdict(self).items() if v is not None or k not in _INDEX_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ShardEntry":
        """Build from a manifest dict, checking the types so a hand-edited manifest fails clearly."""
        try:
            entry = cls(
                path=check_relpath(str(data["path"])),
                format=data["format"],
                split=str(data["split"]),
                synset=str(data["synset"]),
                samples=_int(data["samples"]),
                bytes=_int(data["bytes"]),
                sha256=str(data["sha256"]),
                **_index_fields(data),
            )
        except KeyError as exc:
            raise ShardError(f"shard entry {data!r} lacks {exc.args[0]!r}") from None
        if entry.format not in SHARD_FORMATS:
            raise ShardError(f"shard {entry.path}: unknown format {entry.format!r}")
        return entry


_INDEX_FIELDS = ("index", "index_bytes", "index_sha256")


def _index_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The optional index fields of a manifest shard entry: all three or none."""
    present = [k for k in _INDEX_FIELDS if data.get(k) is not None]
    if not present:
        return {}
    if len(present) != len(_INDEX_FIELDS):
        raise ShardError(f"shard {data.get('path')!r}: index fields {present} need all of "
                         f"{list(_INDEX_FIELDS)}")
    return {"index": check_relpath(str(data["index"])), "index_bytes": _int(data["index_bytes"]),
            "index_sha256": str(data["index_sha256"])}


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ShardError(f"expected a non-negative integer, got {value!r}")
    return value


def cut_by_bytes(
    sizes: Sequence[int], target_bytes: int, finish: Callable[[int], int] = lambda n: n
) -> list[tuple[int, int]]:
    """Split items into consecutive runs `[start, stop)` whose size stays within `target_bytes`.

    A run is cut when adding the next item would make `finish(sum of sizes)` (the file size,
    including any fixed overhead or padding) pass the target; every run has at least one item, so
    an item larger than the target gets a shard of its own. `finish` must not decrease as the
    sum grows: then items that fit in one run all together are one run (most synsets' shards),
    found without a step per item.
    """
    if target_bytes <= 0:
        raise ShardError(f"bad target_bytes {target_bytes}: must be positive")
    if sizes and finish(sum(sizes)) <= target_bytes:
        return [(0, len(sizes))]
    runs: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and finish(total + size) > target_bytes:
            runs.append((start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        runs.append((start, len(sizes)))
    return runs
