"""`synshard gc URI`: remove what no committed manifest references.

Three kinds of debris collect at a release path (DESIGN.md §4):
- shard files under `webdataset/` and `parquet/` that the committed manifest does not list
  (shards of an interrupted build, or of the release an `--overwrite` replaced), and temporary
  `.manifest-*.tmp` / `.part-*.tmp` files of a local write that was killed (shards.atomic);
- staging areas under `_staging/` of builds that were killed or abandoned;
- unfinished S3 multipart uploads under the release prefix (invisible in listings, but billed).

A build writes its new shards next to the committed ones before its manifest commits, so gc must
never run beside a live build: it takes the build lock (synshard.release.lock) for its whole run, and is
refused while a build holds it. `dry_run` takes no lock and changes nothing; it is still refused
while a live build holds the lock, since its list would include that build's new shards.
A manifest that exists but cannot be read stops gc: it never guesses what is referenced.

gc refuses a path without a committed `manifest.json` (`NotARelease`) before touching anything:
a release whose manifest went missing, or a user's own WebDataset folder, is not debris. A shard
is kept while anything at the path could still reference it: the committed manifest, a complete
temporary manifest of a commit that was killed before its rename, or the journal of a build
under `_staging/` (its finished synsets' shard entries, `_shards/*.json`).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Iterator

from synshard.builder.staging import SHARDS_DIR
from synshard.release.lock import LOCK_RELPATH, BuildLock, LockHeld, is_stale, read_lease
from synshard.shards.atomic import PART_PREFIX, TEMP_SUFFIX, is_temporary
from synshard.shards.index import INDEX_DIR
from synshard.shards.layout import MANIFEST_NAME, PARQUET_DIR, WEBDATASET_DIR, ShardEntry, join
from synshard.shards.manifest import Manifest, ManifestError
from synshard.shards.release import open_release, release_fs
from synshard.errors import SynshardError

STAGING_DIR = "_staging"
_TABLE = re.compile(r"^(rejects|duplicates|conflicts|removals)-[0-9a-f]{8}\.parquet$")
_KEEP_IN_STAGING = {LOCK_RELPATH, LOCK_RELPATH + ".guard"}
_TEMP_MANIFEST = re.compile(r"^\.manifest-.*\.tmp$")
_JOURNAL_ENTRIES = re.compile(rf"^{STAGING_DIR}/[^/]+/{SHARDS_DIR}/[^/]+\.json$")


class NotARelease(SynshardError):
    """gc was pointed at a path without a committed manifest: it removes nothing there."""


@dataclass(frozen=True)
class GcReport:
    """What gc removed (or, with dry_run, would remove); paths are release-relative."""

    uri: str
    dry_run: bool
    committed: bool  # a committed manifest was found (else every shard file is debris)
    shards: tuple[str, ...]  # unreferenced shards, their indexes, side tables, temp manifests
    staging: tuple[str, ...]  # files under _staging/ of abandoned builds
    uploads: tuple[str, ...]  # keys of aborted unfinished multipart uploads
    bytes: int  # bytes of the files above

    def summary(self) -> str:
        """One line: how many files of each kind (debris_kind), uploads and bytes."""
        verb = "would remove" if self.dry_run else "removed"
        counts = {kind: 0 for kind in KIND_NAMES if kind != "upload"}
        for path in self.shards:
            counts[debris_kind(path)] += 1
        counts["staging"] = len(self.staging)
        parts = [_count(n, *KIND_NAMES[kind]) for kind, n in counts.items()
                 if n or kind in ("shard", "staging")]
        parts.append(_count(len(self.uploads), *KIND_NAMES["upload"]))
        return f"gc {self.uri}: {verb} {', '.join(parts)} ({self.bytes} bytes)"

    def listing(self) -> list[str]:
        """One line per file (and upload) removed or, with dry_run, to be removed, labelled with
        its kind (debris_kind)."""
        return ([f"{debris_kind(p):9s}{p}" for p in self.shards]
                + [f"{'staging':9s}{p}" for p in self.staging]
                + [f"{'upload':9s}{k}" for k in self.uploads])


# A debris kind -> (singular, plural) for the summary, in its order.
KIND_NAMES = {
    "shard": ("unreferenced shard file", "unreferenced shard files"),
    "index": ("shard index", "shard indexes"),
    "table": ("side table", "side tables"),
    "manifest": ("temporary manifest", "temporary manifests"),
    "partial": ("partial write", "partial writes"),
    "staging": ("staging file", "staging files"),
    "upload": ("unfinished upload", "unfinished uploads"),
}


def debris_kind(relpath: str) -> str:
    """What a release-relative file that gc collects is: `shard` (under webdataset/ or
    parquet/), `index` (index/), `table` (an earlier build's rejects/duplicates/conflicts/removals
    table), `manifest` (a killed commit's temporary manifest), `partial` (a killed write's
    temporary file, shards.atomic) or `staging` (_staging/)."""
    top = relpath.split("/", 1)[0]
    name = relpath.rsplit("/", 1)[-1]
    if top != STAGING_DIR and name.startswith(PART_PREFIX) and name.endswith(TEMP_SUFFIX):
        return "partial"
    if top == INDEX_DIR:
        return "index"
    if top == STAGING_DIR:
        return "staging"
    if "/" not in relpath and _TABLE.match(relpath):
        return "table"
    if "/" not in relpath and _TEMP_MANIFEST.match(relpath):
        return "manifest"
    return "shard"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def collect_garbage(uri: str, storage_options: dict[str, Any] | None = None,
                    dry_run: bool = False) -> GcReport:
    """Remove the debris at `uri`; NotARelease without a committed manifest (nothing touched),
    LockHeld while a build is writing there."""
    fs, root = release_fs(uri, storage_options)
    _committed_or_refuse(fs, root, uri)  # before the lock: its lease would be a file we add
    with _exclusive(uri, storage_options, dry_run):
        referenced, committed = _referenced(uri, storage_options)
        files = _sizes(fs, root)
        referenced |= _still_wanted(fs, root, files)
        shards = sorted(p for p in files if _is_shard_debris(p, referenced))
        staging = sorted(p for p in files
                         if p.startswith(STAGING_DIR + "/") and p not in _KEEP_IN_STAGING)
        uploads = _multipart_uploads(fs, root)
        if not dry_run:
            _remove(fs, root, shards + staging)
            _abort_uploads(fs, uploads)
            _prune_empty_dirs(fs, root)
    return GcReport(uri, dry_run, committed, tuple(shards), tuple(staging),
                    tuple(u["Key"] for u in uploads), sum(files[p] for p in shards + staging))


@contextlib.contextmanager
def _exclusive(uri: str, storage_options: dict[str, Any] | None, dry_run: bool) -> Iterator[None]:
    if dry_run:
        lease = read_lease(uri, storage_options)
        if lease is not None and not is_stale(lease, time.time()):
            raise LockHeld(f"a {lease.describe(time.time())} is writing to {uri}; gc would list "
                           "its new shards as debris: try again when it has finished")
        yield
        return
    with BuildLock(uri, storage_options, purpose="gc"):
        yield


def _committed_or_refuse(fs: Any, root: str, uri: str) -> None:
    if not fs.exists(join(root, MANIFEST_NAME)):
        raise NotARelease(
            f"gc: {uri} is not a committed release (no {MANIFEST_NAME}): nothing removed; gc "
            "only cleans a release path, whose manifest says which files are debris")


def _referenced(uri: str, storage_options: dict[str, Any] | None) -> tuple[set[str], bool]:
    fs, root = release_fs(uri, storage_options)
    _committed_or_refuse(fs, root, uri)  # again, under the lock
    release = open_release(uri, storage_options)  # ManifestError propagates: never guess
    tables = {t["path"] for t in release.manifest.tables.values()}
    return _entry_paths(release.manifest.shards) | tables, True


def _entry_paths(entries: Any) -> set[str]:
    return {e.path for e in entries} | {e.index for e in entries if e.index}


def _still_wanted(fs: Any, root: str, files: dict[str, int]) -> set[str]:
    """Files that another manifest at the path (a complete temp manifest of a killed commit) or
    a build's journal (its finished synsets' shard entries) may still reference."""
    wanted: set[str] = set()
    for rel in files:
        if "/" not in rel and _TEMP_MANIFEST.match(rel):
            with contextlib.suppress(ManifestError, ValueError, OSError):
                manifest = Manifest.from_json(fs.cat_file(join(root, rel)))
                wanted |= _entry_paths(manifest.shards)
                wanted |= {t["path"] for t in manifest.tables.values()}
        elif _JOURNAL_ENTRIES.match(rel):
            with contextlib.suppress(SynshardError, ValueError, KeyError, TypeError, OSError):
                data = json.loads(fs.cat_file(join(root, rel)))
                wanted |= _entry_paths([ShardEntry.from_dict(d) for d in data])
    return wanted


def _is_shard_debris(relpath: str, referenced: set[str]) -> bool:
    top = relpath.split("/", 1)[0]
    if top in (WEBDATASET_DIR, PARQUET_DIR, INDEX_DIR):
        return relpath not in referenced
    if "/" in relpath:
        return False
    if _TABLE.match(relpath):  # side tables of earlier builds (content-hashed names)
        return relpath not in referenced
    return is_temporary(relpath)


def _sizes(fs: Any, root: str) -> dict[str, int]:
    """Release-relative path -> size of every file under the release."""
    prefix = root.rstrip("/") + "/"
    try:
        found = fs.find(root, withdirs=False, detail=True)
    except FileNotFoundError:
        return {}
    out = {}
    for path, info in found.items():
        path = fs._strip_protocol(path)
        if info.get("type", "file") == "file" and path.startswith(prefix):
            out[path[len(prefix):]] = int(info.get("size") or 0)
    return out


def _remove(fs: Any, root: str, relpaths: list[str]) -> None:
    if relpaths:
        fs.rm([join(root, p) for p in relpaths])
        fs.invalidate_cache(root)


def _multipart_uploads(fs: Any, root: str) -> list[dict[str, Any]]:
    """Unfinished multipart uploads under the release prefix (S3 only; [] elsewhere)."""
    if not hasattr(fs, "call_s3"):
        return []
    bucket, _, prefix = root.partition("/")
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix.rstrip("/") + "/" if prefix else ""}
    uploads: list[dict[str, Any]] = []
    while True:
        page = fs.call_s3("list_multipart_uploads", **params)
        uploads += [{"Bucket": bucket, "Key": u["Key"], "UploadId": u["UploadId"]}
                    for u in page.get("Uploads", [])]
        if not page.get("IsTruncated"):
            return sorted(uploads, key=lambda u: (u["Key"], u["UploadId"]))
        params["KeyMarker"] = page["NextKeyMarker"]
        params["UploadIdMarker"] = page["NextUploadIdMarker"]


def _abort_uploads(fs: Any, uploads: list[dict[str, Any]]) -> None:
    for upload in uploads:
        fs.call_s3("abort_multipart_upload", **upload)


def _prune_empty_dirs(fs: Any, root: str) -> None:
    """Local folders left empty under the shard and staging folders (object stores have none)."""
    if "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return
    base = fs._strip_protocol(root)
    for top in (WEBDATASET_DIR, PARQUET_DIR, INDEX_DIR, STAGING_DIR):
        for folder, _, _ in sorted(os.walk(os.path.join(base, top)), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only succeeds when empty
