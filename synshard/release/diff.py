"""What changed between two releases: `synshard diff OLD NEW [--json]`.

Pure: everything here works on two `Manifest`s (and, optionally, sample keys that the caller read
from the shards), so it is tested without files. The manifests alone give synsets added and
removed, per-(synset, split) count changes, class-label changes and which shards were reused
(same path and same sha256: the bytes were not rewritten) versus written anew. Which *images*
came and went needs keys, and keys live in the shards; `shards_to_read` names the few shards
whose keys matter, so a diff of an incremental rebuild reads only the rewritten shards, not the
whole release (a reused shard holds the same keys in both releases, and a key lives in exactly one
shard per format, so keys outside the reused shards decide every addition and removal).

Build options are compared too: the manifest's `config` holds every option that can change the
release's bytes (`BuildConfig.content()`), so two releases of the same inputs built with another
`--resize` differ there even when no image changed (a small image is never upscaled); build.json's
`run_options` (workers, batch size, fetch limits: the same bytes) are listed apart, when the
caller passes them, and do not make a diff non-empty.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from synshard.shards.layout import ShardEntry
from synshard.shards.manifest import Manifest

# Key reading prefers Parquet: one column read, image bytes untouched.
KEY_FORMATS = ("parquet", "webdataset")


@dataclass(frozen=True)
class CountChange:
    """One (synset, split) whose sample count differs; 0 stands for absent."""

    synset: str
    split: str
    old: int
    new: int

    @property
    def delta(self) -> int:
        return self.new - self.old


@dataclass(frozen=True)
class LabelChange:
    """A synset kept by both releases whose label index moved (class list not pinned)."""

    synset: str
    old: int
    new: int


@dataclass(frozen=True)
class OptionChange:
    """One build option (dotted path into the recorded options) whose value differs; a side that
    did not record it (an older tool) holds NOT_RECORDED."""

    option: str
    old: Any
    new: Any


NOT_RECORDED = "(not recorded)"
RUN_OPTIONS_IGNORED = ("out",)  # always differs between two releases: not worth a line


@dataclass(frozen=True)
class Diff:
    """The difference OLD -> NEW. Key lists are None when keys were not read (manifest-only)."""

    old_name: str
    new_name: str
    synsets_added: list[str]
    synsets_removed: list[str]
    count_changes: list[CountChange]
    label_changes: list[LabelChange]
    shards_reused: list[str]  # paths present in both with the same sha256
    shards_written: list[str]  # paths in NEW only (new or rewritten content)
    shards_dropped: list[str]  # paths in OLD only
    accounting: dict[str, dict[str, int]]  # {"old": {...}, "new": {...}}
    images_added: list[str] | None = None
    images_removed: list[str] | None = None
    totals: dict[str, int] = field(default_factory=dict)  # {"old": n, "new": n}
    option_changes: list[OptionChange] = field(default_factory=list)  # manifest config
    run_option_changes: list[OptionChange] = field(default_factory=list)  # build.json

    @property
    def empty(self) -> bool:
        """True when NEW holds exactly OLD's samples, labels and shard files and was built with
        the same options (run options, which cannot change the bytes, aside)."""
        return not (
            self.synsets_added or self.synsets_removed or self.count_changes
            or self.label_changes or self.shards_written or self.shards_dropped
            or self.images_added or self.images_removed or self.option_changes
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for `--json`; `empty` is included so scripts need not recompute it."""
        data = asdict(self)
        for change in data["count_changes"]:
            change["delta"] = change["new"] - change["old"]
        data["empty"] = self.empty
        return data


