"""`synshard report URI [-o report.html]`: one self-contained HTML page about a release.

The page needs no network to view: plotly.js is embedded inline once (`include_plotlyjs=True` on
the first figure), thumbnails are small JPEG data URIs, styles are inline. It shows the release
summary and input accounting, a treemap of the synset hierarchy sized by image count, per-split
and per-synset counts, sample thumbnails per synset, rejects by reason and duplicates by kind,
per-stage throughput from build.json, and worker quality when votes were used.

Gathering reads the manifest, build.json, the side tables and a few images per synset (first rows
of one shard each: the cost is bounded by the caps below, not by the release size); rendering is
pure. Every string from the release is HTML-escaped (sources are untrusted input) and source URIs
are shown without credentials.
"""
from __future__ import annotations

import base64
import html
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

import pyarrow as pa

from synshard.release.datasheet import (
    read_build,
    redact_config,
    redact_uri,
    removal_log,
)
from synshard.shards.layout import ShardError
from synshard.shards.reader import first_images, side_table
from synshard.shards.release import Release, open_release
from synshard.synsets.hierarchy import ROOT, Hierarchy, load_hierarchy
from synshard.synsets.tree import counts_from_manifest
from synshard.release.thumbnails import THUMBNAIL_ERRORS, jpeg_thumbnail

THUMB_SIDE = 96  # longer side of a thumbnail, pixels
THUMB_QUALITY = 70
MAX_THUMB_SYNSETS = 200  # synsets that get thumbnails (the largest first)
MAX_TABLE_ROWS = 1000  # per-synset table rows
MAX_BARS = 25  # categories per bar chart; the rest is summed as "other"
UNKNOWN = "unknown"
# One hue per top-level branch (Plotly's "Set2"-like qualitative palette, colour-blind friendly).
TREEMAP_COLORS = ["#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494",
                  "#b3b3b3"]  # treemap parent of wnids that are not WordNet 3.0 nouns


@dataclass(frozen=True)
class ReportData:
    """What the page shows, gathered once."""

    release: Release
    build: dict[str, Any] = field(default_factory=dict)
    rejects: pa.Table | None = None
    duplicates: pa.Table | None = None
    removals: pa.Table | None = None
    thumbnails: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # wnid -> (key, uri)


def write_report(uri: str, out: str, thumbnails_per_synset: int = 6,
                 storage_options: dict[str, Any] | None = None) -> str:
    """Gather, render and write the report to `out` (any fsspec URI); returns `out`."""
    import fsspec

    release = open_release(uri, storage_options)
    text = render_report(gather(release, thumbnails_per_synset))
    with fsspec.open(out, "w", encoding="utf-8") as f:
        f.write(text)
    return out


def gather(release: Release, thumbnails_per_synset: int = 6) -> ReportData:
    rejects = side_table(release, "rejects")
    return ReportData(
        release=release,
        build=read_build(release),
        rejects=rejects,
        duplicates=side_table(release, "duplicates"),
        removals=removal_log(release, rejects),
        thumbnails=read_thumbnails(release, thumbnails_per_synset),
    )


def read_thumbnails(release: Release, per_synset: int) -> dict[str, list[tuple[str, str]]]:
    """Up to `per_synset` (key, data URI) pairs for each of the largest MAX_THUMB_SYNSETS synsets,
    from the first rows of its shards (Parquet preferred: only two columns are read)."""
    if per_synset <= 0:
        return {}
    counts = counts_from_manifest({"counts": release.manifest.counts})
    largest = sorted(counts, key=lambda w: (-counts[w], w))[:MAX_THUMB_SYNSETS]
    out = {}
    for wnid in largest:
        shards = release.shards(synset=wnid, format="parquet") or release.shards(synset=wnid)
        images: list[tuple[str, bytes]] = []
        for entry in shards:  # usually one shard is enough; small synsets span their splits
            images += _first_images(release, entry, per_synset - len(images))
            if len(images) >= per_synset:
                break
        out[wnid] = [(k, uri) for k, uri in ((k, thumbnail_uri(b)) for k, b in images) if uri]
    return out


