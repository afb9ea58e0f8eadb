"""Named class lists and the synset filter a build applies to its inputs.

Public API (stable):

- `load_subset(name) -> list[str]`: a named wnid list shipped in `data/<name>.txt`, in its file
  order (for `ilsvrc2012`, the ILSVRC-2012 label order, which is also sorted). `SUBSETS` names them.
- `SynsetFilter(subset=None, subtrees=(), exclude_subtrees=())`: a frozen dataclass the app builds
  from `--subset`, `--subtree` and `--exclude-subtree`. `filter_batch(synsets)` returns
  `(keep: pa.BooleanArray, reason: pa.StringArray)`, reason null where kept. The reasons, checked
  in this order: `missing synset` (null), `unknown synset` (not a WordNet 3.0 noun),
  `not in subset <name>`, `outside subtree <wnid>[,<wnid>...]`, `excluded subtree <wnid>`.
  `validate()` raises SynshardError for a bad option (unknown subset or subtree wnid) so the CLI
  can refuse it in one line before any work starts.

Pure: the filter works on a pyarrow array of wnids; it evaluates each distinct wnid once, so a
batch of thousands of rows of a few synsets costs a few dictionary lookups.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc

from synshard.errors import SynshardError

from .hierarchy import Hierarchy, data_path, load_hierarchy

SUBSETS = ("ilsvrc2012",)


@lru_cache(maxsize=None)
def _subset(name: str) -> tuple[str, ...]:
    if name not in SUBSETS:
        raise SynshardError(f"unknown subset {name!r}: use one of {', '.join(SUBSETS)}")
    text = data_path(f"{name}.txt").read_text(encoding="ascii")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def load_subset(name: str) -> list[str]:
    """The wnids of a named class list, in its order (label index = position)."""
    return list(_subset(name))


@dataclass(frozen=True)
class SynsetFilter:
    """Which synsets a build keeps. An empty filter (the default) keeps every known noun."""

    subset: str | None = None
    subtrees: tuple[str, ...] = ()
    exclude_subtrees: tuple[str, ...] = ()

    def validate(self, hierarchy: Hierarchy | None = None) -> None:
        """Raise SynshardError on an unknown subset name or subtree wnid."""
        h = hierarchy or load_hierarchy()
        if self.subset is not None:
            _subset(self.subset)
        for wnid in (*self.subtrees, *self.exclude_subtrees):
            if wnid not in h:
                raise SynshardError(f"unknown subtree {wnid!r}: not a WordNet 3.0 noun synset")

    def reason(self, wnid: str | None, hierarchy: Hierarchy | None = None) -> str | None:
        """Why `wnid` is filtered out, or None when it is kept."""
        h = hierarchy or load_hierarchy()
        if wnid is None:
            return "missing synset"
        if wnid not in h:
            return "unknown synset"
        if self.subset is not None and wnid not in _subset_set(self.subset):
            return f"not in subset {self.subset}"
        if self.subtrees and not any(_under(h, wnid, root) for root in self.subtrees):
            return f"outside subtree {','.join(self.subtrees)}"
        for root in self.exclude_subtrees:
            if _under(h, wnid, root):
                return f"excluded subtree {root}"
        return None

    def filter_batch(
        self, synsets: pa.Array | pa.ChunkedArray, hierarchy: Hierarchy | None = None
    ) -> tuple[pa.BooleanArray, pa.StringArray]:
        """(keep, reason) for every row of `synsets`; reason is null where kept."""
        h = hierarchy or load_hierarchy()
        if isinstance(synsets, pa.ChunkedArray):
            synsets = synsets.combine_chunks()
        encoded = pc.dictionary_encode(synsets.cast(pa.string()))
        reasons = [self.reason(w, h) for w in encoded.dictionary.to_pylist()]
        if synsets.null_count:
            reasons.append("missing synset")  # nulls index past the dictionary's end
        indices = encoded.indices.fill_null(len(encoded.dictionary))
        reason = pc.take(pa.array(reasons, pa.string()), indices)
        return pc.is_null(reason), reason


@lru_cache(maxsize=None)
def _subset_set(name: str) -> frozenset[str]:
    return frozenset(_subset(name))


def _under(h: Hierarchy, wnid: str, root: str) -> bool:
    """`wnid` is `root` or one of its descendants (over any path of the DAG)."""
    return wnid == root or h.is_ancestor(root, wnid)
