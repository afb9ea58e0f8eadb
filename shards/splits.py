"""Split assignment and per-class caps: pure functions of the key, so a sample never changes split.

A sample's split is the one its source declared, else a function of its key alone: the key is
hashed (salted, so the split is independent of the key's own sha256 prefix) to a number u in
[0, 1); u < test_fraction -> test, u < test_fraction + val_fraction -> val, else train.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synshard.errors import SynshardError
from synshard.transforms.schema import SPLITS, split_name

_SALT = b"synshard-split-v1:"


@dataclass(frozen=True)
class SplitOptions:
    val_fraction: float = 0.0
    test_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SynshardError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        if self.val_fraction + self.test_fraction > 1.0:
            raise SynshardError("val_fraction + test_fraction must be at most 1")


def key_unit(key: str, salt: bytes = _SALT) -> float:
    """A uniform number in [0, 1) derived from the key alone."""
    digest = hashlib.sha256(salt + key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_for_key(key: str, opts: SplitOptions) -> str:
    u = key_unit(key)
    if u < opts.test_fraction:
        return "test"
    if u < opts.test_fraction + opts.val_fraction:
        return "val"
    return "train"


def normalise_split(name: str | None) -> str | None:
    """Declared split names as sources spell them (`Train`, `validation`) -> train|val|test."""
    if name is None:
        return None
    split = split_name(name)
    if split is None:
        raise SynshardError(f"unknown split {name!r}: use one of {SPLITS}")
    return split


BATCH = 1 << 16  # keys turned into Python strings at a time (hashing a key is Python's hashlib)


def assign_splits_batch(meta: pa.Table, opts: SplitOptions) -> pa.Table:
    """Fill `split` where the source declared none; keys must be present (accepted rows).

    Columnar: declared names are normalised once per distinct name; undeclared rows are all
    `train` when no val/test fraction is asked for, else hashed from their keys, BATCH at a time
    (so the Python strings alive at once are bounded, whatever the table's size)."""
    declared = _normalised(meta.column("split"))
    if declared.null_count and (opts.val_fraction or opts.test_fraction):
        keys = meta.column("key")
        parts = []
        for start in range(0, meta.num_rows, BATCH):
            given = declared.slice(start, BATCH)
            if not given.null_count:
                parts.append(given)
                continue
            pairs = zip(keys.slice(start, BATCH).to_pylist(), given.to_pylist())
            parts.append(pa.array([d if d is not None else split_for_key(k, opts)
                                   for k, d in pairs], pa.string()))
        declared = pa.chunked_array(parts, pa.string())
    elif declared.null_count:
        declared = pc.fill_null(declared, "train")
    idx = meta.schema.get_field_index("split")
    return meta.set_column(idx, "split", declared)


def _normalised(declared: pa.ChunkedArray) -> pa.ChunkedArray:
    """Declared split names as train|val|test (nulls stay null), one lookup per distinct name."""
    if isinstance(declared, pa.Array):
        declared = pa.chunked_array([declared])
    declared = declared.cast(pa.string())
    names = pc.unique(declared).drop_null()
    if not len(names):
        return declared
    spelled = pa.array([normalise_split(v) for v in names.to_pylist()], pa.string())
    return pc.take(spelled, pc.index_in(declared, value_set=names))


def _key_units(keys: pa.ChunkedArray, salt: bytes) -> np.ndarray:
    out = [np.empty(0)]
    for start in range(0, len(keys), BATCH):
        out.append(np.array([key_unit(k, salt) for k in keys.slice(start, BATCH).to_pylist()]))
    return np.concatenate(out)


def cap_per_synset_mask(meta: pa.Table, max_per_synset: int | None) -> np.ndarray:
    """Which rows survive a cap of N per (split, synset): a deterministic choice from the keys.

    Rows are ranked within their (split, synset) by a salted hash of the key, so the kept subset
    is a uniform sample that does not depend on input order, and growing N only adds rows.
    """
    n = meta.num_rows
    if max_per_synset is None or n == 0:
        return np.ones(n, dtype=bool)
    rank_key = _key_units(meta.column("key"), b"synshard-cap-v1:")
    groups = pc.binary_join_element_wise(meta.column("split"), meta.column("synset"), "/")
    group_ids = np.asarray(pc.dictionary_encode(groups).combine_chunks().indices)
    order = np.lexsort((rank_key, group_ids))
    sorted_ids = group_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    rank_in_group = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    keep = np.zeros(n, dtype=bool)
    keep[order] = rank_in_group < max_per_synset
    return keep
