"""sqlrec.numeric.evaluation: splits, and metrics equal to lightfm.evaluation on the same model.

Tolerance: ranks are compared exactly (the fixture's data has no score near-ties, so LightFM's
own float32 dot products and our GEMM order items identically); per-user metrics within 1e-6,
because LightFM accumulates AUC in float32 and we do it in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from sqlrec.numeric.evaluation import (METRIC_NAMES, METRICS, SPLITS, evaluate, held_out_ranks, popular_items,
                               split_by_time, split_by_user, split_random)

lightfm = pytest.importorskip("lightfm")
from lightfm import evaluation as lfm_eval  # noqa: E402

TOL = 1e-6


def interactions(n_users=200, n_items=300, seed=0, max_per_user=40):
    """Implicit data with Zipf-like item popularity; users have 1..max_per_user items."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    p /= p.sum()
    rows, cols = [], []
    for u in range(n_users):
        items = rng.choice(n_items, size=rng.integers(1, max_per_user), replace=False, p=p)
        rows += [u] * len(items)
        cols += list(items)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))


@pytest.fixture(scope="module")
def fitted():
    train, test = split_by_user(interactions(), 0.25, random_state=0)
    model = lightfm.LightFM(no_components=16, loss="warp", random_state=0).fit(train, epochs=5)
    ub, uv = model.get_user_representations()
    ib, iv = model.get_item_representations()
    return model, (uv, ub, iv, ib), train, test


LIGHTFM = {
    "precision_at_k": lambda model, test, train, k: lfm_eval.precision_at_k(model, test, train, k=k),
    "recall_at_k": lambda model, test, train, k: lfm_eval.recall_at_k(model, test, train, k=k),
    "auc": lambda model, test, train, k: lfm_eval.auc_score(model, test, train),
    "reciprocal_rank": lambda model, test, train, k: lfm_eval.reciprocal_rank(model, test, train),
}


def test_ranks_equal_predict_rank(fitted):
    model, reps, train, test = fitted
    r = held_out_ranks(*reps, train, test, 10)
    np.testing.assert_array_equal(r.ranks, model.predict_rank(test, train_interactions=train).data)
    np.testing.assert_array_equal(r.users, np.flatnonzero(test.getnnz(axis=1)))


@pytest.mark.parametrize("k", [1, 5, 10, 50])
@pytest.mark.parametrize("metric", sorted(LIGHTFM))
def test_metric_equals_lightfm(fitted, metric, k):
    model, reps, train, test = fitted
    want = LIGHTFM[metric](model, test, train, k)
    got = METRICS[metric](held_out_ranks(*reps, train, test, k))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=TOL)
    assert evaluate(*reps, train, test, k, [metric])[metric] == pytest.approx(want.mean(), abs=TOL)


def test_evaluate_defaults(fitted):
    model, reps, train, test = fitted
    got = evaluate(*reps, train, test, 10)
    assert list(got) == ["precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "auc", "reciprocal_rank",
                         "coverage_at_k", "popularity_bias_at_k"]
    assert all(isinstance(v, float) and 0 <= v <= 1 for v in got.values())
    for name in LIGHTFM:
        assert got[name] == pytest.approx(LIGHTFM[name](model, test, train, 10).mean(), abs=TOL)


def test_without_train_matrix(fitted):
    # Nothing excluded: LightFM ranks test items among all items.
    model, reps, train, test = fitted
    for name in ("precision_at_k", "auc"):
        want = LIGHTFM[name](model, test, None, 10)
        np.testing.assert_allclose(METRICS[name](held_out_ranks(*reps, None, test, 10)), want, atol=TOL)


def test_overlapping_train_and_test(fitted):
    # An entry stored in both is hidden from the others' ranks but still ranked itself, as in
    # LightFM with check_intersections=False.
    model, reps, train, test = fitted
    both = train + test
    want = model.predict_rank(test, train_interactions=both, check_intersections=False).data
    np.testing.assert_array_equal(held_out_ranks(*reps, both, test, 10).ranks, want)
    np.testing.assert_allclose(
        METRICS["auc"](held_out_ranks(*reps, both, test, 10)),
        lfm_eval.auc_score(model, test, both, check_intersections=False), atol=TOL)


@pytest.mark.parametrize("max_chunk_bytes", [1, 3000, 1 << 30])
def test_chunking_does_not_change_ranks(fitted, max_chunk_bytes):
    _, reps, train, test = fitted
    want = held_out_ranks(*reps, train, test, 10).ranks
    np.testing.assert_array_equal(held_out_ranks(*reps, train, test, 10, max_chunk_bytes=max_chunk_bytes).ranks,
                                  want)


