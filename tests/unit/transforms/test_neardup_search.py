"""find_pairs / find_pairs_between equal brute force, on random and adversarial hash sets."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synshard.transforms import neardup as nd
from synshard.transforms.neardup_between import find_pairs_between


def brute(h: np.ndarray, r: int):
    h = np.asarray(h, dtype=np.uint64)
    i, j = np.triu_indices(h.size, 1)
    d = nd.popcount64(h[i] ^ h[j])
    k = d <= r
    return i[k], j[k], d[k]


def brute_between(a: np.ndarray, b: np.ndarray, r: int):
    a, b = np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)
    i, j = np.repeat(np.arange(a.size), b.size), np.tile(np.arange(b.size), a.size)
    d = nd.popcount64(a[i] ^ b[j])
    k = d <= r
    return i[k], j[k], d[k]


def assert_same(got, exp):
    assert len(got[0]) == len(exp[0])
    for g, e in zip(got, exp):
        np.testing.assert_array_equal(g, e)


def low_entropy(rng, n, varying=10):
    """Hashes that differ only in a few bits: huge buckets in every table."""
    bits = rng.choice(64, varying, replace=False)
    h = np.full(n, 0xF0F0_0000_FFFF_0000, dtype=np.uint64)
    for b in bits:
        h ^= rng.integers(0, 2, n).astype(np.uint64) << np.uint64(b)
    return h


def around_centres(rng, n, centres=3, flips=3):
    c = rng.integers(0, 2**64, centres, dtype=np.uint64)[rng.integers(0, centres, n)]
    for _ in range(flips):
        flip = (rng.random(n) < 0.6).astype(np.uint64)
        c ^= flip << rng.integers(0, 64, n).astype(np.uint64)
    return c


GENERATORS = {
    "random": lambda rng, n: rng.integers(0, 2**64, n, dtype=np.uint64),
    "low_entropy": low_entropy,
    "many_equal": lambda rng, n: rng.integers(0, 2**64, 4, dtype=np.uint64)[rng.integers(0, 4, n)],
    "centres": around_centres,
}


@pytest.mark.parametrize("kind", sorted(GENERATORS))
@pytest.mark.parametrize("radius", [0, 1, 4, 8])
@pytest.mark.parametrize("max_bucket", [16, 2048])
def test_find_pairs_equals_brute_force(kind, radius, max_bucket):
    rng = np.random.default_rng([radius, max_bucket, len(kind)])
    h = GENERATORS[kind](rng, 300)
    got = nd.find_pairs(h, radius, max_bucket=max_bucket)
    assert_same(got, brute(h, radius))


def test_finds_planted_pairs_and_nothing_else():
    rng = np.random.default_rng(7)
    h = rng.integers(0, 2**64, 2000, dtype=np.uint64)
    h[1000:1010] = h[:10] ^ (np.uint64(0b1111) << np.uint64(30))  # distance exactly 4
    i, j, d = nd.find_pairs(h, 4)
    planted = {(k, 1000 + k) for k in range(10)}
    assert planted <= set(zip(i.tolist(), j.tolist()))
    assert np.all(d[np.isin(i, np.arange(10)) & (j >= 1000) & (j < 1010)] == 4)
    assert_same((i, j, d), brute(h, 4))


def test_identical_hashes_are_grouped_not_compared():
    h = np.zeros(3000, dtype=np.uint64)  # 3000 blank images: 4.5M pairs at distance 0
    h[-1] = 1
    i, j, d = nd.find_pairs(h, 2)
    assert i.size == 3000 * 2999 // 2
    assert np.all(i < j) and np.all(d[j < 2999] == 0) and np.all(d[j == 2999] == 1)
    assert np.unique(i * 3000 + j).size == i.size


def test_rejects_bad_layouts():
    with pytest.raises(ValueError):
        nd.Layout(64, 64, 1)


@pytest.mark.parametrize("kind", sorted(GENERATORS))
@pytest.mark.parametrize("radius", [0, 3, 6])
@pytest.mark.parametrize("max_bucket", [16, 2048])
def test_find_pairs_between_equals_brute_force(kind, radius, max_bucket):
    rng = np.random.default_rng([radius, max_bucket, len(kind), 1])
    a = GENERATORS[kind](rng, 250)
    b = np.concatenate([a[:40] ^ (np.uint64(1) << rng.integers(0, 64, 40).astype(np.uint64)),
                        GENERATORS[kind](rng, 60)])
    assert_same(find_pairs_between(a, b, radius, max_bucket=max_bucket),
                brute_between(a, b, radius))


def test_tasks_partition_the_work():
    """Running the tasks of any plan, in any order, gives the same pairs as the whole search."""
    rng = np.random.default_rng(3)
    uniq, _ = nd.collapse(around_centres(rng, 500, centres=5, flips=2))
    whole = nd.search_distinct(uniq, 4).sorted()
    tasks = nd.plan_tasks(uniq.size, 4, parts_per_table=3, q=2)
    assert len(tasks) == 15 * 3
    parts = [nd.run_task(uniq, t) for t in reversed(tasks)]
    split = nd.Pairs.concat(parts).sorted()
    assert_same(split.as_tuple(), whole.as_tuple())


@pytest.mark.parametrize("kind", ["random", "centres", "low_entropy"])
def test_tables_on_threads_give_the_same_pairs_in_the_same_order(kind):
    """search_distinct with a table per thread: exactly the one-thread output, brute-checked."""
    rng = np.random.default_rng(5)
    h = GENERATORS[kind](rng, 3000)
    h = np.concatenate([h, h[:300] ^ (np.uint64(1) << rng.integers(0, 64, 300).astype(np.uint64))])
    uniq, _ = nd.collapse(h)
    one = nd.search_distinct(uniq, 5, max_bucket=64, threads=1)
    for threads in (2, 5):
        many = nd.search_distinct(uniq, 5, max_bucket=64, threads=threads)
        assert_same(many.as_tuple(), one.as_tuple())
    i, j, d = brute(uniq, 5)
    assert_same(one.sorted().as_tuple(), (i, j, d))


def test_choose_match_blocks_grows_with_n():
    assert nd.choose_match_blocks(1_000, 4) == 1
    assert nd.choose_match_blocks(10_000_000, 4) >= 2


def test_first_table_is_the_lowest_agreeing_combination():
    layout = nd.Layout(64, 2, 2)  # 4 blocks, tables (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    assert layout.first_table[0b1111] == 0
    assert layout.first_table[0b1100] == 5
    assert layout.first_table[0b0110] == 3
    assert layout.first_table[0b0001] == -1


hash_lists = st.lists(st.integers(0, 2**64 - 1), max_size=60)


@settings(max_examples=150, deadline=None)
@given(base=hash_lists, flips=st.lists(st.tuples(st.integers(0, 59), st.integers(0, 63)),
                                       max_size=80), radius=st.integers(0, 10))
def test_property_exact_and_once(base, flips, radius):
    h = np.array(base + base[:20], dtype=np.uint64)  # repeats: distance-0 groups
    for k, bit in flips:
        if k < h.size:
            h[k] ^= np.uint64(1) << np.uint64(bit)
    i, j, d = nd.find_pairs(h, radius, max_bucket=8)
    assert_same((i, j, d), brute(h, radius))


@settings(max_examples=100, deadline=None)
@given(a=hash_lists, b=hash_lists, radius=st.integers(0, 10))
def test_property_between(a, b, radius):
    b = np.array(b + a[:10], dtype=np.uint64) ^ np.uint64(0b101)
    a = np.array(a + a[:5], dtype=np.uint64)
    assert_same(find_pairs_between(a, b, radius, max_bucket=8), brute_between(a, b, radius))


def test_sorted_members_is_isin():
    rng = np.random.default_rng(9)
    x = rng.integers(0, 2**64, 50_000, dtype=np.uint64)
    x[::7] = x[3]  # repeats
    x[1::11] = np.uint64(5) | (np.uint64(1) << np.uint64(40))  # same low bits as a value
    values = np.unique(np.concatenate([x[rng.choice(x.size, 500)], np.array([5], np.uint64)]))
    got = nd.sorted_members(x, values)
    assert got.tolist() == np.flatnonzero(np.isin(x, values)).tolist()
    assert nd.sorted_members(x, np.empty(0, np.uint64)).size == 0


def test_spare_cpus_leave_busy_cores_alone(monkeypatch):
    monkeypatch.setattr(nd, "local_cpus", lambda: 4)
    for load, want in ((0.5, 4), (1.0, 4), (2.2, 3), (3.9, 1), (40.0, 1)):
        monkeypatch.setattr(nd.os, "getloadavg", lambda load=load: (load, load, load))
        assert nd.spare_cpus() == want, load
