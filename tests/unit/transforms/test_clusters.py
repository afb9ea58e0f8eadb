"""Union-find labels: correct components, order-independent, idempotent."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synshard.transforms.clusters import cluster_members, clusters


def reference(n, edges):
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    return np.array([min(k for k in range(n) if find(k) == find(x)) for x in range(n)])


def test_chain_and_singletons():
    labels = clusters(7, np.array([5, 4, 1]), np.array([4, 3, 2]))
    assert labels.tolist() == [0, 1, 1, 3, 3, 3, 6]


def test_bad_edges_raise():
    with pytest.raises(ValueError):
        clusters(3, np.array([0]), np.array([3]))


def test_members():
    order, starts, sizes = cluster_members(np.array([2, 0, 2, 0, 4]))
    assert sizes.tolist() == [2, 2, 1]
    assert order[starts[1]:starts[1] + 2].tolist() == [0, 2]


edges_st = st.integers(1, 40).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.tuples(st.integers(0, n - 1),
                                                       st.integers(0, n - 1)), max_size=80)))


@settings(max_examples=200, deadline=None)
@given(case=edges_st, seed=st.integers(0, 2**32 - 1))
def test_order_independent_idempotent_and_correct(case, seed):
    n, edges = case
    e = np.array(edges, dtype=np.int64).reshape(-1, 2)
    labels = clusters(n, e[:, 0], e[:, 1])
    np.testing.assert_array_equal(labels, reference(n, edges))
    rng = np.random.default_rng(seed)
    shuffled = e[rng.permutation(len(e))][:, ::-1]  # other order, endpoints swapped
    np.testing.assert_array_equal(clusters(n, shuffled[:, 0], shuffled[:, 1]), labels)
    again = clusters(n, np.arange(n), labels)  # cluster the clustering's own edges
    np.testing.assert_array_equal(again, labels)