def diff_manifests(
    old: Manifest,
    new: Manifest,
    old_keys: Iterable[str] | None = None,
    new_keys: Iterable[str] | None = None,
    old_run: dict[str, Any] | None = None,
    new_run: dict[str, Any] | None = None,
) -> Diff:
    """The Diff OLD -> NEW from the manifests, plus image keys when both key lists are given,
    plus run options (build.json's `run_options`) when both are given.

    The key lists may be every key of each release or only the keys of the shards
    `shards_to_read` names: set differences give the same additions and removals either way.
    """
    run_changes = []
    if old_run is not None and new_run is not None:
        run_changes = [c for c in option_changes(old_run, new_run)
                       if c.option.split(".", 1)[0] not in RUN_OPTIONS_IGNORED]
    old_syn, new_syn = set(old.counts["by_synset"]), set(new.counts["by_synset"])
    reused, written, dropped = shard_changes(old.shards, new.shards)
    added = removed = None
    if old_keys is not None and new_keys is not None:
        old_set, new_set = set(old_keys), set(new_keys)
        added, removed = sorted(new_set - old_set), sorted(old_set - new_set)
    return Diff(
        old_name=old.name,
        new_name=new.name,
        synsets_added=sorted(new_syn - old_syn),
        synsets_removed=sorted(old_syn - new_syn),
        count_changes=count_changes(old.counts["by_synset"], new.counts["by_synset"]),
        label_changes=label_changes(old.classes, new.classes),
        shards_reused=reused,
        shards_written=written,
        shards_dropped=dropped,
        accounting={"old": dict(old.accounting), "new": dict(new.accounting)},
        images_added=added,
        images_removed=removed,
        totals={"old": int(old.counts.get("total", 0)), "new": int(new.counts.get("total", 0))},
        option_changes=option_changes(old.config, new.config),
        run_option_changes=run_changes,
    )


