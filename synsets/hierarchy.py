"""The WordNet 3.0 noun hierarchy: the tree (a DAG, in fact) that ImageNet's classes live in.

Public API (stable; the app, the build and the tree view call it):

- `load_hierarchy() -> Hierarchy`: the hierarchy shipped in `data/wordnet30-nouns.tsv.gz`
  (derived from WordNet 3.0 by `scripts/derive_wordnet.py`), parsed once per process and cached.
- `Hierarchy.get(wnid) -> Synset` (KeyError if unknown), `wnid in hierarchy`, `len(hierarchy)`;
  `Hierarchy.lemmas(wnid)`: its lemmas alone (no depths computed).
- `Hierarchy.children(wnid)`, `.ancestors(wnid)`, `.descendants(wnid)` -> tuples of wnids,
  the wnid itself excluded; ancestors nearest first, descendants breadth first, each once even where
  the DAG has several paths.
- `Hierarchy.path_to_root(wnid)` -> (wnid, parent, ..., n00001740): one shortest path, the same on
  every run (ties go to the parent with the smaller wnid).
- `Hierarchy.find(word) -> list[Synset]`: synsets with that lemma (case, spaces and underscores
  ignored), most frequent sense first.

A wnid is `n` + the 8-digit offset in WordNet 3.0's `data.noun`. Parents are hypernyms (`@`) and
instance hypernyms (`@i`); a synset may have several (dog: canine and domestic animal). `depth` is
the length of the shortest path to the root `entity` (n00001740), which has depth 0.
"""
from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
import re
from pathlib import Path

ROOT = "n00001740"  # entity
DATA_FILE = "wordnet30-nouns.tsv.gz"
# One synset row of the data file: wnid, lemma:sense list, parent wnids, gloss (every line that
# starts with "n": tests/unit/synsets check the shipped file against this).
ROW = re.compile(r"^(n\d{8})\t([^\t]*)\t([^\t]*)\t(.*)$", re.M)


@dataclass(frozen=True)
class Synset:
    """One noun synset. `lemmas` keep WordNet's spelling (underscores for spaces)."""

    wnid: str
    lemmas: tuple[str, ...]
    gloss: str
    parents: tuple[str, ...]
    depth: int

    @property
    def name(self) -> str:
        """The first lemma with spaces: what a human calls it ("tench", "domestic dog")."""
        return self.lemmas[0].replace("_", " ") if self.lemmas else self.wnid


def normalise_word(word: str) -> str:
    """How `find` compares words: case-insensitive, spaces and underscores equal."""
    return "_".join(word.strip().lower().replace("_", " ").split())


