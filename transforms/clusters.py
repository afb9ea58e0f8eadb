"""Clusters of near duplicates: connected components of the pair graph (union-find, vectorised).

Labels are canonical: each item is labelled with the smallest index in its component, so the
result depends only on the set of edges, not on their order or repetition (order-independent),
and clustering a clustering's own edges gives it back (idempotent).
"""
from __future__ import annotations

import numpy as np


def clusters(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Component label per item in [0, n): the smallest item index of its component.

    Vectorised union-find by min-label propagation with pointer jumping: every round hooks each
    edge's larger root onto the smaller one, then compresses paths fully; it stops when no edge
    joins two roots, after O(log n) rounds on typical graphs. scipy's connected_components would
    do the same but is not a dependency of the pure core.
    """
    parent = np.arange(n, dtype=np.int64)
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    if i.shape != j.shape or (i.size and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n)):
        raise ValueError("edge endpoints must be parallel arrays of indices in [0, n)")
    while True:
        ri, rj = parent[i], parent[j]
        differ = ri != rj
        if not differ.any():
            return parent
        lo, hi = np.minimum(ri[differ], rj[differ]), np.maximum(ri[differ], rj[differ])
        np.minimum.at(parent, hi, lo)
        _compress(parent)
        keep = differ  # edges already inside one component never matter again
        i, j = i[keep], j[keep]


def _compress(parent: np.ndarray) -> None:
    """Point every item straight at its root (pointer jumping until fixed)."""
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return
        parent[:] = grand


def cluster_members(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items grouped by cluster: (order, starts, sizes), members of a cluster contiguous."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    change = np.flatnonzero(sorted_labels[1:] != sorted_labels[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    sizes = np.diff(np.concatenate([starts, [labels.size]]))
    return order, starts, sizes