def _first_images(release: Release, entry: Any, n: int) -> list[tuple[str, bytes]]:
    try:
        return first_images(release, entry, n)
    except ShardError:
        return []  # an unreadable shard shows no thumbnails; `synshard verify` reports it


def thumbnail_uri(data: bytes | None) -> str | None:
    """A small JPEG data URI of an image, or None when it cannot be decoded."""
    if not data:
        return None
    try:
        thumb = jpeg_thumbnail(data, THUMB_SIDE, THUMB_QUALITY)
    except THUMBNAIL_ERRORS:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(thumb).decode("ascii")


def treemap_nodes(hierarchy: Hierarchy, counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Treemap nodes `{id, parent, label, value, own}`: a tree where each image counts once.

    The WordNet DAG puts a synset under several parents; here each synset with images hangs on
    one path (`path_to_root`: shortest, deterministic), so `value` (images in the subtree, with
    branchvalues="total") is exact. Nodes without images of their own and with a single child are
    folded away, and the map starts where the tree first branches, so its first levels are not
    `entity > physical entity > object > ...`.
    """
    parent, own, total = _single_path_tree(hierarchy, counts)
    kids = Counter(parent.values())
    fold = {w for w in total if w != UNKNOWN and own[w] == 0 and kids[w] == 1}
    top = ROOT  # the map starts where the tree first branches (or holds images itself)
    while top in fold:
        top = next(c for c, p in parent.items() if p == top)

    def shown_parent(w: str) -> str:
        if w == top:
            return ""
        p = parent[w]
        while p in fold:
            p = parent[p]
        return p

    def label(w: str) -> str:
        if w == UNKNOWN:
            return "not in WordNet 3.0"
        return hierarchy.get(w).name if w in hierarchy else w

    nodes = [{"id": w, "parent": shown_parent(w), "label": label(w), "value": total[w],
              "own": own[w]} for w in sorted(total) if w not in fold or w == top]
    return nodes or [{"id": ROOT, "parent": "", "label": label(ROOT), "value": 0, "own": 0}]


def _single_path_tree(
    hierarchy: Hierarchy, counts: Mapping[str, int]
) -> tuple[dict[str, str], Counter[str], Counter[str]]:
    """(parent of each node, images labelled with it, images in its subtree) on single paths."""
    parent: dict[str, str] = {}
    own: Counter[str] = Counter()
    for wnid, n in counts.items():
        if n <= 0:
            continue
        own[wnid] += n
        path = hierarchy.path_to_root(wnid) if wnid in hierarchy else (wnid, UNKNOWN, ROOT)
        for child, up in zip(path, path[1:]):
            parent.setdefault(child, up)
    total: Counter[str] = Counter()
    for wnid, n in own.items():
        node: str | None = wnid
        while node is not None:
            total[node] += n
            node = parent.get(node)
    return parent, own, total


def treemap_figure(nodes: list[dict[str, Any]]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure(go.Treemap(
        ids=[n["id"] for n in nodes], parents=[n["parent"] for n in nodes],
        labels=[n["label"] for n in nodes], values=[n["value"] for n in nodes],
        customdata=[[n["own"]] for n in nodes], branchvalues="total", maxdepth=4,
        hovertemplate="<b>%{label}</b> (%{id})<br>%{value:,} images in subtree"
                      "<br>%{customdata[0]:,} labelled with this synset<extra></extra>",
        textinfo="label+value",
    ))  # fmt: skip
    fig.update_layout(margin=dict(t=10, l=10, r=10, b=10), height=560,
                      treemapcolorway=TREEMAP_COLORS, extendtreemapcolors=True)
    return fig


def bar_figure(counts: Mapping[str, float], title: str, unit: str = "") -> Any:
    """A horizontal bar chart, largest first, at most MAX_BARS bars (the rest as "other")."""
    import plotly.graph_objects as go

    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > MAX_BARS:
        items = items[: MAX_BARS - 1] + [("other", sum(v for _, v in items[MAX_BARS - 1:]))]
    labels = [k if len(k) <= 70 else k[:67] + "..." for k, _ in items]
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=labels, orientation="h",
                           hovertemplate="%{y}: %{x:,}" + unit + "<extra></extra>"))
    fig.update_layout(title=title, yaxis=dict(autorange="reversed"), height=120 + 28 * len(items),
                      margin=dict(t=40, l=10, r=10, b=30))
    return fig


def _figure_html(fig: Any, div_id: str, first: bool = False) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=first, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: list[str], rows: list[list[Any]], limit: int = MAX_TABLE_ROWS) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows[:limit])
    more = ""
    if len(rows) > limit:
        more = f"<p class=note>{len(rows) - limit:,} more rows not shown.</p>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _section(title: str, body: str, sid: str) -> str:
    return f'<section id="{sid}"><h2>{_e(title)}</h2>{body}</section>'


def _summary(data: ReportData) -> str:
    m = data.release.manifest
    acc = m.accounting
    cards = [("images", m.counts.get("total", 0)), ("classes", len(m.classes)),
             ("shards", len(m.shards)), ("GB", round(sum(e.bytes for e in m.shards) / 1e9, 3)),
             ("inputs", acc["inputs"]), ("accepted", acc["accepted"]),
             ("rejected", acc["rejected"]), ("duplicates", acc["duplicates"])]
    html_cards = "".join(f'<div class=card><b>{v:,}</b><span>{_e(k)}</span></div>'
                         for k, v in cards)
    sources = ", ".join(redact_uri(str(s)) for s in m.config.get("sources") or []) or "none"
    return (f"<div class=cards>{html_cards}</div><p>Every input ends in exactly one place: "
            f"{acc['inputs']:,} inputs = {acc['accepted']:,} accepted + {acc['rejected']:,} "
            f"rejected + {acc['duplicates']:,} duplicates. Sources: {_e(sources)}.</p>")


def _counts_section(m: Any) -> str:
    by_split = m.counts.get("by_split", {})
    splits = sorted(by_split)
    lemmas = {c["synset"]: c for c in m.classes}
    rows = []
    for wnid, per in sorted(m.counts.get("by_synset", {}).items(), key=lambda kv: kv[0]):
        c = lemmas.get(wnid, {})
        rows.append([wnid, c.get("label", ""), ", ".join(c.get("lemmas", [])[:3]).replace("_", " ")]
                    + [per.get(s, 0) for s in splits] + [sum(per.values())])
    fig = bar_figure(by_split, "images per split")
    return (_figure_html(fig, "splits-chart") +
            _table(["wnid", "label", "lemmas"] + splits + ["total"], rows))


def _thumbs_section(data: ReportData) -> str:
    if not data.thumbnails:
        return "<p class=note>No thumbnails.</p>"
    names = {c["synset"]: ", ".join(c.get("lemmas", [])[:2]).replace("_", " ")
             for c in data.release.manifest.classes}
    rows = []
    for wnid, thumbs in data.thumbnails.items():
        imgs = "".join(f'<img src="{uri}" alt="{_e(key)}" title="{_e(key)}" loading="lazy">'
                       for key, uri in thumbs)
        rows.append(f'<div class=thumbrow><div class=thumbname>{_e(wnid)}<br>'
                    f'<small>{_e(names.get(wnid, ""))}</small></div>{imgs}</div>')
    total = len(data.release.manifest.counts.get("by_synset", {}))
    note = (f"<p class=note>Thumbnails for the {len(rows):,} largest of {total:,} synsets.</p>"
            if total > len(rows) else "")
    return note + "".join(rows)


def _table_counts(table: pa.Table | None, *columns: str) -> Counter:
    if table is None or table.num_rows == 0:
        return Counter()
    parts = [table[c].to_pylist() for c in columns]
    return Counter(" / ".join(str(v) for v in vals) for vals in zip(*parts))


def _dropped_section(data: ReportData) -> str:
    out = []
    rejects = _table_counts(data.rejects, "stage", "reason")
    dups = _table_counts(data.duplicates, "kind")
    if rejects:
        out.append(_figure_html(bar_figure(rejects, "rejects by stage / reason"), "rejects-chart"))
    if dups:
        out.append(_figure_html(bar_figure(dups, "duplicates by kind"), "duplicates-chart"))
    removals = _table_counts(data.removals, "reason")
    if removals:
        out.append(_figure_html(bar_figure(removals, "removed on purpose, by reason"),
                                "removals-chart"))
    return "".join(out) or "<p class=note>Nothing was rejected or deduplicated.</p>"


def _throughput_section(data: ReportData) -> str:
    stats = data.build.get("stats") or {}
    timings = {k: float(v) for k, v in (stats.get("timings_s") or {}).items()
               if isinstance(v, (int, float))}
    if not timings:
        return "<p class=note>No build.json timings.</p>"
    inputs = data.release.manifest.accounting["inputs"]
    rows = [[stage, f"{s:.2f}", f"{inputs / s:,.0f}" if s > 0 else "-"]
            for stage, s in timings.items()]
    fig = bar_figure(timings, "seconds per stage", unit=" s")
    cluster = stats.get("cluster") or {}
    address = cluster.get("address")
    where = (f"<p>Cluster: {_e(cluster.get('nodes', '?'))} node(s), {_e(cluster.get('cpus', '?'))} "
             f"CPUs{f' ({_e(address)})' if address not in (None, 'None') else ''}.</p>"
             if cluster else "")
    return where + _figure_html(fig, "throughput-chart") + _table(
        ["stage", "seconds", f"inputs/s ({inputs:,} inputs)"], rows)


def _votes_section(data: ReportData) -> str:
    votes = (data.build.get("stats") or {}).get("votes") or {}
    if not votes:
        return ""
    rows = [[k, json.dumps(v)] for k, v in sorted(votes.items())]
    return _section("Worker quality (crowd votes)", _table(["measure", "value"], rows), "votes")


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;
padding:1rem 2rem;color:#1d2330;background:#fafbfc}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #d8dde6;padding-bottom:.3rem;margin-top:2rem}
.meta{color:#5a6478}.note{color:#5a6478;font-style:italic}
.cards{display:flex;flex-wrap:wrap;gap:.6rem}.card{background:#fff;border:1px solid #d8dde6;
border-radius:6px;padding:.5rem .9rem;min-width:6rem}.card b{display:block;font-size:1.4rem}
.card span{color:#5a6478;font-size:.85rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem;background:#fff}
td,th{border:1px solid #d8dde6;padding:.25rem .6rem;text-align:left}th{background:#eef1f6}
.thumbrow{display:flex;align-items:center;gap:6px;margin:6px 0}
.thumbname{width:10rem;font-family:monospace;font-size:.85rem}
.thumbrow img{height:72px;border-radius:3px;border:1px solid #d8dde6}
"""


def render_report(data: ReportData) -> str:
    """The whole page as one HTML string (pure, given the gathered data)."""
    m = data.release.manifest
    counts = counts_from_manifest({"counts": m.counts})
    config = json.dumps(redact_config(m.config), indent=1, sort_keys=True)
    treemap = _figure_html(treemap_figure(treemap_nodes(load_hierarchy(), counts)),
                           "treemap", first=True)
    sections = [
        _section("Summary and input accounting", _summary(data), "summary"),
        _section("Synset hierarchy (area: images; click to zoom)", treemap, "hierarchy"),
        _section("Counts per split and synset", _counts_section(m), "counts"),
        _section("Sample thumbnails", _thumbs_section(data), "thumbnails"),
        _section("Rejects and duplicates", _dropped_section(data), "dropped"),
        _section("Build throughput", _throughput_section(data), "throughput"),
        _votes_section(data),
        _section("Build configuration", f"<pre>{_e(config)}</pre>", "config"),
    ]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>synshard release {_e(m.name)}</title><style>{STYLE}</style></head><body>"
            f"<h1>Release {_e(m.name)}</h1><p class=meta>created {_e(m.created)} by synshard "
            f"{_e(m.tool_version)}; fingerprint {_e(m.fingerprint[:16])}</p>"
            + "".join(sections) + "</body></html>\n")