def test_ties_count_against_the_test_item():
    # All scores equal: every other non-train item ranks at or above each test item.
    uv, iv = np.zeros((2, 3), np.float32), np.zeros((6, 3), np.float32)
    train = sp.csr_matrix(([1, 1], ([0, 0], [0, 1])), shape=(2, 6))
    test = sp.csr_matrix(([1, 1, 1], ([0, 1, 1], [2, 0, 5])), shape=(2, 6))
    r = held_out_ranks(uv, None, iv, None, train, test, 2)
    np.testing.assert_array_equal(r.ranks, [3, 5, 5])


def test_unknown_metric_and_no_test_users(fitted):
    _, reps, train, test = fitted
    with pytest.raises(ValueError, match="unknown metric 'ndcg'"):
        evaluate(*reps, train, test, 10, ["precision_at_k", "ndcg"])
    empty = sp.csr_matrix(test.shape, dtype=np.float32)
    assert np.isnan(evaluate(*reps, train, empty, 10)["auc"])


def test_shape_mismatch(fitted):
    _, (uv, ub, iv, ib), train, test = fitted
    with pytest.raises(ValueError, match="do not agree"):
        evaluate(uv[:5], ub[:5], iv, ib, train, test, 10)


# --- NDCG, MAP, coverage, popularity bias --------------------------------------------------------

# One feature, item scores 6..1 for user 0 (item 0 best) and reversed for user 1 (item 5 best).
HAND_UV = np.array([[1.0], [-1.0]], np.float32)
HAND_IV = np.array([[6.0], [5.0], [4.0], [3.0], [2.0], [1.0]], np.float32)


def hand(test_cells, train_cells=(), k=3, popularity=None):
    def csr(cells):
        r = [c[0] for c in cells]
        c = [c[1] for c in cells]
        return sp.csr_matrix((np.ones(len(cells), np.float32), (r, c)), shape=(2, 6))
    return held_out_ranks(HAND_UV, None, HAND_IV, None, csr(train_cells), csr(test_cells), k,
                          item_popularity=popularity)


L2, L3, L4, L5 = (1 / np.log2(x) for x in (2, 3, 4, 5))


@pytest.mark.parametrize("test_cells, train_cells, k, ndcg, ap", [
    # user 0 holds out items 1 and 3 (ranks 1 and 3): only item 1 is inside the top 3
    ([(0, 1), (0, 3)], [], 3, L3 / (L2 + L3), (1 / 2) / 2),
    ([(0, 1), (0, 3)], [], 4, (L3 + L5) / (L2 + L3), (1 / 2 + 2 / 4) / 2),
    # item 0 in train: both move up one place
    ([(0, 1), (0, 3)], [(0, 0)], 3, (L2 + L4) / (L2 + L3), (1 / 1 + 2 / 3) / 2),
    # user 1: four test items, the best two at ranks 0 and 1, k = 2: a perfect top 2
    ([(1, 5), (1, 4), (1, 3), (1, 0)], [], 2, 1.0, 1.0),
    # item 5 in train, item 4 first: one hit at place 2 of a top 2, four test items: AP / min(4, 2)
    ([(1, 3), (1, 2), (1, 1), (1, 0)], [(1, 5)], 2, L3 / (L2 + L3), (1 / 2) / 2),
    # the same, top 3: hits at places 2 and 3
    ([(1, 3), (1, 2), (1, 1), (1, 0)], [(1, 5)], 3, (L3 + L4) / (L2 + L3 + L4), (1 / 2 + 2 / 3) / 3),
])
def test_ndcg_and_map_by_hand(test_cells, train_cells, k, ndcg, ap):
    r = hand(test_cells, train_cells, k)
    assert METRICS["ndcg_at_k"](r) == pytest.approx([ndcg])
    assert METRICS["map_at_k"](r) == pytest.approx([ap])


def test_ndcg_and_map_per_user_and_ties():
    r = hand([(0, 1), (0, 3), (1, 5), (1, 4), (1, 3), (1, 0)], k=2)
    np.testing.assert_allclose(METRICS["ndcg_at_k"](r), [L3 / (L2 + L3), 1.0])
    np.testing.assert_allclose(METRICS["map_at_k"](r), [(1 / 2) / 2, 1.0])
    # All scores equal: both test items share the pessimistic rank 5 of 6 and miss the top 5.
    flat = held_out_ranks(np.zeros((1, 1), np.float32), None, np.zeros((6, 1), np.float32), None, None,
                          sp.csr_matrix(([1.0, 1.0], ([0, 0], [2, 4])), shape=(1, 6)), 5)
    assert flat.ranks.tolist() == [5, 5]
    assert METRICS["ndcg_at_k"](flat).tolist() == [0.0] and METRICS["map_at_k"](flat).tolist() == [0.0]
    flat6 = held_out_ranks(np.zeros((1, 1), np.float32), None, np.zeros((6, 1), np.float32), None, None,
                           sp.csr_matrix(([1.0, 1.0], ([0, 0], [2, 4])), shape=(1, 6)), 6)
    assert METRICS["map_at_k"](flat6) == pytest.approx([(1 / 6 + 2 / 6) / 2])


