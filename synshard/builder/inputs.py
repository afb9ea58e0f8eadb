"""What a build reads besides its sources' bytes, prepared on the driver before any work:
read tasks of every source, the base release, takedowns, `--dedup-against` hashes, a pinned class
list, and the fingerprint of the release these would make (for the no-op check and the resume
folder). No Ray here.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa

from synshard import __version__
from synshard.config import BuildConfig
from synshard.builder.decide.memory import release
from synshard.builder.decide.incremental import BaseRelease, Takedown, load_base, load_takedown
from synshard.ingest.sources import plan_sources
from synshard.ingest.urltasks import is_url_list, plan_url_lists
from synshard.builder.commit import fingerprint_build
from synshard.errors import SynshardError


@dataclass(frozen=True)
class Inputs:
    """Everything a build reads besides its sources' bytes, prepared before the no-op check."""

    tasks: list
    fingerprint: str  # of the release this build would write
    base: BaseRelease | None
    takedown: Takedown | None
    external: pa.Table | None  # phashes of --dedup-against data


def absolute_uri(uri: str) -> str:
    """One spelling per input: a local path (relative, `~`, `file://`; a tar member after `::`)
    becomes absolute, as sources are recorded; object-store and HTTP URIs stay as they are."""
    head, sep, member = uri.partition("::")
    if "://" in head and not head.startswith("file://"):
        return uri
    return os.path.abspath(os.path.expanduser(head.removeprefix("file://"))) + sep + member


def prepare(cfg: BuildConfig) -> Inputs:
    tasks, sources_fp = plan_inputs(cfg)
    # the listings' temporaries (Arrow's pool and the C heap: a folder's listing columns are
    # C-heap buffers of their exact size) go back to the OS, not kept through the build
    release()
    parts = [sources_fp]
    files = stamp_input_files(cfg)
    if files:  # a build without such inputs keeps the fingerprint it always had
        parts.append(files)
    base = load_base(cfg.base, dict(cfg.storage_options)) if cfg.base else None
    if base is not None:
        parts.append(base.release.manifest.fingerprint)
    takedown = None
    if cfg.remove or cfg.remove_like:
        like = external_hashes(cfg.remove_like, cfg) if cfg.remove_like else None
        radius = cfg.dedup.near_radius if cfg.dedup.near_radius is not None else 0
        takedown = load_takedown(cfg.remove, like, radius, dict(cfg.storage_options))
        parts.append(takedown.fingerprint())
    external = external_hashes(cfg.dedup_against, cfg) if cfg.dedup_against else None
    if external is not None:
        parts.append(repr(sorted(external["phash"].drop_null().to_pylist())))
    fingerprint = fingerprint_build("+".join(parts), cfg.content(), __version__)
    return Inputs(tasks, fingerprint, base, takedown, external)


CONTENT_HASH_MAX = 64 << 20  # single input files up to this size enter by content


def input_files(cfg: BuildConfig) -> list[tuple[str, str]]:
    """(option, URI) of every file or folder a build reads besides its sources and labels."""
    from synshard.synsets.subsets import SUBSETS

    named = [("classes", cfg.classes if cfg.classes not in SUBSETS else None),
             ("votes", cfg.votes), ("boxes", cfg.boxes), ("remove", cfg.remove)]
    return ([(k, v) for k, v in named if v] + [("remove_like", u) for u in cfg.remove_like]
            + [("dedup_against", u) for u in cfg.dedup_against])


def stamp_input_files(cfg: BuildConfig) -> str:
    """A digest of those inputs as they are now, so that an edit in place changes the
    fingerprint: a single file by content (up to CONTENT_HASH_MAX), a folder by every file's
    size and modification stamp (as sources are). A missing input is left to its reader's error."""
    lines = []
    for option, uri in input_files(cfg):
        lines.append(f"{option}\t{uri}")
        lines.extend(_stamp(uri, dict(cfg.storage_options)))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest() if lines else ""


def _stamp(uri: str, options: dict[str, Any]) -> list[str]:
    from synshard.ingest.folders import stamp

    try:
        fs, path = fsspec.core.url_to_fs(uri, **options)
        info = fs.info(path)
        if info.get("type") == "directory":
            found = fs.find(path, withdirs=False, detail=True)
            return [f"{name[len(path):]}\t{i.get('size')}\t{stamp(i)}"
                    for name, i in sorted(found.items())]
        if (info.get("size") or 0) <= CONTENT_HASH_MAX:
            return ["sha256:" + hashlib.sha256(fs.cat_file(path)).hexdigest()]
        return [f"{info.get('size')}\t{stamp(info)}"]
    except FileNotFoundError:
        return ["missing"]


def external_hashes(uris: tuple[str, ...], cfg: BuildConfig) -> pa.Table:
    from synshard.release.external import external_hashes as hashes

    return hashes(list(uris), cfg.transform, dict(cfg.storage_options))


def plan_inputs(cfg: BuildConfig) -> tuple[list, str]:
    """Read tasks of every source (files and tars, URL-list chunks) and their fingerprint."""
    lists = [s for s in cfg.sources if is_url_list(s)]
    others = [s for s in cfg.sources if not is_url_list(s)]
    options = dict(cfg.storage_options)
    tasks: list = []
    parts = []
    if others:
        plan = plan_sources(others, labels=cfg.labels, limit=cfg.limit, storage_options=options,
                            files_per_task=cfg.files_per_task)
        tasks += plan.tasks
        parts.append(plan.fingerprint)
    if lists:
        url_tasks, digest = plan_url_lists(lists, options, limit=cfg.limit,
                                           chunk_rows=cfg.files_per_task)
        tasks += url_tasks
        parts.append(digest)
    return tasks, "+".join(parts)


def pinned_classes(cfg: BuildConfig) -> list[str] | None:
    """`--classes ilsvrc2012` or a file of wnids (one per line): label indices stay stable."""
    if cfg.classes is None:
        return None
    from synshard.synsets.subsets import SUBSETS, load_subset

    if cfg.classes in SUBSETS:
        return load_subset(cfg.classes)
    import fsspec

    try:
        with fsspec.open(cfg.classes, "rt", **dict(cfg.storage_options)) as f:
            wnids = [line.split()[0] for line in f if line.strip() and not line.startswith("#")]
    except FileNotFoundError:
        raise SynshardError(f"class list not found: {cfg.classes}") from None
    if len(set(wnids)) != len(wnids):
        raise SynshardError(f"class list {cfg.classes} repeats a wnid")
    return wnids
