"""Committing a build's release: side tables, build.json, then manifest.json (the commit point)."""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from synshard import __version__
from synshard.config import BuildConfig
from synshard.builder.decide.steps import Decisions
from synshard.builder.staging import Staging
from synshard.shards.atomic import put_file, remove_partial_writes
from synshard.shards.layout import BUILD_NAME, join
from synshard.shards.manifest import Manifest, counts_from_shards
from synshard.shards.release import commit_manifest, open_release, write_table
from synshard.errors import SynshardError

def fingerprint_build(inputs: str, content: dict[str, Any], tool_version: str) -> str:
    """Identifies a build by what it reads and every option that changes what it writes."""
    text = json.dumps({"inputs": inputs, "content": content, "tool": tool_version},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def check_existing(cfg: BuildConfig, fingerprint: str) -> Manifest | None:
    """The committed manifest when it is this very build (a no-op); refuse a different one."""
    try:
        release = open_release(cfg.out, dict(cfg.storage_options))
    except SynshardError:
        return None
    if release.manifest.fingerprint == fingerprint:
        return release.manifest
    if not cfg.overwrite:
        raise SynshardError(f"a different release is already committed at {cfg.out}; "
                            "pass --overwrite to replace it")
    return None


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None: strict JSON (build.json)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def class_list(classes: list[str]) -> list[dict[str, Any]]:
    """[{synset, label, lemmas}] in label order; lemmas from WordNet where the wnid is known."""
    from synshard.synsets.hierarchy import load_hierarchy

    hierarchy = load_hierarchy()
    out = []
    for label, wnid in enumerate(classes):
        lemmas = list(hierarchy.lemmas(wnid)) if wnid in hierarchy else []
        out.append({"synset": wnid, "label": label, "lemmas": lemmas})
    return out


def commit_release(staging: Staging, cfg: BuildConfig, decisions: Decisions, entries: list,
                   fingerprint: str, stats: dict[str, Any]) -> Manifest:
    fs, root = staging.fs, staging.root
    remove_partial_writes(fs, root)  # a killed build's half-written files: a resumed build
    # commits the same files as an uninterrupted one
    tables = {
        "rejects": write_table(fs, root, "rejects", decisions.rejects),
        "duplicates": write_table(fs, root, "duplicates", decisions.duplicates),
        "conflicts": write_table(fs, root, "conflicts", decisions.conflicts),
    }
    if cfg.base or cfg.remove or cfg.remove_like:
        tables["removals"] = write_table(fs, root, "removals", decisions.removals)
    counts = counts_from_shards(entries, cfg.formats[0])
    build = {"tool_version": __version__, "fingerprint": fingerprint,
             "run_options": cfg.run_options(), "accounting": decisions.accounting,
             "stats": stats}
    put_file(fs, join(root, BUILD_NAME), (json.dumps(finite(build), indent=1, sort_keys=True,
                                                     default=str, allow_nan=False) + "\n").encode())
    manifest = Manifest(
        name=cfg.release_name(root),
        tool_version=__version__,
        config=cfg.content(),
        classes=class_list(decisions.classes),
        counts=counts,
        shards=tuple(entries),
        accounting=decisions.accounting,
        tables=tables,
        fingerprint=fingerprint,
    )
    commit_manifest(fs, root, manifest)
    write_datasheet(cfg)
    return manifest


DATASHEET_NAME = "DATASHEET.md"


def write_datasheet(cfg: BuildConfig) -> None:
    """The human-readable datasheet beside the manifest (derived from it, so written after)."""
    from synshard.release.datasheet import datasheet_markdown

    release = open_release(cfg.out, dict(cfg.storage_options))
    put_file(release.fs, join(release.root, DATASHEET_NAME), datasheet_markdown(release).encode())
