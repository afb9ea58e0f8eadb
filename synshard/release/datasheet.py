"""A release's datasheet: the short Markdown a person reads before training on it.

`datasheet_markdown(release) -> str` reads the facts (manifest, build.json, the side tables, the
licence column of the shards) and `render_datasheet(facts)` turns them into Markdown; the second
is pure, so the wording is tested without files. The lead writes the text as
`<release>/DATASHEET.md` at commit. Following "Datasheets for Datasets" (Gebru et al.), it says
where the images came from, what is in the release, what was done to them, what was dropped and
why, what it does not promise, and what was taken down.

The readers here (`read_build`, `column_counts`; side tables from shards/reader.py) are shared with the HTML
report. Source URIs are shown without credentials (user info, query strings) and removed images
are listed by key and reason only: a takedown log must not republish what it took down.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc

from synshard.shards.layout import BUILD_NAME, join
from synshard.shards.reader import shard_columns, side_table
from synshard.shards.release import Release

# Reject stages (and side tables) that mean "taken down on purpose", not "bad input".
REMOVAL_STAGES = ("takedown", "removal", "remove", "exclude")
REMOVAL_TABLES = ("removals", "takedowns")
MAX_ROWS = 200  # longest table the datasheet prints; the rest is summarised
SMALL_SYNSET = 10  # synsets with fewer images than this are called out as limitations


@dataclass(frozen=True)
class Facts:
    """Everything the datasheet says, gathered once."""

    manifest: Any  # synshard.shards.manifest.Manifest
    build: dict[str, Any] = field(default_factory=dict)
    rejects: pa.Table | None = None
    duplicates: pa.Table | None = None
    licences: Counter = field(default_factory=Counter)  # license value (None: unspecified) -> n
    removals: pa.Table | None = None  # key, reason (and whatever else the removal log holds)


def redact_uri(uri: str) -> str:
    """A source URI fit to publish: no user info, no query or fragment (signed URLs, tokens)."""
    parts = urlsplit(uri)
    if not parts.scheme or not parts.netloc:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_config(value: Any) -> Any:
    """A manifest config (or any JSON value) with every string passed through `redact_uri`."""
    if isinstance(value, dict):
        return {k: redact_config(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_config(v) for v in value]
    return redact_uri(value) if isinstance(value, str) else value


def read_build(release: Release) -> dict[str, Any]:
    """build.json as a dict; {} when it is missing or unreadable (it is informative only)."""
    try:
        data = json.loads(release.fs.cat_file(join(release.root, BUILD_NAME)))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def column_counts(release: Release, column: str) -> Counter:
    """Value counts of one record column over the release's Parquet shards (that column only).

    One shard at a time, counted in Arrow: the memory is one shard's column and the distinct
    values, not a Python object per image of the release."""
    counts: Counter = Counter()
    for entry in release.shards(format="parquet"):
        values = shard_columns(release, [column], [entry])[column]
        for item in pc.value_counts(values).to_pylist():
            counts[item["values"]] += item["counts"]
    return counts


def removal_log(release: Release, rejects: pa.Table | None) -> pa.Table | None:
    """The removal log: a side table the manifest lists, else rejects from a removal stage."""
    for name in REMOVAL_TABLES:
        if name in release.manifest.tables:
            return side_table(release, name)
    if rejects is None or rejects.num_rows == 0:
        return None
    mask = pa.array([s in REMOVAL_STAGES for s in rejects["stage"].to_pylist()])
    removed = rejects.filter(mask)
    return removed if removed.num_rows else None


def gather_facts(release: Release) -> Facts:
    rejects = side_table(release, "rejects")
    return Facts(
        manifest=release.manifest,
        build=read_build(release),
        rejects=rejects,
        duplicates=side_table(release, "duplicates"),
        licences=column_counts(release, "license"),
        removals=removal_log(release, rejects),
    )


def datasheet_markdown(release: Release) -> str:
    """The datasheet of a committed release, as Markdown."""
    return render_datasheet(gather_facts(release))


def render_datasheet(facts: Facts) -> str:
    """The Markdown text (pure)."""
    m = facts.manifest
    sections = [
        f"# Datasheet: {m.name}\n\nCreated {m.created} by synshard {m.tool_version} "
        f"(manifest format {m.format_version}, build fingerprint `{m.fingerprint[:16]}`).",
        _sources(m.config), _composition(m), _accounting(facts), _licences(facts),
        _preprocessing(m.config), _dedup(m.config, facts.duplicates), _limitations(facts),
        _removals(facts.removals),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _md(text: Any) -> str:
    """A value safe inside a Markdown table cell (no pipes, no line breaks)."""
    return str(text).replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _table(header: list[str], rows: Sequence[Sequence[Any]], total: int | None = None) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows[:MAX_ROWS]]
    n = len(rows) if total is None else total
    if n > MAX_ROWS:
        lines.append(f"\n({n - MAX_ROWS:,} more rows not shown.)")
    return "\n".join(lines)


def _sources(config: dict[str, Any]) -> str:
    sources = config.get("sources") or []
    items = "\n".join(f"- `{_md(redact_uri(str(s)))}`" for s in sources) or "- (none recorded)"
    extra = []
    if config.get("labels"):
        labels = _md(redact_uri(str(config["labels"])))
        extra.append(f"Labels for flat sources came from `{labels}`.")
    if config.get("classes"):
        extra.append(f"The class list was pinned to `{_md(config['classes'])}`.")
    return "## Sources\n\n" + items + ("\n\n" + " ".join(extra) if extra else "")


def _composition(m: Any) -> str:
    counts = m.counts
    splits = ", ".join(f"{s} {n:,}" for s, n in sorted(counts.get("by_split", {}).items()))
    lemmas = {c["synset"]: ((c.get("lemmas") or [""])[0], c["label"]) for c in m.classes}
    split_names = sorted(counts.get("by_split", {}))
    rows = []
    for wnid, per in sorted(counts.get("by_synset", {}).items()):
        lemma, label = lemmas.get(wnid, ("", ""))
        rows.append([wnid, label, lemma.replace("_", " ")] + [per.get(s, 0) for s in split_names]
                    + [sum(per.values())])
    head = (f"## Composition\n\n{counts.get('total', 0):,} images ({splits or 'none'}) in "
            f"{len(m.classes):,} classes, {len(m.shards):,} shard files "
            f"({', '.join(sorted({e.format for e in m.shards})) or 'none'}).\n\n")
    return head + _table(["wnid", "label", "lemma"] + split_names + ["total"], rows)


def _accounting(facts: Facts) -> str:
    acc = facts.manifest.accounting
    text = (f"## Input accounting\n\nEvery input ends in exactly one place: {acc['inputs']:,} "
            f"inputs = {acc['accepted']:,} accepted + {acc['rejected']:,} rejected + "
            f"{acc['duplicates']:,} duplicates.")
    if facts.rejects is not None and facts.rejects.num_rows:
        r = facts.rejects
        pairs = Counter(zip(r["stage"].to_pylist(), r["reason"].to_pylist()))
        rows = [[stage, reason, n] for (stage, reason), n in pairs.most_common()]
        text += ("\n\nRejected inputs by stage and reason:\n\n"
                 + _table(["stage", "reason", "inputs"], rows))
    return text


def _licences(facts: Facts) -> str:
    if not facts.licences:
        return "## Licences\n\nNo Parquet shards to read licences from."
    rows = [[lic if lic is not None else "(not given by the source)", n]
            for lic, n in sorted(facts.licences.items(), key=lambda kv: (-kv[1], str(kv[0])))]
    note = ""
    if None in facts.licences:
        note = ("\n\nImages without a licence carry whatever terms their source set; check "
                "them before redistributing.")
    return "## Licences seen\n\n" + _table(["licence", "images"], rows) + note


def _preprocessing(config: dict[str, Any]) -> str:
    t = config.get("transform", {})
    rows = [[k, json.dumps(v)] for k, v in sorted(t.items())]
    return ("## Preprocessing\n\nImages are decoded, EXIF-oriented, converted to sRGB, stripped of "
            "all metadata (EXIF, GPS, ICC), resized and re-encoded as below; originals are kept "
            "only where `keep_original` allows and they fit the size.\n\n"
            + _table(["setting", "value"], rows))


def _dedup(config: dict[str, Any], duplicates: pa.Table | None) -> str:
    rows = [[k, json.dumps(v)] for k, v in sorted(config.get("dedup", {}).items())]
    splits = config.get("splits", {})
    rows += [[f"splits.{k}", json.dumps(v)] for k, v in sorted(splits.items())]
    text = ("## Deduplication and splits\n\nExact copies (same sha256) and, where enabled, near "
            "copies (perceptual hash) are dropped; an evaluation copy beats a training copy. "
            "A sample's split depends only on its key.\n\n" + _table(["setting", "value"], rows))
    if duplicates is not None and duplicates.num_rows:
        kinds = Counter(duplicates["kind"].to_pylist())
        text += "\n\nDropped copies by kind:\n\n" + _table(["kind", "copies"], kinds.most_common())
    return text


def _limitations(facts: Facts) -> str:
    m, items = facts.manifest, []
    small = sorted(w for w, per in m.counts.get("by_synset", {}).items()
                   if sum(per.values()) < SMALL_SYNSET)
    if small:
        items.append(f"{len(small):,} classes have fewer than {SMALL_SYNSET} images "
                     f"({', '.join(small[:20])}{', ...' if len(small) > 20 else ''}).")
    votes = facts.build.get("stats", {}).get("votes") or {}
    if votes:
        items.append(f"Labels were checked by crowd votes ({votes.get('method', '?')}, "
                     f"{votes.get('workers', '?')} workers, {votes.get('spammers', '?')} flagged "
                     "as spammers); the per-image posterior is in the `confidence` field.")
    else:
        items.append("Labels come from the source layout (folder, tar or list) and were not "
                     "verified by people; expect some mislabelled images.")
    if not m.config.get("splits", {}).get("test_fraction"):
        items.append("There is no test split; do not tune and report on the same split.")
    items += [
        "Near-duplicate detection uses a 64-bit perceptual hash: heavy crops, flips and edits "
        "can escape it, and distinct images of the same scene can be merged.",
        "The WordNet 3.0 hierarchy and its labels carry the biases of their sources (ImageNet "
        "removed parts of its person subtree for this reason); review sensitive classes.",
        "Images are a sample of what the sources held, not of the world.",
    ]
    return "## Known limitations\n\n" + "\n".join(f"- {i}" for i in items)


def _removals(removals: pa.Table | None) -> str:
    if removals is None or removals.num_rows == 0:
        return "## Removal log\n\nNothing was taken down from this release."
    n, names = removals.num_rows, removals.column_names
    keys = removals["key"].to_pylist() if "key" in names else [None] * n
    reasons = removals["reason"].to_pylist() if "reason" in names else [""] * n
    rows = [[k or "(no key)", r] for k, r in sorted(zip(keys, reasons), key=lambda kr: str(kr[0]))]
    by_reason = Counter(reasons)
    return (f"## Removal log\n\n{removals.num_rows:,} images were removed on purpose "
            "(listed by key and reason; the removed bytes are not kept).\n\n"
            + _table(["reason", "images"], by_reason.most_common()) + "\n\n"
            + _table(["key", "reason"], rows))
