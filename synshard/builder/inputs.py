"""What a build reads besides its sources' bytes, prepared on the driver before any work:
read tasks of every source, the base release, takedowns, `--dedup-against` hashes, a pinned class
list, and the fingerprint of the release these would make (for the no-op check and the resume
folder). No Ray here.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from synshard import __version__
from synshard.config import BuildConfig
from synshard.builder.decide.incremental import BaseRelease, Takedown, load_base, load_takedown
from synshard.ingest.sources import plan_sources
from synshard.ingest.urltasks import is_url_list, plan_url_lists
from synshard.builder.commit import fingerprint_build
from synshard.transforms.errors import SynshardError


@dataclass(frozen=True)
class Inputs:
    """Everything a build reads besides its sources' bytes, prepared before the no-op check."""

    tasks: list
    fingerprint: str  # of the release this build would write
    base: BaseRelease | None
    takedown: Takedown | None
    external: pa.Table | None  # phashes of --dedup-against data


def prepare(cfg: BuildConfig) -> Inputs:
    tasks, sources_fp = plan_inputs(cfg)
    parts = [sources_fp]
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
