"""One known key (Model.one_key_table / one_key_columns, scoring.top_one, rowselect.select_row) gives the general path's
rows bit for bit: same GEMV, same selection, same table; and its numpy columns read in DuckDB
as its table does."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from sqlrec.numeric import rowselect, scoring
from conftest import FAST
from sqlrec.models.model import RECOMMENDER_TYPES, Model


def rows_of(rng, kind, n):
    if kind == "normal":
        return rng.standard_normal(n).astype(np.float32)
    if kind == "ties":
        return rng.integers(0, 4, n).astype(np.float32)
    if kind == "sparse":  # nearly all -inf: fewer finite scores than k on some rows
        row = rng.standard_normal(n).astype(np.float32)
        row[rng.random(n) < 0.9995] = -np.inf
        return row
    if kind == "nan":
        row = rng.standard_normal(n).astype(np.float32)
        row[rng.integers(0, n, 3)] = np.nan
        return row
    row = np.full(n, -np.inf, np.float32)  # a few equal finite scores
    row[rng.integers(0, n, 4)] = 1.0
    return row


@pytest.mark.parametrize("kind", ["normal", "ties", "sparse", "nan", "flat"])
def test_select_row_equals_select(kind):
    rng = np.random.default_rng(hash(kind) % 1000)
    for _ in range(60):
        n = int(rng.choice([7, 300, 8191, 8192, 9001, 20_000, 59_047]))
        k = min(int(rng.choice([1, 2, 10, 50])), n)
        row = rows_of(rng, kind, n)
        (want_idx,), (want_val,) = rowselect.select(row[None], k)
        got_idx, got_val = rowselect.select_row(row, k)
        np.testing.assert_array_equal(got_idx, want_idx)
        np.testing.assert_array_equal(got_val, want_val)
        assert got_idx.dtype == want_idx.dtype and got_val.dtype == want_val.dtype


@pytest.mark.parametrize("n, k", [(9000, 10), (20_000, 10), (300, 5), (6, 10), (40, 0)])
def test_top_one_is_top_k_row_bit_for_bit(n, k):
    rng = np.random.default_rng(n + k)
    t, tb = rng.standard_normal((n, 24)).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    q, qb = rng.standard_normal((8, 24)).astype(np.float32), rng.standard_normal(8).astype(np.float64)
    seen = sp.random(8, n, density=0.02, format="csr", random_state=1)
    for r in range(8):
        want_idx, want_val = scoring.top_k(q[r:r + 1], qb[r:r + 1], t, tb, k, exclude=seen[r])
        got_idx, got_val = scoring.top_one(q[r:r + 1], qb[r:r + 1], t, tb, k,
                                           exclude=seen.indices[seen.indptr[r]:seen.indptr[r + 1]])
        assert len(got_idx) == min(k, n)
        np.testing.assert_array_equal(got_idx, want_idx[0, :min(k, n)])
        np.testing.assert_array_equal(got_val, want_val[0, :min(k, n)])
    want = scoring.top_k(q[:1], None, t, None, k)
    got = scoring.top_one(q[:1], None, t, None, k)
    np.testing.assert_array_equal(got[1], want[1][0, :min(k, n)])


def test_top_one_is_cancelled_like_top_k():
    t = np.ones((5, 2), np.float32)
    with pytest.raises(scoring.Cancelled, match="0 of 1 rows"):
        scoring.top_one(np.ones((1, 2), np.float32), None, t, None, 3, cancelled=lambda: True)


@pytest.mark.parametrize("kind, keys", [("user_item", [2, 5, 11, 60, 999]), ("item_user", [101, 130, 139])])
@pytest.mark.parametrize("exclude_seen, k", [(True, 10), (False, 40), (True, 1000)])
def test_one_key_equals_the_general_path(trained, monkeypatch, kind, keys, exclude_seen, k):
    model = trained.router.model("movie_rec")
    spec = RECOMMENDER_TYPES[kind]
    for key in keys:
        fast = model.recommend(kind, [key], k, exclude_seen=exclude_seen)
        with monkeypatch.context() as m:
            m.setattr(Model, "one_key_table", lambda *a, **kw: None)
            general = model.recommend(kind, [key], k, exclude_seen=exclude_seen)
        assert fast.schema == general.schema and fast.equals(general), (kind, key)
        columns = model.one_key_columns(spec, key, k, exclude_seen=exclude_seen, search=None, cancelled=None,
                                        where="t")
        if key in (999,):  # unknown: the general path's fallback
            assert columns is None
            continue
        assert pa.table(columns).equals(general), (kind, key)


def test_columns_leave_nan_scores_and_similarity_to_the_table(trained, monkeypatch):
    model = trained.router.model("movie_rec")
    args = dict(exclude_seen=True, search=None, cancelled=None, where="t")
    assert model.one_key_columns(RECOMMENDER_TYPES["item_item"], 101, 5, **args) is None
    nan = lambda *a, **kw: (np.array([3, 1]), np.array([np.nan, 1.0], np.float32))  # noqa: E731
    monkeypatch.setattr(scoring, "top_one", nan)
    assert model.one_key_columns(RECOMMENDER_TYPES["user_item"], 2, 5, **args) is None
    assert model.one_key_table(RECOMMENDER_TYPES["user_item"], 2, 5, **args).num_rows == 2


def test_a_user_who_has_seen_everything_gets_no_rows_on_every_path(con):
    con.execute("CREATE TABLE r AS SELECT u AS userId, i AS movieId FROM range(6) a(u), range(5) b(i) "
                "WHERE u = 0 OR (u + i) % 2 = 0")
    con.execute(f"CREATE MODEL m FROM r PREDICT movieId USING user_id = 'userId', {FAST}")
    sql = "SELECT * FROM m WHERE userId = ?"
    planned = [con.execute(sql, [0]) for _ in range(3)][-1]  # the third run follows the plan
    described = planned.description
    assert planned.fetchall() == []
    full = con.execute(f"{sql} /* the full path */", [0])
    assert described == full.description and full.fetchall() == []
    assert sorted(r[1] for r in con.execute(sql, [1]).fetchall()) == [0, 2, 4]  # its unseen items
