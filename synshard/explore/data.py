"""What the explorer shows, as plain JSON-ready dicts: the tree, a synset, an image, a search.

The web layer (synshard/explore/server.py) only routes and renders; every page's data comes from here,
and the same dicts are the JSON API. Everything is read through the manifest: images by key with
ranged reads (shards/access.py), side tables once per process, counts from the manifest. Inputs
are checked here too: a bad wnid or key is an ExploreError with an HTTP status, never a path.
"""
from __future__ import annotations

import re
import threading
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from synshard.release.report import treemap_nodes
from synshard.shards.access import KeyReader, synset_of
from synshard.shards.reader import side_table
from synshard.shards.layout import ShardError, check_name
from synshard.shards.release import Release
from synshard.synsets.hierarchy import ROOT, Hierarchy
from synshard.synsets.tree import counts_from_manifest, subtree_totals
from synshard.errors import SynshardError

MAX_PER_PAGE = 200
MAX_TABLE_ROWS = 500
MAX_QUERY = 100
MAX_RESULTS = 100
KEY_PATTERN = re.compile(r"^[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*_[0-9a-f]{16}$")


class ExploreError(SynshardError):
    """A request the explorer refuses: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_wnid(wnid: str) -> str:
    """A synset name that is safe and well formed, else a 400."""
    try:
        return check_name("synset", wnid)
    except ShardError as exc:
        raise ExploreError(400, str(exc)) from None


def check_key(key: str) -> str:
    """A key of the form `<synset>_<16 hex digits>`, else a 400."""
    if not isinstance(key, str) or len(key) > 100 or not KEY_PATTERN.match(key):
        raise ExploreError(400, f"bad key {key[:100]!r}: expected <synset>_<16 hex digits>")
    return key


def check_page(page: Any, per_page: Any) -> tuple[int, int]:
    """Page (from 1) and page size (1..MAX_PER_PAGE) as integers, else a 400."""
    try:
        page, per_page = int(page), int(per_page)
    except (TypeError, ValueError):
        raise ExploreError(400, "page and per_page must be integers") from None
    if not 1 <= page <= 10**6 or not 1 <= per_page <= MAX_PER_PAGE:
        raise ExploreError(400, f"page must be >= 1, per_page between 1 and {MAX_PER_PAGE}")
    return page, per_page


class ReleaseView:
    """One release, seen through the WordNet tree. Thread safe: shared by the server's threads."""

    def __init__(self, release: Release, hierarchy: Hierarchy) -> None:
        self.release = release
        self.hierarchy = hierarchy
        self.reader = KeyReader(release)
        self.counts = counts_from_manifest({"counts": release.manifest.counts})
        self.totals, self.below = subtree_totals(hierarchy, self.counts)
        self._lock = threading.Lock()

    @cached_property
    def duplicates(self) -> pa.Table | None:
        with self._lock:
            return side_table(self.release, "duplicates")

    @cached_property
    def rejects(self) -> pa.Table | None:
        with self._lock:
            return side_table(self.release, "rejects")

    def exists(self, wnid: str) -> bool:
        return wnid in self.hierarchy or wnid in self.counts

    def node(self, wnid: str) -> dict[str, Any]:
        """A synset's summary: lemma, gloss, images (subtree), synsets with images below, own."""
        if wnid not in self.hierarchy:
            n = self.counts.get(wnid, 0)
            return {"wnid": wnid, "lemma": wnid, "lemmas": [], "gloss": "not a WordNet 3.0 noun",
                    "images": n, "own": n, "synsets_with_images": 0, "has_children": False}
        s = self.hierarchy.get(wnid)
        return {"wnid": wnid, "lemma": s.name, "lemmas": [x.replace("_", " ") for x in s.lemmas],
                "gloss": s.gloss, "images": self.totals[wnid], "own": self.counts.get(wnid, 0),
                "synsets_with_images": self.below[wnid],
                "has_children": any(self.totals[c] > 0 for c in self.hierarchy.children(wnid))}

    def tree(self, wnid: str | None = None) -> dict[str, Any]:
        """A node and its children that hold images (most images first), one level: the tree
        view expands a node by asking for it. The root lists synsets outside WordNet too."""
        wnid = check_wnid(wnid or ROOT)
        if not self.exists(wnid):
            raise ExploreError(404, f"unknown synset {wnid}")
        node = self.node(wnid)
        kids = []
        if wnid in self.hierarchy:
            kids = [c for c in self.hierarchy.children(wnid) if self.totals[c] > 0]
            kids.sort(key=lambda c: (-self.totals[c], c))
        if wnid == ROOT:
            kids += sorted(w for w in self.counts if w not in self.hierarchy)
        node["children"] = [self.node(c) for c in kids]
        node["path"] = self.path(wnid)
        return node

    def path(self, wnid: str) -> list[dict[str, str]]:
        """Breadcrumbs from the root down to `wnid` (one shortest path)."""
        if wnid not in self.hierarchy:
            return [{"wnid": ROOT, "lemma": self.hierarchy.get(ROOT).name},
                    {"wnid": wnid, "lemma": wnid}]
        return [{"wnid": w, "lemma": self.hierarchy.get(w).name}
                for w in reversed(self.hierarchy.path_to_root(wnid))]

    def treemap(self, wnid: str | None = None) -> list[dict[str, Any]]:
        """Treemap nodes (report.treemap_nodes) of the subtree under `wnid`."""
        wnid = check_wnid(wnid or ROOT)
        if not self.exists(wnid):
            raise ExploreError(404, f"unknown synset {wnid}")
        if wnid == ROOT:
            counts = self.counts
        elif wnid in self.hierarchy:
            under = {wnid} | set(self.hierarchy.descendants(wnid))
            counts = {w: n for w, n in self.counts.items() if w in under}
        else:
            counts = {wnid: self.counts.get(wnid, 0)}
        return treemap_nodes(self.hierarchy, counts)

    def synset(self, wnid: str, page: Any = 1, per_page: Any = 60) -> dict[str, Any]:
        """A synset page: summary, split counts, a page of keys, shards, duplicates, rejects."""
        page, per_page = check_page(page, per_page)
        data = self.tree(wnid)
        keys = list(self.reader.synset_index(wnid)) if wnid in self.counts else []
        pages = max(1, -(-len(keys) // per_page))
        shards = [{"path": e.path, "format": e.format, "split": e.split, "samples": e.samples,
                   "bytes": e.bytes, "sha256": e.sha256} for e in self.release.shards(synset=wnid)]
        data.update({
            "by_split": self.release.manifest.counts.get("by_synset", {}).get(wnid, {}),
            "page": page, "per_page": per_page, "pages": pages, "total_keys": len(keys),
            "keys": keys[(page - 1) * per_page: page * per_page], "shards": shards,
            "duplicates": _rows(self.duplicates, "synset", wnid),
            "rejects": _rows(self.rejects, "synset", wnid),
        })  # fmt: skip
        return data

    def image(self, key: str) -> dict[str, Any]:
        """An image page: its record, its shard, and the copies dropped as its duplicates."""
        key = check_key(key)
        wnid = synset_of(key)
        if wnid not in self.counts:
            raise ExploreError(404, f"no image {key} in this release (synset {wnid} has none)")
        loc = self.reader.synset_index(wnid).get(key)
        if loc is None:
            raise ExploreError(404, f"no image {key} in this release")
        record = self.reader.records([key])[key]
        return {"key": key, "record": record, "synset": self.node(wnid),
                "shard": {"path": loc.entry.path, "format": loc.entry.format},
                "duplicates": _rows(self.duplicates, "kept_key", key),
                "dropped_as": _rows(self.duplicates, "key", key)}

    def search(self, query: str) -> dict[str, Any]:
        """Synsets whose lemmas match the words (exact lemma first, then substrings), and keys."""
        q = (query or "").strip()
        if not q or len(q) > MAX_QUERY:
            raise ExploreError(400, f"search needs 1-{MAX_QUERY} characters")
        keys = [q] if KEY_PATTERN.match(q) and self._has_key(q) else []
        found = [s.wnid for s in self.hierarchy.find(q)]
        if re.fullmatch(r"[A-Za-z0-9_-]{1,80}", q) and self.exists(q):
            found.insert(0, q)
        needle = q.lower().replace("_", " ")
        for wnid in sorted(self.counts, key=lambda w: (-self.totals[w], w)):
            if needle in self.node(wnid)["lemma"].lower() or any(
                    needle in x.lower() for x in self.node(wnid)["lemmas"]):
                found.append(wnid)
        found = list(dict.fromkeys(found))[:MAX_RESULTS]
        return {"query": q, "keys": keys, "synsets": [self.node(w) for w in found]}

    def _has_key(self, key: str) -> bool:
        wnid = synset_of(key)
        return wnid in self.counts and key in self.reader.synset_index(wnid)

    def committed(self, relpath: str) -> bool:
        """Whether `relpath` is a shard, index or table that the manifest lists (downloadable)."""
        m = self.release.manifest
        return relpath in {t["path"] for t in m.tables.values()} or any(
            relpath in (e.path, e.index) for e in m.shards)


def _rows(table: pa.Table | None, column: str, value: str) -> list[dict[str, Any]]:
    """Rows of a side table where `column` equals `value`, at most MAX_TABLE_ROWS."""
    if table is None or column not in table.column_names:
        return []
    hits = table.filter(pc.equal(table[column], value))
    return hits.slice(0, MAX_TABLE_ROWS).to_pylist()
