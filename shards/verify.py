"""Checking a committed release against its manifest.

Full mode downloads every shard, shard index and table once, re-hashing it and recounting its
samples (tar samples / Parquet rows; an index has one row per sample of its shard); quick mode only
lists the folders (fs.find with details, fs.info for the tables) and compares presence and sizes.
Both report files under webdataset/, parquet/ and index/ that the manifest does not list (`extra`:
debris from an interrupted or replaced build), and check the manifest's counts against its own
shard list.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from .index import INDEX_DIR
from .layout import PARQUET_DIR, WEBDATASET_DIR, ShardError, join
from .manifest import Manifest, counts_from_shards
from .parquet import count_parquet_rows
from .release import Release, open_release
from .webdataset import iter_tar_samples

ProblemKind = Literal["missing", "altered", "count", "extra", "size"]
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Problem:
    """One disagreement between a release and its manifest."""

    kind: ProblemKind
    path: str  # release-relative
    detail: str


def verify_release(
    uri: str, quick: bool = False, storage_options: dict[str, Any] | None = None
) -> list[Problem]:
    """Every problem found in the release at `uri`, sorted by path; empty when it is intact."""
    release = open_release(uri, storage_options)
    listed = _listing(release)
    files = [_Expected(e.path, e.bytes, e.sha256, e.samples, e.format == "webdataset")
             for e in release.manifest.shards]  # fmt: skip
    files += [_Expected(t["path"], t["bytes"], t["sha256"], t["rows"], False)
              for _, t in sorted(release.manifest.tables.items())]  # fmt: skip
    files += [_Expected(e.index, e.index_bytes, e.index_sha256, e.samples, False)  # type: ignore[arg-type]
              for e in release.manifest.shards if e.index is not None]  # fmt: skip
    problems = _count_problems(release.manifest)
    for expected in files:
        problems += _check_file(release, expected, listed, quick)
    known = {e.path for e in release.manifest.shards}
    known |= {e.index for e in release.manifest.shards if e.index is not None}
    problems += [
        Problem("extra", path, "shard file not listed in the manifest")
        for path in sorted(listed)
        if path not in known
    ]
    return sorted(problems, key=lambda p: (p.path, p.kind))


@dataclass(frozen=True)
class _Expected:
    """What the manifest says about one file."""

    path: str
    bytes: int
    sha256: str
    count: int  # samples of a shard, rows of a table
    tar: bool  # a WebDataset tar (else Parquet)


def _listing(release: Release) -> dict[str, int]:
    """Release-relative path -> size of every file under the shard folders."""
    sizes: dict[str, int] = {}
    release.fs.invalidate_cache(release.root)  # a long-lived s3fs caches listings: look afresh
    prefix = release.root.rstrip("/") + "/"
    for folder in (WEBDATASET_DIR, PARQUET_DIR, INDEX_DIR):
        found = release.fs.find(join(release.root, folder), withdirs=False, detail=True)
        for path, info in found.items():
            if info.get("type", "file") == "file":
                path = release.fs._strip_protocol(path)
                sizes[path[len(prefix) :] if path.startswith(prefix) else path] = int(info["size"])
    return sizes


def _check_file(
    release: Release, expected: _Expected, listed: dict[str, int], quick: bool
) -> list[Problem]:
    """Presence and size (from the listing or fs.info); in full mode the hash and the count."""
    relpath = expected.path
    actual = listed.get(relpath)
    if actual is None:
        try:
            actual = int(release.fs.info(join(release.root, relpath))["size"])
        except FileNotFoundError:
            return [Problem("missing", relpath, "listed in the manifest, not found")]
    if actual != expected.bytes:
        return [Problem("size", relpath, f"{actual} bytes, manifest says {expected.bytes}")]
    return [] if quick else _check_content(release, expected)


def _check_content(release: Release, expected: _Expected) -> list[Problem]:
    """Hash and recount in one download: a tar is counted as it streams through the hash."""
    relpath, path = expected.path, join(release.root, expected.path)
    try:
        with release.fs.open(path, "rb") as f:
            reader = _HashingReader(f)
            count = count_tar_samples(reader, relpath) if expected.tar else None
            reader.drain()
        if reader.hexdigest() != expected.sha256:
            detail = f"sha256 {reader.hexdigest()}, manifest says {expected.sha256}"
            return [Problem("altered", relpath, detail)]
        if count is None:
            count = count_parquet_rows(release.fs, path)  # footer only: a small ranged read
    except ShardError as exc:
        return [Problem("altered", relpath, str(exc))]
    if count != expected.count:
        return [Problem("count", relpath, f"{count} samples, manifest says {expected.count}")]
    return []


class _HashingReader:
    """A read-only file wrapper that hashes what passes through it (one download per file)."""

    def __init__(self, f: Any) -> None:
        self._f, self._h = f, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self._h.update(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def count_tar_samples(fileobj: Any, name: str) -> int:
    """Samples (distinct consecutive keys) of a tar stream, reading each member once."""
    return sum(1 for _ in iter_tar_samples(fileobj, name))


def _count_problems(manifest: Manifest) -> list[Problem]:
    """The manifest's counts must match the sum of its shards, for every shard format present."""
    problems = []
    for fmt in sorted({e.format for e in manifest.shards}):
        from_shards = counts_from_shards(manifest.shards, fmt)
        for part in ("total", "by_split", "by_synset"):
            if from_shards[part] != manifest.counts.get(part):
                detail = f"counts.{part} disagrees with the {fmt} shards: {from_shards[part]}"
                problems.append(Problem("count", "manifest.json", detail))
    return problems