def option_changes(old: dict[str, Any], new: dict[str, Any]) -> list[OptionChange]:
    """Every option whose value differs, as dotted paths (`transform.resize`), sorted; nested
    tables are compared key by key, lists as whole values."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    return [OptionChange(k, flat_old.get(k, NOT_RECORDED), flat_new.get(k, NOT_RECORDED))
            for k in sorted(set(flat_old) | set(flat_new))
            if flat_old.get(k, NOT_RECORDED) != flat_new.get(k, NOT_RECORDED)]


def _flatten(options: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def count_changes(
    old: dict[str, dict[str, int]], new: dict[str, dict[str, int]]
) -> list[CountChange]:
    """Every (synset, split) whose count differs, sorted by synset then split."""
    changes = []
    for synset in sorted(set(old) | set(new)):
        o, n = old.get(synset, {}), new.get(synset, {})
        for split in sorted(set(o) | set(n)):
            if o.get(split, 0) != n.get(split, 0):
                changes.append(CountChange(synset, split, o.get(split, 0), n.get(split, 0)))
    return changes


def label_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[LabelChange]:
    """Synsets in both class lists whose label index differs (readers must remap those)."""
    old_labels = {c["synset"]: c["label"] for c in old}
    new_labels = {c["synset"]: c["label"] for c in new}
    return [
        LabelChange(s, old_labels[s], new_labels[s])
        for s in sorted(set(old_labels) & set(new_labels))
        if old_labels[s] != new_labels[s]
    ]


def shard_changes(
    old: Iterable[ShardEntry], new: Iterable[ShardEntry]
) -> tuple[list[str], list[str], list[str]]:
    """(reused, written, dropped) shard paths. Reused means same path *and* same sha256.

    Shard names carry a content hash, so a rewritten shard normally has a new path; comparing the
    full sha256 as well catches a file whose name was kept but whose content changed.
    """
    old_ids = {(e.path, e.sha256) for e in old}
    new_ids = {(e.path, e.sha256) for e in new}
    return (
        sorted(p for p, _ in new_ids & old_ids),
        sorted(p for p, _ in new_ids - old_ids),
        sorted(p for p, _ in old_ids - new_ids),
    )


def key_format(old: Manifest, new: Manifest) -> tuple[str | None, str | None]:
    """The shard format to read keys from on each side: a shared one when possible (Parquet
    first), so that reused shards can be skipped; None where a release has no shards."""
    old_formats = {e.format for e in old.shards}
    new_formats = {e.format for e in new.shards}
    for fmt in KEY_FORMATS:
        if fmt in old_formats and fmt in new_formats:
            return fmt, fmt
    pick = lambda formats: next((f for f in KEY_FORMATS if f in formats), None)  # noqa: E731
    return pick(old_formats), pick(new_formats)


def shards_to_read(old: Manifest, new: Manifest) -> tuple[list[ShardEntry], list[ShardEntry]]:
    """The shards whose keys decide images added/removed: one format a side, reused ones left out.

    When both sides share a format, a shard with the same path and sha256 on both sides holds the
    same keys and is skipped; otherwise every shard of the chosen format is read.
    """
    old_fmt, new_fmt = key_format(old, new)
    old_sel = [e for e in old.shards if e.format == old_fmt]
    new_sel = [e for e in new.shards if e.format == new_fmt]
    if old_fmt is not None and old_fmt == new_fmt:
        shared = {(e.path, e.sha256) for e in old_sel} & {(e.path, e.sha256) for e in new_sel}
        old_sel = [e for e in old_sel if (e.path, e.sha256) not in shared]
        new_sel = [e for e in new_sel if (e.path, e.sha256) not in shared]
    return old_sel, new_sel


def render_diff(diff: Diff, max_keys: int = 20) -> str:
    """The terminal view: one section per kind of change; long key lists are cut to `max_keys`."""
    if diff.empty:
        n = diff.totals.get("new", 0)
        head = f"{diff.old_name} -> {diff.new_name}: no changes ({n:,} samples, same options)"
        return "\n".join([head] + _option_section("run options changed (same bytes)",
                                                  diff.run_option_changes, max_keys))
    lines = [f"{diff.old_name} -> {diff.new_name}: samples "
             f"{diff.totals.get('old', 0):,} -> {diff.totals.get('new', 0):,}"]
    lines += _option_section("options changed", diff.option_changes, max_keys)
    lines += _option_section("run options changed (same bytes)", diff.run_option_changes, max_keys)
    lines += _list_section("synsets added", diff.synsets_added, max_keys)
    lines += _list_section("synsets removed", diff.synsets_removed, max_keys)
    if diff.count_changes:
        lines.append(f"count changes ({len(diff.count_changes)}):")
        lines += [f"  {c.synset} {c.split}: {c.old} -> {c.new} ({c.delta:+d})"
                  for c in diff.count_changes[:max_keys]]
        lines += _more(len(diff.count_changes), max_keys)
    if diff.label_changes:
        lines.append(f"label changes ({len(diff.label_changes)}):")
        lines += [f"  {c.synset}: {c.old} -> {c.new}" for c in diff.label_changes[:max_keys]]
        lines += _more(len(diff.label_changes), max_keys)
    if diff.images_added is not None and diff.images_removed is not None:
        lines += _list_section("images added", diff.images_added, max_keys)
        lines += _list_section("images removed", diff.images_removed, max_keys)
    lines.append(f"shards: {len(diff.shards_reused)} reused, {len(diff.shards_written)} written, "
                 f"{len(diff.shards_dropped)} dropped")
    return "\n".join(lines)


def _option_section(title: str, changes: list[OptionChange], limit: int) -> list[str]:
    if not changes:
        return []
    lines = [f"{title} ({len(changes)}):"]
    lines += [f"  {c.option}: {_value(c.old)} -> {_value(c.new)}" for c in changes[:limit]]
    return lines + _more(len(changes), limit)


def _value(value: Any, width: int = 100) -> str:
    """An option value as one short line: strings bare, the rest as JSON, long ones cut."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def _list_section(title: str, items: list[str], limit: int) -> list[str]:
    if not items:
        return []
    head = [f"{title} ({len(items)}):"]
    return head + [f"  {x}" for x in items[:limit]] + _more(len(items), limit)


def _more(n: int, limit: int) -> list[str]:
    return [f"  ... and {n - limit} more (use --json for all)"] if n > limit else []
