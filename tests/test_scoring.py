"""sqlrec.numeric.scoring against a brute-force reference (full matrix, Python sort) and LightFM.predict."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.sparse as sp

from sqlrec.numeric import scoring
from sqlrec.numeric.scoring import chunk_rows, flatten_top_k, normalize_rows, top_k


def reference(q, qb, t, tb, k, exclude=None, candidates=None, exclude_index=None):
    """Full float64 score matrix, ineligible entries dropped, sorted by (-score, index)."""
    s = np.asarray(q, np.float64) @ np.asarray(t, np.float64).T
    if qb is not None:
        s += np.asarray(qb, np.float64)[:, None]
    if tb is not None:
        s += np.asarray(tb, np.float64)[None, :]
    ok = np.ones(s.shape, bool)
    if exclude is not None:
        ex = sp.coo_matrix(exclude)
        ok[ex.row, ex.col] = False
    if candidates is not None:
        allowed = np.zeros(s.shape[1], bool)
        allowed[np.asarray(candidates)] = True
        ok &= allowed
    if exclude_index is not None:
        r = np.flatnonzero(np.asarray(exclude_index) >= 0)
        ok[r, np.asarray(exclude_index)[r]] = False
    idx = np.full((len(s), k), -1, np.int64)
    val = np.full((len(s), k), -np.inf)
    for i in range(len(s)):
        best = sorted(np.flatnonzero(ok[i]), key=lambda j: (-s[i, j], j))[:k]
        idx[i, : len(best)] = best
        val[i, : len(best)] = s[i, best]
    return idx, val


def random_case(seed, m=37, n=53, d=6, integer=False):
    """integer=True gives exact scores with many ties (tie-breaking); otherwise Gaussian floats."""
    rng = np.random.default_rng(seed)
    draw = (lambda *s: rng.integers(-2, 3, s)) if integer else (lambda *s: rng.standard_normal(s))
    q, t = draw(m, d).astype(np.float32), draw(n, d).astype(np.float32)
    qb, tb = draw(m).astype(np.float32), draw(n).astype(np.float32)
    exclude = sp.random(m, n, density=0.3, format="csr", random_state=seed, dtype=np.float32)
    return q, qb, t, tb, exclude


def assert_same(got, want, exact_scores=False):
    (gi, gv), (wi, wv) = got, want
    assert gi.dtype == np.int64 and gv.dtype == np.float32
    assert gi.shape == wi.shape and gv.shape == wv.shape
    np.testing.assert_array_equal(gi, wi)
    if exact_scores:
        np.testing.assert_array_equal(gv, wv)
    else:
        np.testing.assert_allclose(gv, wv, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("k", [1, 5, 10, 52, 53, 60])
def test_matches_reference_with_exclude(integer, k):
    q, qb, t, tb, ex = random_case(k, integer=integer)
    assert_same(top_k(q, qb, t, tb, k, exclude=ex), reference(q, qb, t, tb, k, ex), exact_scores=integer)


@pytest.mark.parametrize("integer", [False, True])
def test_without_biases_or_one_bias(integer):
    q, qb, t, tb, _ = random_case(3, integer=integer)
    for a, b in [(None, None), (qb, None), (None, tb)]:
        assert_same(top_k(q, a, t, b, 7), reference(q, a, t, b, 7), exact_scores=integer)


def test_ties_broken_by_lower_index():
    # Every score equal: the answer is the lowest eligible indices, in order.
    q, t = np.zeros((4, 3), np.float32), np.zeros((20, 3), np.float32)
    ex = sp.csr_matrix(([1, 1, 1], ([0, 0, 2], [0, 3, 1])), shape=(4, 20))
    idx, val = top_k(q, np.ones(4), t, np.ones(20), 5, exclude=ex)
    np.testing.assert_array_equal(idx, [[1, 2, 4, 5, 6], [0, 1, 2, 3, 4], [0, 2, 3, 4, 5], [0, 1, 2, 3, 4]])
    assert (val == 2).all()


def test_tie_at_the_selection_boundary():
    # Scores 5,4,3,3,3,3 (index order shuffled): top-3 must take the two lowest-index 3s.
    tb = np.array([3, 5, 3, 4, 3, 3], np.float32)
    idx, val = top_k(np.zeros((1, 1)), None, np.zeros((6, 1)), tb, 3)
    np.testing.assert_array_equal(idx, [[1, 3, 0]])
    np.testing.assert_array_equal(val, [[5, 4, 3]])
    idx, _ = top_k(np.zeros((1, 1)), None, np.zeros((6, 1)), tb, 4)
    np.testing.assert_array_equal(idx, [[1, 3, 0, 2]])


@pytest.mark.parametrize("integer", [False, True])
def test_candidates(integer):
    q, qb, t, tb, ex = random_case(5, integer=integer)
    cand = np.array([50, 3, 3, 17, 0, 44, 29, 8, 12, 40, 41, 42])  # unsorted, with a duplicate
    for k in (4, 11, 15):
        want = reference(q, qb, t, tb, k, ex, candidates=cand)
        assert_same(top_k(q, qb, t, tb, k, exclude=ex, candidates=cand), want, exact_scores=integer)


def test_empty_candidates():
    q, qb, t, tb, ex = random_case(6)
    idx, val = top_k(q, qb, t, tb, 3, exclude=ex, candidates=np.array([], np.int64))
    assert (idx == -1).all() and (val == -np.inf).all()


def test_exclude_index():
    q, _, t, _, _ = random_case(7, m=53, n=53)
    qn, tn = normalize_rows(q), normalize_rows(t)
    self_idx = np.arange(53)
    self_idx[[4, 9]] = -1  # -1 = nothing to drop
    assert_same(top_k(qn, None, tn, None, 6, exclude_index=self_idx),
                reference(qn, None, tn, None, 6, exclude_index=self_idx))
    cand = np.arange(0, 53, 3)
    assert_same(top_k(qn, None, tn, None, 6, exclude_index=self_idx, candidates=cand),
                reference(qn, None, tn, None, 6, exclude_index=self_idx, candidates=cand))


def test_self_is_dropped_in_item_item():
    v = normalize_rows(np.random.default_rng(0).standard_normal((30, 5)).astype(np.float32))
    idx, _ = top_k(v, None, v, None, 29, exclude_index=np.arange(30))
    assert not (idx == np.arange(30)[:, None]).any()
    assert (idx >= 0).all()


def test_k_larger_than_targets_and_fully_excluded_rows():
    q, qb, t, tb, _ = random_case(8, m=5, n=6)
    ex = sp.lil_matrix((5, 6))
    ex[1, :] = 1          # everything excluded
    ex[3, [0, 2, 4]] = 1  # three left
    ex = ex.tocsr()
    idx, val = top_k(q, qb, t, tb, 10, exclude=ex)
    assert idx.shape == (5, 10) and val.shape == (5, 10)
    assert (idx[1] == -1).all() and (val[1] == -np.inf).all()
    assert (idx[3, 3:] == -1).all() and (idx[3, :3] >= 0).all()
    assert (idx[[0, 2, 4], 6:] == -1).all() and (idx[[0, 2, 4], :6] >= 0).all()
    assert_same((idx, val), reference(q, qb, t, tb, 10, ex))


def test_degenerate_sizes():
    q, qb, t, tb, ex = random_case(9)
    idx, val = top_k(q, qb, t, tb, 0, exclude=ex)
    assert idx.shape == (37, 0) and val.shape == (37, 0)
    idx, val = top_k(q[:0], qb[:0], t, tb, 4)
    assert idx.shape == (0, 4)
    idx, val = top_k(q, qb, t[:0], tb[:0], 4)
    assert (idx == -1).all() and idx.shape == (37, 4)


def test_explicit_zeros_and_unsorted_exclude_entries_are_excluded():
    q, qb, t, tb, _ = random_case(10, m=3, n=8)
    # Stored entries count, whatever their value; order and duplicates do not matter.
    ex = sp.csr_matrix((np.array([0.0, 1.0, 0.0, 2.0]), np.array([5, 2, 5, 7]), np.array([0, 3, 3, 4])),
                       shape=(3, 8))
    idx, _ = top_k(q, qb, t, tb, 8, exclude=ex)
    assert set(idx[0][idx[0] >= 0]) == {0, 1, 3, 4, 6, 7}
    assert set(idx[2][idx[2] >= 0]) == set(range(7))


@pytest.mark.parametrize("max_chunk_bytes", [1, 4 * 53 * 2, 4 * 53 * 5 + 3, 4 * 53 * 36, 1 << 30])
def test_chunking_does_not_change_results(max_chunk_bytes):
    q, qb, t, tb, ex = random_case(11, integer=True)
    cand = np.arange(1, 53, 2)
    self_idx = np.arange(37) % 7 - 1
    want = top_k(q, qb, t, tb, 9, exclude=ex, candidates=cand, exclude_index=self_idx)
    got = top_k(q, qb, t, tb, 9, exclude=ex, candidates=cand, exclude_index=self_idx,
                max_chunk_bytes=max_chunk_bytes)
    assert_same(got, want, exact_scores=True)
    assert_same(got, reference(q, qb, t, tb, 9, ex, cand, self_idx), exact_scores=True)


@pytest.mark.parametrize("num_threads", [1, 2, 3, 8])
def test_threads_do_not_change_results(num_threads, monkeypatch):
    # Integer scores are exact in float32 whatever BLAS does, so results must match bit for bit.
    q, qb, t, tb, ex = random_case(14, m=61, integer=True)
    cand = np.arange(0, 53, 3)
    self_idx = np.arange(61) % 9 - 1
    names = set()
    select = scoring._select

    def spy(scores, k):
        names.add(threading.current_thread().name)
        return select(scores, k)

    monkeypatch.setattr(scoring, "_select", spy)
    got = top_k(q, qb, t, tb, 7, exclude=ex, candidates=cand, exclude_index=self_idx,
                max_chunk_bytes=4 * 53 * 3, num_threads=num_threads)
    assert_same(got, reference(q, qb, t, tb, 7, ex, cand, self_idx), exact_scores=True)
    if num_threads == 1 or scoring._blas_controller() is None:  # without threadpoolctl: no threads
        assert names == {threading.current_thread().name}
    else:  # every chunk ran on a worker thread
        assert names and all(name.startswith("sqlrec-top-k") for name in names)


def test_threads_on_float_scores():
    q, qb, t, tb, ex = random_case(15, m=200, n=300, d=16)
    want = reference(q, qb, t, tb, 10, ex)
    for threads in (1, 4):
        assert_same(top_k(q, qb, t, tb, 10, exclude=ex, max_chunk_bytes=4 * 300 * 8, num_threads=threads), want)


def test_few_chunks_or_no_blas_limiter_stay_on_the_calling_thread(monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("no worker threads expected")

    monkeypatch.setattr(scoring, "ThreadPoolExecutor", no_pool)
    q, qb, t, tb, ex = random_case(16)
    want = reference(q, qb, t, tb, 5, ex)
    assert_same(top_k(q, qb, t, tb, 5, exclude=ex, num_threads=8), want)  # one chunk
    monkeypatch.setattr(scoring, "_blas_controller", lambda: None)  # threadpoolctl missing
    assert_same(top_k(q, qb, t, tb, 5, exclude=ex, max_chunk_bytes=4 * 53, num_threads=8), want)


def test_a_failing_chunk_fails_the_call_and_stops_the_others(monkeypatch):
    calls = []
    select = scoring._select

    def failing(scores, k):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("chunk 3")
        return select(scores, k)

    monkeypatch.setattr(scoring, "_select", failing)
    q, qb, t, tb, ex = random_case(17, m=400)
    with pytest.raises(MemoryError, match="chunk 3"):
        top_k(q, qb, t, tb, 5, exclude=ex, max_chunk_bytes=4 * 53, num_threads=2)
    assert len(calls) < 400  # the other worker stopped taking chunks


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_bad_num_threads(bad):
    q, qb, t, tb, _ = random_case(18)
    with pytest.raises(ValueError, match="num_threads"):
        top_k(q, qb, t, tb, 3, num_threads=bad)


def test_chunk_rows_respects_the_budget():
    for n in (1, 7, 20_000, 10**7):
        for budget in (1, 4096, 64 << 20):
            rows = chunk_rows(n, budget)
            assert rows >= 1 and (rows == 1 or rows * n * 4 <= budget)


def test_inputs_of_other_dtypes_are_scored_in_float32():
    q, qb, t, tb, ex = random_case(12)
    got = top_k(q.astype(np.float64), qb.astype(np.float64), t.astype(np.float64), tb.astype(np.float64),
                5, exclude=ex.astype(np.int8))
    assert_same(got, reference(q, qb, t, tb, 5, ex))


def test_bad_arguments():
    q, qb, t, tb, ex = random_case(13)
    with pytest.raises(ValueError, match="same width"):
        top_k(q, qb, t[:, :3], tb, 3)
    with pytest.raises(ValueError, match="query_bias"):
        top_k(q, qb[:3], t, tb, 3)
    with pytest.raises(ValueError, match="target_bias"):
        top_k(q, qb, t, tb[:3], 3)
    with pytest.raises(ValueError, match="exclude"):
        top_k(q, qb, t, tb, 3, exclude=ex[:3])
    with pytest.raises(ValueError, match="exclude_index"):
        top_k(q, qb, t, tb, 3, exclude_index=np.full(37, 53))
    with pytest.raises(ValueError, match="candidates"):
        top_k(q, qb, t, tb, 3, candidates=np.array([0, 53]))
    with pytest.raises(ValueError, match="k must"):
        top_k(q, qb, t, tb, -1)


def test_normalize_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]], np.float32)
    got = normalize_rows(x)
    np.testing.assert_allclose(got, [[0.6, 0.8], [0, 0], [-1, 0]])
    assert got.dtype == np.float32 and x[0, 0] == 3.0  # a copy
    assert normalize_rows(np.array([[2, 0]])).dtype == np.float64


def test_flatten_top_k():
    idx = np.array([[4, 2, -1], [-1, -1, -1], [0, 1, 3]])
    val = np.array([[0.5, 0.25, -np.inf], [-np.inf] * 3, [3, 2, 1]], np.float32)
    rows, cols, scores, ranks = flatten_top_k(idx, val)
    np.testing.assert_array_equal(rows, [0, 0, 2, 2, 2])
    np.testing.assert_array_equal(cols, [4, 2, 0, 1, 3])
    np.testing.assert_array_equal(scores, np.array([0.5, 0.25, 3, 2, 1], np.float32))
    np.testing.assert_array_equal(ranks, [1, 2, 1, 2, 3])
    assert scores.dtype == np.float32 and ranks.dtype == np.int64


def test_agrees_with_lightfm_predict():
    lightfm = pytest.importorskip("lightfm")
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 120
    inter = sp.random(n_users, n_items, density=0.08, format="csr", random_state=1, dtype=np.float32)
    inter.data[:] = 1
    model = lightfm.LightFM(no_components=8, loss="warp", random_state=0).fit(inter, epochs=5)
    ub, uv = model.get_user_representations()
    ib, iv = model.get_item_representations()
    users = rng.choice(n_users, 20, replace=False)
    idx, val = top_k(uv[users], ub[users], iv, ib, 10, exclude=inter[users])
    seen = inter[users].toarray() > 0
    for row, u in enumerate(users):
        # LightFM's own scores, seen items dropped, best first (predict and a manual dot product
        # differ by ~1e-6 in float32, so compare scores, not the exact order of near ties).
        pred = model.predict(np.full(n_items, u, np.int32), np.arange(n_items, dtype=np.int32))
        pred[seen[row]] = -np.inf
        np.testing.assert_allclose(val[row], np.sort(pred)[::-1][:10], atol=1e-5)
        np.testing.assert_allclose(pred[idx[row]], val[row], atol=1e-5)


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("k", [1, 10, 60])
def test_wide_rows_block_selection_matches_reference(integer, k):
    # >= 8192 targets take the block path (_select_blocks); integer factors make ties at the
    # k-th score common, and heavy exclusion makes some rows mostly -inf.
    rng = np.random.default_rng(k)
    m, n, d = 24, 9001, 4  # 9001 = 17 * 512 + 297: a partial last row of classes
    q = rng.integers(-2, 3, (m, d)).astype(np.float32) if integer else rng.standard_normal((m, d)).astype(np.float32)
    t = rng.integers(-2, 3, (n, d)).astype(np.float32) if integer else rng.standard_normal((n, d)).astype(np.float32)
    qb, tb = rng.standard_normal(m).astype(np.float32), None
    dense = rng.random((m, n)) < 0.05
    dense[3, :] = rng.random(n) < 0.9995  # a row with fewer eligible targets than k may ask
    dense[4, :] = True
    ex = sp.csr_matrix(dense)
    want = reference(q, qb, t, tb, k, exclude=ex)
    assert_same(top_k(q, qb, t, tb, k, exclude=ex), want)
    assert (scoring._select(np.zeros((2, n), np.float32), k)[0] == np.arange(k)).all()  # all tied
