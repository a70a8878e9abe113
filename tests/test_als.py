"""engine = 'als': implicit's ALS behind sqlrec's surface (the contract test covers the rest)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import threadpoolctl

import sqlrec
from sqlrec import errors
from sqlrec.engines import als
from conftest import file_database

implicit_als = pytest.importorskip("implicit.cpu.als")

BASE = ("CREATE OR REPLACE MODEL {name} FROM ratings PREDICT movieId USING engine = 'als', user_id = 'userId', "
        "rating = 'rating', threshold = 4, random_state = 5, ")


def factors(con, name):
    h = con.router.model(name).handler
    return h.user_factors()[0], h.item_factors()[0]


def params(con, name):
    return dict(con.execute(f"SELECT parameter, value FROM {name}.model").fetchall())


def test_implicit_names_are_aliases(con):
    con.execute(BASE.format(name="a") + "factors = 6, iterations = 4")
    stored = params(con, "a")
    assert (stored["no_components"], stored["epochs"], stored["epochs_trained"]) == ("6", "4", "4")
    assert stored["factors"] == "6"  # DESCRIBE m.model: the learned factor count
    assert factors(con, "a")[0].shape == (60, 6)
    with pytest.raises(errors.OptionError, match="option no_components given twice"):
        con.execute(BASE.format(name="b") + "factors = 6, no_components = 6")


def test_equals_raw_implicit_and_scores_are_dot_products(con, ratings):
    con.execute(BASE.format(name="m") + "no_components = 8, regularization = 0.5, alpha = 2, epochs = 6")
    pos = ratings[ratings.rating >= 4]
    users, items = np.unique(ratings.userId), np.unique(ratings.movieId)
    cui = sp.csr_matrix((np.ones(len(pos), np.float32),
                         (np.searchsorted(users, pos.userId), np.searchsorted(items, pos.movieId))),
                        shape=(len(users), len(items)))
    with threadpoolctl.threadpool_limits(1, "blas"):
        raw = implicit_als.AlternatingLeastSquares(factors=8, regularization=0.5, alpha=2.0, iterations=6,
                                                   num_threads=1, random_state=5)
        raw.fit(cui, show_progress=False)
    u, v = factors(con, "m")
    np.testing.assert_array_equal(u, raw.user_factors)
    np.testing.assert_array_equal(v, raw.item_factors)
    got = con.execute("SELECT movieId, score FROM m WHERE userId = 3 ORDER BY rank").fetchall()
    expected = u[2] @ v.T
    for movie, score in got:
        assert score == pytest.approx(float(expected[np.searchsorted(items, movie)]), rel=1e-5)
    # ranked by score: the k best of the dot products, best first (scores compared at float32's precision)
    scores = [r[1] for r in got]
    assert scores == sorted(scores, reverse=True)
    assert len(scores) == 10


def _data(weights):
    from sqlrec.engines.training_data import TrainingData
    import pyarrow as pa

    rows, cols = np.array([0, 0, 1, 2, 2], np.int32), np.array([0, 1, 1, 0, 2], np.int32)
    return TrainingData(users=pa.array([1, 2, 3]), items=pa.array([1, 2, 3]), user_type="INTEGER",
                        item_type="INTEGER", rows=rows, cols=cols, weight=np.asarray(weights, np.float32),
                        rating=None, timestamp=None, positive=np.array([True, True, True, True, False]),
                        n_source_rows=5)


def test_weightings_are_implicits_own():
    from implicit.nearest_neighbours import bm25_weight, tfidf_weight

    data = _data([3, 1, 7, 2, 5])
    mask = np.ones(5, bool)
    opts = {"weighting": "raw", "bm25_k1": 100.0, "bm25_b": 0.8}
    raw = als.confidence(data, mask, opts)
    assert raw.toarray().tolist() == [[3, 1, 0], [0, 7, 0], [2, 0, 0]]  # the negative pair is left out
    log = als.confidence(data, mask, dict(opts, weighting="log1p"))
    np.testing.assert_allclose(log.toarray(), np.log1p(raw.toarray()), rtol=1e-6)
    bm25 = als.confidence(data, mask, dict(opts, weighting="bm25", bm25_k1=1.2, bm25_b=0.5))
    expected = bm25_weight(sp.csr_matrix(raw.T, dtype=np.float64), K1=1.2, B=0.5).T.toarray()
    np.testing.assert_allclose(bm25.toarray(), expected, rtol=1e-6)
    tfidf = als.confidence(data, mask, dict(opts, weighting="tfidf"))
    np.testing.assert_allclose(tfidf.toarray(), tfidf_weight(sp.csr_matrix(raw.T, dtype=np.float64)).T.toarray(),
                               rtol=1e-6)
    for weighted in (log, bm25, tfidf):  # never a pair the data does not have
        assert not (weighted.astype(bool) > raw.astype(bool)).nnz


def test_weight_column_and_weighting_change_the_model(con):
    con.execute("CREATE TABLE plays AS SELECT userId, movieId, CAST(1 + (userId * movieId) % 9 AS INTEGER) AS n "
                "FROM ratings WHERE rating >= 4")
    make = ("CREATE OR REPLACE MODEL {name} FROM plays PREDICT movieId USING engine = 'als', user_id = 'userId', "
            "random_state = 5, no_components = 8, epochs = 4{extra}")
    con.execute(make.format(name="counted", extra=""))
    con.execute(make.format(name="weighted", extra=", weight = 'n'"))
    con.execute(make.format(name="logged", extra=", weight = 'n', weighting = 'log1p'"))
    con.execute(make.format(name="bm25", extra=", weight = 'n', weighting = 'bm25'"))
    models = [factors(con, n)[1] for n in ("counted", "weighted", "logged", "bm25")]
    for i in range(len(models)):
        for j in range(i):
            assert not np.allclose(models[i], models[j])
    with pytest.raises(errors.OptionError, match="option weighting must be one of 'raw', 'log1p', 'bm25', 'tfidf'"):
        con.execute(make.format(name="bad", extra=", weighting = 'bm52'"))


def test_history_per_iteration_and_early_stopping(con):
    con.execute(BASE.format(name="ev") + "no_components = 8, epochs = 6, evaluation = true")
    epochs = [r[0] for r in con.execute("SELECT epoch FROM ev.history ORDER BY epoch").fetchall()]
    assert epochs == [1, 2, 3, 4, 5, 6]
    con.execute(BASE.format(name="es") + "no_components = 8, epochs = 200, evaluation = true, "
                "early_stopping = true, patience = 2")
    stopped = con.execute("SELECT count(*) FROM es.history").fetchone()[0]
    assert stopped < 200
    assert int(params(con, "es")["epochs_trained"]) <= stopped


def test_cancel_between_iterations(con):
    import threading

    timer = threading.Timer(0.5, con.interrupt)  # a real interrupt, from another thread
    timer.start()
    with pytest.raises(errors.Cancelled, match=r"training c: cancelled after epoch \d+ of 10000; nothing was saved"):
        con.execute(BASE.format(name="c") + "no_components = 8, epochs = 10000")
    timer.cancel()
    assert not con.router.catalog().exists("c")


def test_threads_from_num_threads_and_blas_single_threaded(con, monkeypatch):
    seen = {}
    real = als._implicit_als()

    class Spy(real):
        def __init__(self, **kwargs):
            seen["num_threads"] = kwargs["num_threads"]
            super().__init__(**kwargs)

        def fit(self, *args, **kwargs):
            seen["blas"] = {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}
            return super().fit(*args, **kwargs)

    monkeypatch.setattr(als, "_implicit_als", lambda: Spy)
    con.execute(BASE.format(name="t") + "no_components = 4, epochs = 2, num_threads = 2")
    assert seen["num_threads"] == 2
    assert seen["blas"] <= {1}


def test_missing_implicit_names_the_option_and_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "als.duckdb"
    file_database(path, BASE.format(name="kept") + "no_components = 4, epochs = 2").close()
    monkeypatch.setattr(als, "_implicit_als", lambda: None)
    con = sqlrec.connect(str(path))
    with pytest.raises(errors.OptionError, match=r"CREATE MODEL x: option engine = 'als' needs the implicit "
                                                 r"library, which is not installed; install sqlrec\[als\]"):
        con.execute(BASE.format(name="x") + "epochs = 2")
    # A stored ALS model is plain arrays: reading it back from the file needs no implicit.
    assert len(con.execute("SELECT * FROM kept WHERE userId = 1").fetchall()) == 10
    con.close()


@pytest.mark.parametrize("weighting", ["raw", "log1p"])
def test_fold_in_is_implicits_recalculate_user(con, ratings, weighting):
    # A new user given by its liked movies gets ALS's own half-step, the vector implicit's
    # recalculate_user computes from the same factors, and the ranking that vector gives.
    con.execute(BASE.format(name="m") + f"no_components = 8, regularization = 0.5, alpha = 3, epochs = 6, "
                f"weighting = '{weighting}'")
    liked = [int(m) for m in ratings[ratings.rating >= 4].movieId.unique()[:7]]
    given = " UNION ALL ".join(f"SELECT 9001 AS userId, {m} AS movieId" for m in liked)
    got = con.execute(f"SELECT movieId, score FROM m WHERE userId = 9001 USING interactions = '{given}' "
                      f"ORDER BY rank").fetchall()
    u, v = factors(con, "m")
    items = np.unique(ratings.movieId)
    cols = np.searchsorted(items, liked)
    value = np.log1p(1.0) if weighting == "log1p" else 1.0
    raw = implicit_als.AlternatingLeastSquares(factors=8, regularization=0.5, alpha=3.0)
    raw.user_factors, raw.item_factors = u.copy(), v.copy()
    row = sp.csr_matrix((np.full(len(cols), value, np.float32), (np.zeros(len(cols), int), cols)), shape=(1, len(items)))
    want = np.asarray(raw.recalculate_user(0, row)).ravel() @ v.T
    want[cols] = -np.inf  # the given items are the new user's seen items
    best = np.argsort(-want, kind="stable")[:10]
    assert [m for m, _ in got] == [int(items[i]) for i in best]
    np.testing.assert_allclose([s for _, s in got], want[best], rtol=1e-4)
