"""The shipped WordNet 3.0 noun hierarchy and the ILSVRC-2012 class list."""
from __future__ import annotations

import time

import pytest

from synshard.synsets.hierarchy import ROOT, Hierarchy, data_path, load_hierarchy
from synshard.synsets.subsets import load_subset

TENCH, DOG, FISH, ANIMAL, ENTITY = "n01440764", "n02084071", "n02512053", "n00015388", "n00001740"


@pytest.fixture(scope="module")
def h() -> Hierarchy:
    return load_hierarchy()


def test_all_wordnet_nouns_are_there(h: Hierarchy) -> None:
    assert len(h) == 82115  # WordNet 3.0 noun synsets
    assert ROOT == ENTITY and h.get(ENTITY).parents == () and h.get(ENTITY).depth == 0


def test_every_ilsvrc2012_wnid_is_a_noun_synset(h: Hierarchy) -> None:
    wnids = load_subset("ilsvrc2012")
    assert len(wnids) == 1000 == len(set(wnids))
    assert wnids == sorted(wnids)  # label index = position, ImageNet's sorted convention
    assert [w for w in wnids if w not in h] == []


def test_no_ilsvrc2012_class_is_an_ancestor_of_another(h: Hierarchy) -> None:
    classes = set(load_subset("ilsvrc2012"))
    clashes = [(a, w) for w in classes for a in h.ancestors(w) if a in classes]
    assert clashes == []


def test_tench(h: Hierarchy) -> None:
    tench = h.get(TENCH)
    assert tench.lemmas == ("tench", "Tinca_tinca") and tench.name == "tench"
    assert "game fish" in tench.gloss
    assert {FISH, ANIMAL, ENTITY} <= set(h.ancestors(TENCH))
    path = h.path_to_root(TENCH)
    assert path[0] == TENCH and path[-1] == ENTITY and FISH in path
    assert len(path) == tench.depth + 1
    assert TENCH in h.descendants(FISH) and TENCH in h.children("n01439121")


def test_dog_has_two_parents(h: Hierarchy) -> None:
    dog = h.get(DOG)
    assert set(dog.parents) == {"n02083346", "n01317541"}  # canine, domestic animal
    assert dog.lemmas[0] == "dog"
    anc = h.ancestors(DOG)
    assert len(anc) == len(set(anc))  # each ancestor once despite two paths
    assert "n02083346" in anc and "n01317541" in anc and ENTITY in anc


def test_instance_hypernyms_are_parents(h: Hierarchy) -> None:
    # Mark Twain (n10900730) is an instance (@i) of writer (n10794014) and of humorist.
    assert h.get("n10900730").parents == ("n10794014", "n10191943")
    assert [s.wnid for s in h.find("Mark Twain")] == ["n10900730"]


def test_descendants_and_ancestors_agree(h: Hierarchy) -> None:
    for w in h.descendants(DOG):
        assert DOG in h.ancestors(w)
    assert len(h.descendants(ENTITY)) == len(h) - 1


def test_find(h: Hierarchy) -> None:
    dogs = h.find("dog")
    assert dogs[0].wnid == DOG  # most frequent sense first
    assert len(dogs) == 7
    assert [s.wnid for s in h.find("Domestic Dog")] == [DOG]
    assert [s.wnid for s in h.find("tinca_tinca")] == [TENCH]
    assert h.find("no such lemma xyzzy") == []
    assert h.find("TCP/IP")  # punctuation is matched literally


def test_unknown_wnid(h: Hierarchy) -> None:
    assert "n99999999" not in h and "dog" not in h
    with pytest.raises(KeyError):
        h.get("n99999999")
    with pytest.raises(KeyError):
        h.ancestors("n99999999")


def test_loads_well_under_a_second() -> None:
    t0 = time.perf_counter()
    fresh = Hierarchy.from_file(data_path("wordnet30-nouns.tsv.gz"))
    fresh.get(TENCH)
    elapsed = time.perf_counter() - t0
    assert load_hierarchy() is load_hierarchy()  # cached in-process
    assert fresh.ancestors(TENCH) == load_hierarchy().ancestors(TENCH)
    print(f"parse + first lookup: {elapsed:.3f} s")


def test_licence_notice_ships_with_the_data() -> None:
    import gzip

    with gzip.open(data_path("wordnet30-nouns.tsv.gz"), "rt", encoding="utf-8") as f:
        head = f.read(4000)
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in head


def test_from_text_small_dag() -> None:
    text = "# header\nn00000001\troot:1\t\tthe top\nn00000002\ta:1\tn00000001\tx\n" \
        "n00000003\tb:1\tn00000001\ty\nn00000004\tc:1 cee:2\tn00000002 n00000003\tz\n"
    h = Hierarchy.from_text(text)
    assert h.get("n00000004").depth == 2
    assert h.ancestors("n00000004") == ("n00000002", "n00000003", "n00000001")
    assert h.path_to_root("n00000004") == ("n00000004", "n00000002", "n00000001")
    assert [s.wnid for s in h.find("cee")] == ["n00000004"]


def test_every_row_of_the_shipped_file_has_the_row_format() -> None:
    """`from_text` keeps the lines that start with "n" as rows, unparsed: each is a full row."""
    import gzip

    from synshard.synsets.hierarchy import ROW

    with gzip.open(data_path("wordnet30-nouns.tsv.gz"), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    rows = [line for line in lines if line.startswith("n")]
    assert len(rows) == 82115 and all(ROW.fullmatch(line) for line in rows)
    assert all(line.startswith("#") or not line for line in lines if not line.startswith("n"))


def test_rows_and_text_make_the_same_hierarchy() -> None:
    rows = [("n00000001", "root:1", "", "the top"), ("n00000002", "a:1 ay:3", "n00000001", "x\ty")]
    text = "# header\n" + "".join("\t".join(r) + "\n" for r in rows)
    for h in (Hierarchy(rows), Hierarchy.from_text(text)):
        assert len(h) == 2 and "n00000002" in h and h.wnids() == ["n00000001", "n00000002"]
        assert h.get("n00000002").gloss == "x\ty" and h.lemmas("n00000002") == ("a", "ay")
        assert h.parents("n00000002") == ("n00000001",) and h.children("n00000001") == (
            "n00000002",)
        assert [s.wnid for s in h.find("AY")] == ["n00000002"]
