"""engine = 'svd' (PureSVD): scores are the rank-d reconstruction of the interaction matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import sqlrec
from sqlrec.engines import svd as svd_mod
from sqlrec.engines.svd import truncated_svd

SVD = "engine = 'svd', user_id = 'userId', rating = 'rating', threshold = 4"


def dense_positives(con):
    """(R, user ids, item ids) of the positives, ids sorted as sqlrec maps them."""
    rows = con.execute("SELECT userId, movieId FROM ratings WHERE rating >= 4").fetchall()
    users = sorted({u for u, _ in con.execute("SELECT userId, movieId FROM ratings").fetchall()})
    items = sorted({i for _, i in con.execute("SELECT userId, movieId FROM ratings").fetchall()})
    r = np.zeros((len(users), len(items)))
    for u, i in rows:
        r[users.index(u), items.index(i)] = 1.0
    return r, users, items


def rank_d(r, d):
    u, s, vt = np.linalg.svd(r, full_matrices=False)
    return u[:, :d], s[:d], vt[:d].T


@pytest.fixture
def svd(con):
    con.execute(f"CREATE MODEL s FROM ratings PREDICT movieId USING {SVD}, no_components = 6")
    return con


def test_user_item_scores_are_the_reconstruction(svd):
    r, users, items = dense_positives(svd)
    u, s, v = rank_d(r, 6)
    recon = u * s @ v.T
    for user in (1, 2, 37):
        got = svd.execute(f"SELECT movieId, score, rank FROM s WHERE userId = {user} "
                          "USING n_recommendations = 40, exclude_seen = false").fetchall()
        assert [g[2] for g in got] == list(range(1, 41))
        row = recon[users.index(user)]
        np.testing.assert_allclose([g[1] for g in got], [row[items.index(i)] for i, _, _ in got], atol=1e-5)
        assert [g[1] for g in got] == sorted([g[1] for g in got], reverse=True)
    # the taste groups: user 1 (even group) gets items 100-119 first
    top = [m for m, in svd.execute("SELECT movieId FROM s WHERE userId = 1 USING n_recommendations = 5").fetchall()]
    assert all(100 <= m < 120 for m in top)


def test_four_recommender_types(svd):
    r, users, items = dense_positives(svd)
    u, s, v = rank_d(r, 6)
    item_vecs = v * np.sqrt(s)
    unit = item_vecs / np.linalg.norm(item_vecs, axis=1, keepdims=True)
    got = svd.execute("SELECT similar_movieId, score FROM s WHERE movieId = 105 "
                      "USING recommender_type = 'item_item', n_recommendations = 5").fetchall()
    sims = unit @ unit[items.index(105)]
    sims[items.index(105)] = -np.inf
    assert [g[0] for g in got] == [items[j] for j in np.argsort(-sims, kind="stable")[:5]]
    np.testing.assert_allclose([g[1] for g in got], np.sort(sims)[::-1][:5], atol=1e-5)
    for rtype, key, n in (("item_user", "movieId = 105", 3), ("user_user", "userId = 4", 3)):
        rows = svd.execute(f"SELECT * FROM s WHERE {key} USING recommender_type = '{rtype}', "
                           f"n_recommendations = {n}").fetchall()
        assert [row[3] for row in rows] == [1, 2, 3]
    # user_user neighbours of an even user are even users
    neigh = svd.execute("SELECT similar_userId FROM s WHERE userId = 4 USING recommender_type = 'user_user'").fetchall()
    assert all(x % 2 == 0 for x, in neigh)


def test_truncated_svd_both_paths(monkeypatch):
    m = sp.random(80, 50, density=0.2, random_state=1, format="csr") * 3
    want_u, want_s, want_v = rank_d(m.toarray(), 5)
    for dense_cells in (10**9, 0):  # LAPACK, then ARPACK
        monkeypatch.setattr(svd_mod, "_DENSE_CELLS", dense_cells)
        u, s, v = truncated_svd(m, 5, random_state=3)
        np.testing.assert_allclose(s, want_s, rtol=1e-8)
        np.testing.assert_allclose(u * s @ v.T, want_u * want_s @ want_v.T, atol=1e-8)
        # signs fixed: each item column's largest entry is positive, so both paths agree exactly
        assert (v[np.argmax(np.abs(v), axis=0), np.arange(5)] > 0).all()


def test_no_components_is_capped_and_described(con):
    con.execute(f"CREATE MODEL s FROM ratings PREDICT movieId USING {SVD}, no_components = 500")
    model = dict(con.execute("SELECT * FROM s.model").fetchall())
    assert model["no_components"] == "500" and model["components_used"] == "40"  # 40 items
    assert float(model["explained_energy"]) == pytest.approx(1.0, abs=1e-5)  # full rank: R itself
    con.execute(f"CREATE OR REPLACE MODEL s FROM ratings PREDICT movieId USING {SVD}, no_components = 2")
    model = dict(con.execute("SELECT * FROM s.model").fetchall())
    r, _, _ = dense_positives(con)
    s = np.linalg.svd(r, compute_uv=False)
    assert model["components_used"] == "2"
    assert float(model["explained_energy"]) == pytest.approx((s[:2] ** 2).sum() / (s ** 2).sum(), rel=1e-5)


def test_storage_round_trip(tmp_path, ratings):
    path = str(tmp_path / "svd.duckdb")
    with sqlrec.connect(path) as con:
        con.register("df", ratings)
        con.execute("CREATE TABLE ratings AS SELECT * FROM df")
        con.execute(f"CREATE MODEL s FROM ratings PREDICT movieId USING {SVD}, no_components = 6")
        before = con.execute("SELECT * FROM s WHERE userId IN (1, 2)").fetchall()
        model_before = con.execute("SELECT * FROM s.model").fetchall()
    with sqlrec.connect(path, read_only=True) as con:
        assert con.execute("SELECT * FROM s WHERE userId IN (1, 2)").fetchall() == before
        assert con.execute("SELECT * FROM s.model").fetchall() == model_before
        assert con.execute("SELECT engine FROM sqlrec.metrics WHERE name = 's'").fetchall() == [("svd",)]


def test_evaluation_beats_popularity(con):
    for name, engine in (("s", "svd"), ("p", "popularity")):
        con.execute(f"CREATE MODEL {name} FROM ratings PREDICT movieId USING engine = '{engine}', user_id = 'userId', "
                    "rating = 'rating', threshold = 4, evaluation = true, split = 'user', random_state = 1")
    got = dict(con.execute("SELECT name, precision_at_k FROM sqlrec.metrics").fetchall())
    assert got["s"] > 1.5 * got["p"]
    hist = con.execute("SELECT epoch FROM s.history").fetchall()
    assert hist == [(1,)]


def test_bad_options(con):
    with pytest.raises(sqlrec.ProgrammingError, match="option no_components must be >= 1, got 0"):
        con.execute(f"CREATE MODEL s FROM ratings PREDICT movieId USING {SVD}, no_components = 0")
    with pytest.raises(sqlrec.ProgrammingError, match="unknown option 'loss'"):
        con.execute(f"CREATE MODEL s FROM ratings PREDICT movieId USING {SVD}, loss = 'warp'")
    with pytest.raises(sqlrec.ProgrammingError, match="unknown engine 'svdd'.*svd"):
        con.execute("CREATE MODEL s FROM ratings PREDICT movieId USING engine = 'svdd', user_id = 'userId'")