class Hierarchy:
    """The parsed noun DAG. Build it with `load_hierarchy()` (cached) or `Hierarchy(rows)`."""

    def __init__(self, rows: list[tuple[str, str, str, str]]) -> None:
        """`rows`: (wnid, raw lemma field, raw parents field, gloss), as in the data file."""
        self._lines = {r[0]: "\t".join(r) for r in rows}  # as `from_text` keeps them

    @classmethod
    def from_file(cls, path: Path | str) -> "Hierarchy":
        with open(path, "rb") as f:
            return cls.from_text(zlib.decompress(f.read(), wbits=31).decode("utf-8"))  # gzip

    @classmethod
    def from_text(cls, text: str) -> "Hierarchy":
        """Parse the derived format (see scripts/derive_wordnet.py); `#` lines are the header.

        Only the lines are kept, by wnid; a row's fields, the parent links, children and depths
        are parsed when first asked for. Loading is then the text's split into lines (0.07 s for
        the 82,115 nouns here, against 0.13 s when every row was parsed up front, which a build
        pays before its workers start: it asks only `wnid in hierarchy` and lemmas)."""
        hierarchy = cls([])
        hierarchy._lines = {line[:9]: line for line in text.split("\n") if line[:1] == "n"}
        return hierarchy

    def _row(self, wnid: str) -> list[str]:
        """(wnid, raw lemma field, raw parents field, gloss) of a known wnid."""
        return self._lines[wnid].split("\t", 3)

    @cached_property
    def _parents(self) -> dict[str, tuple[str, ...]]:
        return {w: tuple(self._row(w)[2].split()) for w in self._lines}

    @cached_property
    def _children(self) -> dict[str, tuple[str, ...]]:
        kids: dict[str, list[str]] = {}
        for wnid, parents in self._parents.items():
            for p in parents:
                kids.setdefault(p, []).append(wnid)
        return {p: tuple(sorted(c)) for p, c in kids.items()}

    @cached_property
    def _depth(self) -> dict[str, int]:
        """Shortest distance from a root, breadth first from every parentless synset."""
        depth = {w: 0 for w, p in self._parents.items() if not p}
        queue = deque(depth)
        while queue:
            node = queue.popleft()
            for child in self._children.get(node, ()):
                if child not in depth:
                    depth[child] = depth[node] + 1
                    queue.append(child)
        return depth

    def __contains__(self, wnid: object) -> bool:
        return wnid in self._lines

    def __len__(self) -> int:
        return len(self._lines)

    def wnids(self) -> list[str]:
        """All noun wnids, sorted."""
        return sorted(self._lines)

    def get(self, wnid: str) -> Synset:
        """The synset; KeyError (with the wnid) when it is not a WordNet 3.0 noun."""
        return self._synset(wnid)

    @lru_cache(maxsize=65536)  # noqa: B019 - the hierarchy lives as long as the process
    def _synset(self, wnid: str) -> Synset:
        gloss = self._row(wnid)[3]
        return Synset(wnid, self.lemmas(wnid), gloss, self._parents[wnid],
                      self._depth.get(wnid, -1))

    def lemmas(self, wnid: str) -> tuple[str, ...]:
        """`get(wnid).lemmas`, without the depths of the whole hierarchy that `get` computes
        on its first call (0.25 s; a build's class list needs the lemmas only)."""
        return tuple(item.rpartition(":")[0] for item in self._row(wnid)[1].split())

    def parents(self, wnid: str) -> tuple[str, ...]:
        return self._parents[wnid]

    def children(self, wnid: str) -> tuple[str, ...]:
        """Hyponyms and instances, sorted by wnid."""
        self._check(wnid)
        return self._children.get(wnid, ())

    def depth(self, wnid: str) -> int:
        self._check(wnid)
        return self._depth.get(wnid, -1)

    def ancestors(self, wnid: str) -> tuple[str, ...]:
        """Every synset above `wnid` over all paths, nearest first, each once."""
        self._check(wnid)
        return self._walk(wnid, True)

    def descendants(self, wnid: str) -> tuple[str, ...]:
        """Every synset below `wnid` over all paths, breadth first, each once."""
        self._check(wnid)
        return self._walk(wnid, False)

    @lru_cache(maxsize=65536)  # noqa: B019
    def _walk(self, start: str, up: bool) -> tuple[str, ...]:
        edges = self._parents if up else self._children
        seen = {start}
        order: list[str] = []
        queue = deque([start])
        while queue:
            for nxt in edges.get(queue.popleft(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    order.append(nxt)
                    queue.append(nxt)
        return tuple(order)

    def path_to_root(self, wnid: str) -> tuple[str, ...]:
        """(wnid, ..., root) along a shortest path; ties to the parent with the smaller wnid."""
        self._check(wnid)
        path = [wnid]
        while self._parents[path[-1]]:
            parents = self._parents[path[-1]]
            path.append(min(parents, key=lambda p: (self._depth.get(p, 1 << 30), p)))
        return tuple(path)

    def is_ancestor(self, ancestor: str, wnid: str) -> bool:
        return ancestor in self._ancestor_set(wnid)

    @lru_cache(maxsize=65536)  # noqa: B019
    def _ancestor_set(self, wnid: str) -> frozenset[str]:
        return frozenset(self.ancestors(wnid))

    def find(self, word: str) -> list[Synset]:
        """Synsets with `word` among their lemmas, most frequent sense first.

        One regex scan over the lemma column (tens of milliseconds) instead of an index that
        would cost more to build than most sessions spend searching.
        """
        text = self._lemma_text
        pattern = re.compile(rf"[\t ]{re.escape(normalise_word(word))}:(\d+)[ \n]")
        hits = []
        for match in pattern.finditer(text):
            start = text.rfind("\n", 0, match.start()) + 1  # the row's wnid starts the line
            hits.append((int(match.group(1)), text[start : start + 9]))
        return [self.get(wnid) for _, wnid in sorted(hits)]

    @cached_property
    def _lemma_text(self) -> str:
        """`wnid<TAB>lemma:sense ...` lines, lowercased, ending in a newline."""
        return "".join(f"{w}\t{self._row(w)[1].lower()}\n" for w in self._lines)

    def _check(self, wnid: str) -> None:
        if wnid not in self._lines:
            raise KeyError(f"{wnid!r} is not a WordNet 3.0 noun synset")


def data_path(name: str) -> Path:
    """A file shipped in synsets/data (package data, so it works from a wheel too)."""
    return Path(str(resources.files(__package__).joinpath("data", name)))


@lru_cache(maxsize=1)
def load_hierarchy() -> Hierarchy:
    """The shipped WordNet 3.0 noun hierarchy, parsed once per process."""
    return Hierarchy.from_file(data_path(DATA_FILE))
