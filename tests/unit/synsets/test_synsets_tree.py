"""release_tree: images per subtree, counted once per ancestor."""
from __future__ import annotations

import pytest

from synshard.synsets.hierarchy import load_hierarchy
from synshard.synsets.tree import counts_from_manifest, release_tree, render_tree

TENCH, DOG, CHIHUAHUA, ENTITY = "n01440764", "n02084071", "n02085620", "n00001740"
DOMESTIC_ANIMAL, CANINE = "n01317541", "n02083346"


def find(node: dict, wnid: str) -> list[dict]:
    hits = [node] if node["wnid"] == wnid else []
    for c in node["children"]:
        hits += find(c, wnid)
    return hits


def test_counts_once_per_ancestor_through_the_dag() -> None:
    tree = release_tree(load_hierarchy(), {TENCH: 5, CHIHUAHUA: 3, DOG: 1})
    assert tree["wnid"] == ENTITY and tree["images"] == 9
    assert tree["synsets_with_images"] == 3
    dogs = find(tree, DOG)
    assert len(dogs) == 2  # under canine and under domestic animal, as in the explorer
    assert all(d["images"] == 4 and d["synsets_with_images"] == 1 for d in dogs)
    # animal sits above both of dog's paths, yet counts dog's images once
    assert find(tree, "n00015388")[0]["images"] == 9
    assert find(tree, DOMESTIC_ANIMAL)[0]["images"] == 4
    assert find(tree, TENCH)[0]["synsets_with_images"] == 0


def test_root_and_depth() -> None:
    tree = release_tree(load_hierarchy(), {TENCH: 5, CHIHUAHUA: 3}, root=DOG, depth=1)
    assert tree["images"] == 3 and tree["lemma"] == "dog"
    assert [c["wnid"] for c in tree["children"]] == ["n02085374"]  # toy dog
    assert tree["children"][0]["children"] == []  # cut at depth 1
    assert release_tree(load_hierarchy(), {TENCH: 2}, depth=0)["children"] == []
    with pytest.raises(KeyError):
        release_tree(load_hierarchy(), {}, root="n99999999")


def test_unknown_wnids_are_reported_not_dropped() -> None:
    tree = release_tree(load_hierarchy(), {TENCH: 1, "n99999999": 7})
    assert tree["unknown"] == {"n99999999": 7} and tree["images"] == 1
    assert "unknown synset n99999999: 7 images" in render_tree(tree)


def test_render_and_manifest_counts() -> None:
    manifest = {"counts": {"by_synset": {TENCH: {"train": 10, "val": 2}, DOG: {"train": 1}}}}
    counts = counts_from_manifest(manifest)
    assert counts == {TENCH: 12, DOG: 1}
    text = render_tree(release_tree(load_hierarchy(), counts))
    assert text.splitlines()[0].startswith(f"{ENTITY} entity: 13 images, 2 synsets below")
    assert any(line.strip().startswith(f"{TENCH} tench: 12 images") for line in text.splitlines())
