"""A release's classes as a tree, like the ImageNet explorer: `synshard tree URI [WNID]`.

Public API (stable):

- `release_tree(hierarchy, counts, root=None, depth=None) -> dict`: nested nodes
  `{"wnid", "lemma", "images", "synsets_with_images", "children": [...]}`. `images` is the number of
  images in the node's subtree (its own included); an image counts once per ancestor even where the
  DAG reaches that ancestor by several paths. `synsets_with_images` counts the synsets strictly
  below the node that have images. Only nodes with images in their subtree appear; children are
  sorted by images (most first), then wnid. `root` defaults to entity (n00001740); `depth` limits
  the levels below the root (0: the root alone). A node reachable by several paths appears under
  each parent, as in the explorer. Wnids in `counts` that are not WordNet nouns are listed in the
  root's `"unknown"` (wnid -> images) rather than dropped.
- `render_tree(node) -> str`: the indented text view.
- `counts_from_manifest(manifest) -> dict[str, int]`: images per synset, all splits summed, from a
  parsed `manifest.json` (`manifest["counts"]["by_synset"][wnid]` is `{split: n}`).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Mapping

from .hierarchy import ROOT, Hierarchy

Node = dict[str, Any]


def subtree_totals(
    hierarchy: Hierarchy, counts: Mapping[str, int]
) -> tuple[Counter[str], Counter[str]]:
    """(images per subtree, synsets with images strictly below) for every synset involved.

    Each synset's count is added once to itself and once to each distinct ancestor, so DAG
    diamonds never double count.
    """
    images: Counter[str] = Counter()
    below: Counter[str] = Counter()
    for wnid, n in counts.items():
        if n <= 0 or wnid not in hierarchy:
            continue
        images[wnid] += n
        for anc in hierarchy.ancestors(wnid):
            images[anc] += n
            below[anc] += 1
    return images, below


def release_tree(
    hierarchy: Hierarchy,
    counts: Mapping[str, int],
    root: str | None = None,
    depth: int | None = None,
) -> Node:
    """The nested tree of the synsets with images under `root` (see the module docstring)."""
    root = root or ROOT
    hierarchy.get(root)  # KeyError for an unknown root, before any work
    images, below = subtree_totals(hierarchy, counts)

    def build(wnid: str, level: int) -> Node:
        kids: list[Node] = []
        if depth is None or level < depth:
            present = [c for c in hierarchy.children(wnid) if images[c] > 0]
            present.sort(key=lambda c: (-images[c], c))
            kids = [build(c, level + 1) for c in present]
        return {
            "wnid": wnid,
            "lemma": hierarchy.get(wnid).name,
            "images": images[wnid],
            "synsets_with_images": below[wnid],
            "children": kids,
        }

    tree = build(root, 0)
    unknown = {w: n for w, n in sorted(counts.items()) if w not in hierarchy}
    if unknown:
        tree["unknown"] = unknown
    return tree


def render_tree(node: Node, indent: str = "  ") -> str:
    """`wnid lemma: N images, M synsets` per line, children indented under their parent."""
    lines: list[str] = []

    def walk(n: Node, level: int) -> None:
        lines.append(
            f"{indent * level}{n['wnid']} {n['lemma']}: {n['images']:,} images, "
            f"{n['synsets_with_images']:,} synsets below"
        )
        for child in n["children"]:
            walk(child, level + 1)

    walk(node, 0)
    for wnid, n in node.get("unknown", {}).items():
        lines.append(f"unknown synset {wnid}: {n:,} images (not a WordNet 3.0 noun)")
    return "\n".join(lines)


def counts_from_manifest(manifest: Mapping[str, Any]) -> dict[str, int]:
    """Images per synset over all splits, from a parsed manifest.json."""
    by_synset = manifest.get("counts", {}).get("by_synset", {})
    return {wnid: int(sum(splits.values())) for wnid, splits in by_synset.items()}