def ranked_lists(model, train, test):
    """Per user, LightFM's ranks of the test items (from predict_rank), for brute-force metrics."""
    ranks = model.predict_rank(test, train_interactions=train).tocsr()
    return [np.sort(ranks[u].data) for u in range(test.shape[0]) if ranks[u].nnz]


@pytest.mark.parametrize("k", [1, 5, 10, 50])
def test_ndcg_and_map_equal_a_per_user_loop(fitted, k):
    model, reps, train, test = fitted
    want_ndcg, want_ap = [], []
    for ranks in ranked_lists(model, train, test):
        hits = ranks[ranks < k]
        want_ndcg.append(sum(1 / np.log2(r + 2) for r in hits)
                         / sum(1 / np.log2(i + 2) for i in range(min(len(ranks), k))))
        want_ap.append(sum((j + 1) / (r + 1) for j, r in enumerate(hits)) / min(len(ranks), k))
    r = held_out_ranks(*reps, train, test, k)
    np.testing.assert_allclose(METRICS["ndcg_at_k"](r), want_ndcg, atol=TOL)
    np.testing.assert_allclose(METRICS["map_at_k"](r), want_ap, atol=TOL)


def test_coverage_and_popularity_bias_by_hand():
    # k = 2: user 0 gets items {1, 2} (item 0 is in train), user 1 gets {5, 4}.
    r = hand([(0, 3), (1, 0)], [(0, 0)], k=2, popularity=np.array([9, 0, 0, 0, 0, 8]))
    assert sorted(r.top[0].tolist()) == [1, 2] and sorted(r.top[1].tolist()) == [4, 5]
    assert float(METRICS["coverage_at_k"](r)) == pytest.approx(4 / 6)
    # the head is ceil(0.1 * 6) = 1 item: item 0 (count 9)
    assert r.popular.tolist() == [True, False, False, False, False, False]
    np.testing.assert_allclose(METRICS["popularity_bias_at_k"](r), [0.0, 0.0])
    r = hand([(0, 3), (1, 0)], [(0, 0)], k=2, popularity=np.array([0, 0, 0, 0, 0, 8]))
    np.testing.assert_allclose(METRICS["popularity_bias_at_k"](r), [0.0, 0.5])
    # default popularity: train's column counts, so item 0 heads the list
    assert hand([(0, 3)], [(0, 0)], k=2).popular[0]


def test_top_lists_skip_train_items_and_pad():
    # user 0 has 5 of 6 items in train: one item left for a top 3
    r = hand([(0, 5)], [(0, i) for i in range(5)], k=3)
    assert r.top.tolist() == [[-1, -1, 5]] or sorted(r.top[0].tolist()) == [-1, -1, 5]
    assert float(METRICS["coverage_at_k"](r)) == pytest.approx(1 / 6)
    assert METRICS["popularity_bias_at_k"](r).tolist() == [0.0]


def test_top_lists_equal_scoring_top_k(fitted):
    from sqlrec.numeric.scoring import top_k
    _, (uv, ub, iv, ib), train, test = fitted
    r = held_out_ranks(uv, ub, iv, ib, train, test, 10, max_chunk_bytes=5000)
    idx, _ = top_k(uv[r.users], ub[r.users], iv, ib, 10, exclude=train[r.users])
    np.testing.assert_array_equal(np.sort(r.top, axis=1), np.sort(idx, axis=1))


def test_popular_items():
    assert popular_items(np.array([3, 9, 9, 1, 0, 0, 0, 0, 0, 0, 0])).tolist() == \
        [False, True, True] + [False] * 8  # ceil(1.1) = 2 items; the tie at 9 keeps both
    assert popular_items(np.array([5, 5, 5]), share=0.5).tolist() == [True, True, False]  # lower index wins
    assert popular_items(np.zeros(0)).tolist() == []


def test_bad_k(fitted):
    _, reps, train, test = fitted
    for k in (0, -1, 2.5):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            held_out_ranks(*reps, train, test, k)


# --- splits ------------------------------------------------------------------------------------


def tagged(matrix):
    """Each stored entry carries its own id + 1 in data, so splits can be checked entry by entry."""
    m = sp.csr_matrix(matrix, copy=True)
    m.data = np.arange(1, m.nnz + 1, dtype=np.float64)
    return m


