"""engine = 'ease' and below_threshold_weight (the contract test covers the shared surface)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from sqlrec import errors

BASE = ("CREATE OR REPLACE MODEL {name} FROM ratings PREDICT movieId USING engine = 'ease', user_id = 'userId', "
        "rating = 'rating', threshold = 4, random_state = 5")


def matrix(ratings, below: float) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    users, items = np.unique(ratings.userId), np.unique(ratings.movieId)
    value = np.where(ratings.rating >= 4, 1.0, below)
    x = sp.csr_matrix((value, (np.searchsorted(users, ratings.userId), np.searchsorted(items, ratings.movieId))),
                      shape=(len(users), len(items)))
    x.eliminate_zeros()
    return x, users, items


def ease_weights(x: sp.csr_matrix, lam: float) -> np.ndarray:
    """Steck's closed form B, by the items x items inverse."""
    g = (x.T @ x).toarray() + lam * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def ease_scores(x: sp.csr_matrix, lam: float) -> np.ndarray:
    return x @ ease_weights(x, lam)


def scores_of(con, name: str) -> np.ndarray:
    h = con.router.model(name).handler
    return h.user_factors()[0].astype(np.float64) @ h.item_factors()[0].astype(np.float64).T


@pytest.mark.parametrize("below", [0.0, 0.5])
def test_scores_are_eases_closed_form(con, ratings, below):
    # Every pair a user has not seen scores what EASE's inverse gives (the SVD route is exact here:
    # 60 users is the matrix's full rank); below-threshold ratings enter X at their share.
    con.execute(BASE.format(name="m") + f", regularization = 7, below_threshold_weight = {below}")
    x, users, items = matrix(ratings, below)
    want = ease_scores(x, 7.0)
    got = scores_of(con, "m")
    unseen = matrix(ratings, 1.0)[0].toarray() == 0
    np.testing.assert_allclose(got[unseen], want[unseen], rtol=1e-4, atol=1e-6)
    rows = con.execute("SELECT movieId, score, rank FROM m WHERE userId = 3 ORDER BY rank").fetchall()
    u = int(np.searchsorted(users, 3))
    order = [i for i in np.argsort(-want[u], kind="stable") if unseen[u, i]][:10]
    assert [r[0] for r in rows] == [int(items[i]) for i in order]
    np.testing.assert_allclose([r[1] for r in rows], want[u, order], rtol=1e-4)
    facts = dict(con.execute("SELECT parameter, value FROM m.model").fetchall())
    assert facts["exact"] == "True" and float(facts["below_threshold_weight"]) == below


def test_below_threshold_weight_changes_what_is_learned(con):
    con.execute(BASE.format(name="a") + ", below_threshold_weight = 0")
    con.execute(BASE.format(name="b") + ", below_threshold_weight = 1")
    assert not np.allclose(scores_of(con, "a"), scores_of(con, "b"))


def test_lower_rank_is_the_svd_approximation(con, ratings):
    con.execute(BASE.format(name="m") + ", regularization = 7, no_components = 6")
    facts = dict(con.execute("SELECT parameter, value FROM m.model").fetchall())
    assert facts["components_used"] == "6" and facts["exact"] == "False"
    x = matrix(ratings, 0.5)[0]
    u, s, vt = np.linalg.svd(x.toarray(), full_matrices=False)
    u, s, v = u[:, :6], s[:6], vt[:6].T
    p_diag = (v ** 2 / (s ** 2 + 7.0)).sum(1) + (1 - (v ** 2).sum(1)) / 7.0
    want = (u * s * s ** 2 / (7.0 * (s ** 2 + 7.0))) @ v.T / p_diag
    np.testing.assert_allclose(scores_of(con, "m"), want, rtol=1e-3, atol=1e-6)


def test_fold_in_equals_the_closed_form_row(con, ratings):
    # A new user given items is x B for that row: the same vector training gives such a user.
    con.execute(BASE.format(name="m") + ", regularization = 7")
    x, users, items = matrix(ratings, 0.5)
    given = [100, 101, 102, 121]
    liked = " UNION ALL ".join(f"SELECT 777 AS userId, {m} AS movieId" for m in given)
    got = con.execute(f"SELECT movieId, score FROM m WHERE userId = 777 USING interactions = '{liked}' "
                      f"ORDER BY rank").fetchall()
    row = sp.csr_matrix((np.ones(len(given)), ([0] * len(given), np.searchsorted(items, given))),
                        shape=(1, len(items)))
    want = np.asarray(row @ ease_weights(x, 7.0)).ravel()
    want[np.searchsorted(items, given)] = -np.inf
    best = np.argsort(-want, kind="stable")[:10]
    assert [r[0] for r in got] == [int(items[i]) for i in best]
    np.testing.assert_allclose([r[1] for r in got], want[best], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("option, message", [
    ("below_threshold_weight = 2", "option below_threshold_weight"),
    ("regularization = 0", "option regularization"),
    ("no_components = 0", "option no_components"),
])
def test_bad_options_name_the_option_and_keep_the_model(con, option, message):
    con.execute(BASE.format(name="m"))
    before = con.execute("SELECT * FROM m WHERE userId = 1").fetchall()
    with pytest.raises(errors.OptionError, match=message):
        con.execute(BASE.format(name="m") + f", {option}")
    assert con.execute("SELECT * FROM m WHERE userId = 1").fetchall() == before


def test_als_learns_below_threshold_pairs_at_their_share(con):
    # The ALS confidence matrix holds a below-threshold pair at below_threshold_weight of its weight;
    # a model stored before the option existed refits from positives only.
    import pyarrow as pa

    from sqlrec.engines.training_data import TrainingData
    from sqlrec.engines import als

    con.execute("CREATE MODEL m FROM ratings PREDICT movieId USING engine = 'als', user_id = 'userId', "
                "rating = 'rating', threshold = 4, no_components = 4, epochs = 2")
    assert con.router.model("m").handler.params["below_threshold_weight"] == 0.0
    td = TrainingData(users=pa.array([1, 2]), items=pa.array([1, 2]), user_type="INTEGER", item_type="INTEGER",
                      rows=np.array([0, 0, 1], np.int32), cols=np.array([0, 1, 1], np.int32),
                      weight=np.array([1, 2, 1], np.float32), rating=None, timestamp=None,
                      positive=np.array([True, False, True]), n_source_rows=3)
    got = als.confidence(td, np.ones(3, bool), {"weighting": "raw", "below_threshold_weight": 0.3})
    np.testing.assert_allclose(got.toarray(), [[1.0, 0.6], [0.0, 1.0]])
    old = als.confidence(td, np.ones(3, bool), {"weighting": "raw"})
    np.testing.assert_allclose(old.toarray(), [[1.0, 0.0], [0.0, 1.0]])


def test_default_rank_is_exact_on_small_data_and_256_above():
    from sqlrec.engines.ease import APPROX_RANK, EXACT_UP_TO, rank_of

    assert rank_of({"no_components": None}, (671, 9066)) == 671  # the MovieLens sample: exact
    assert rank_of({"no_components": None}, (EXACT_UP_TO + 1, 20_000)) == APPROX_RANK == 256
    assert rank_of({"no_components": 6}, (60, 40)) == 6
    assert rank_of({"no_components": 5000}, (60, 40)) == 40