def entries(m):
    c = sp.coo_matrix(m)
    return set(zip(c.row.tolist(), c.col.tolist(), c.data.tolist()))


def times_for(matrix, seed=0):
    t = sp.csr_matrix(matrix, copy=True)
    t.data = np.random.default_rng(seed).integers(0, 50, t.nnz).astype(np.int64)  # ties on purpose
    return t


def run_split(name, matrix, test_size, seed):
    if name == "time":
        return SPLITS["time"](matrix, times_for(matrix), test_size)
    return SPLITS[name](matrix, test_size, seed)


@pytest.mark.parametrize("name", ["random", "user", "time"])
def test_split_is_a_partition(name):
    m = tagged(interactions(seed=1))
    train, test = run_split(name, m, 0.2, 3)
    assert train.shape == test.shape == m.shape
    assert train.dtype == test.dtype == m.dtype
    assert not entries(train) & entries(test)
    assert entries(train) | entries(test) == entries(m)
    assert test.nnz > 0 and train.nnz > 0


def test_split_random_size_and_reproducibility():
    m = tagged(interactions(seed=2))
    train, test = split_random(m, 0.2, 7)
    assert test.nnz == int(np.floor(0.2 * m.nnz + 0.5))
    again = split_random(m, 0.2, 7)[1]
    assert entries(again) == entries(test)
    assert entries(split_random(m, 0.2, 8)[1]) != entries(test)


def expected_per_user(counts, test_size):
    return np.clip(np.floor(test_size * counts + 0.5), 0, np.maximum(counts - 1, 0))


@pytest.mark.parametrize("test_size", [0.1, 0.25, 0.5, 0.9])
def test_split_by_user_sizes(test_size):
    m = tagged(interactions(seed=3))
    counts = m.getnnz(axis=1)
    train, test = split_by_user(m, test_size, 0)
    np.testing.assert_array_equal(test.getnnz(axis=1), expected_per_user(counts, test_size))
    one = counts == 1
    assert one.any() and (train.getnnz(axis=1)[one] == 1).all()
    assert (train.getnnz(axis=1) >= 1)[counts > 0].all()


def test_split_by_user_reproducibility():
    m = tagged(interactions(seed=4))
    a, b, c = (split_by_user(m, 0.3, s)[1] for s in (5, 5, 6))
    assert entries(a) == entries(b) and entries(a) != entries(c)


@pytest.mark.parametrize("test_size", [0.2, 0.5])
def test_split_by_time_holds_out_the_latest(test_size):
    m = tagged(interactions(seed=5))
    times = times_for(m, seed=1)
    train, test = split_by_time(m, times, test_size)
    np.testing.assert_array_equal(test.getnnz(axis=1), expected_per_user(m.getnnz(axis=1), test_size))
    c = sp.coo_matrix(times)  # not sp.find: it drops the zero timestamps
    when = {(r, c): t for r, c, t in zip(c.row, c.col, c.data)}
    for u in range(m.shape[0]):
        tr = [when[u, c] for c in train[u].indices]
        te = [when[u, c] for c in test[u].indices]
        if te:
            assert min(te) >= max(tr)
    assert entries(split_by_time(m, times, test_size)[1]) == entries(test)  # deterministic


def test_split_by_time_accepts_datetimes_and_floats():
    m = tagged(interactions(n_users=20, seed=6))
    t = times_for(m)
    as_float = sp.csr_matrix((t.data.astype(np.float64), t.indices, t.indptr), shape=t.shape)
    dt = np.datetime64("2024-01-01") + t.data.astype("timedelta64[D]")
    as_dt = sp.csr_matrix((np.zeros(t.nnz), t.indices, t.indptr), shape=t.shape)
    as_dt.data = dt
    want = entries(split_by_time(m, t, 0.3)[1])
    assert entries(split_by_time(m, as_float, 0.3)[1]) == want
    assert entries(split_by_time(m, as_dt, 0.3)[1]) == want


def test_split_arguments():
    m = tagged(interactions(n_users=10, seed=7))
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="test_size"):
            split_random(m, bad, 0)
    with pytest.raises(ValueError, match="same stored entries"):
        split_by_time(m, times_for(m)[:, ::-1], 0.2)
    assert set(SPLITS) == {"random", "user", "time"}


def test_split_keeps_payload_and_empty_rows():
    m = sp.csr_matrix((np.array([10.0, 20.0, 30.0]), np.array([1, 0, 2]), np.array([0, 2, 2, 3])), shape=(3, 4))
    train, test = split_by_user(m, 0.5, 0)
    assert sorted(train.data.tolist() + test.data.tolist()) == [10.0, 20.0, 30.0]
    assert test.getnnz(axis=1).tolist() == [1, 0, 0]
