"""Held-out metrics end to end, EVALUATE MODEL and the sqlrec.metrics comparison view.

sqlrec's numbers are checked against raw LightFM trained on the same split, seed and params and
scored with lightfm.evaluation (single thread, so both trainings are bit-identical).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from lightfm import LightFM
from lightfm import evaluation as lfm_eval

import sqlrec
from conftest import FAST
from sqlrec.numeric.evaluation import METRIC_NAMES, SPLITS

TOL = 1e-6
CREATE = ("CREATE MODEL ev FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
          "threshold = 4, evaluation = true, split = 'user', test_size = 0.25, ")


def positives(ratings):
    """Users x items matrix of rating >= 4, indexed like sqlrec's id maps (ids in sorted order)."""
    users = np.sort(ratings.userId.unique())
    items = np.sort(ratings.movieId.unique())
    pos = ratings[ratings.rating >= 4]
    return sp.csr_matrix((np.ones(len(pos), np.float32),
                          (np.searchsorted(users, pos.userId), np.searchsorted(items, pos.movieId))),
                         shape=(len(users), len(items)))


def rated(ratings):
    """Users x items of every rated pair, below-threshold ones too (what exclude_seen excludes)."""
    users, items = np.sort(ratings.userId.unique()), np.sort(ratings.movieId.unique())
    return sp.csr_matrix((np.ones(len(ratings), np.float32),
                          (np.searchsorted(users, ratings.userId), np.searchsorted(items, ratings.movieId))),
                         shape=(len(users), len(items)))


def raw_lightfm(ratings, split="user", test_size=0.25, seed=7, epochs=5, on_epoch=None, **params):
    """The held-out fit sqlrec runs, done by hand: same split, data order, seed and params.

    Returns (model, seen, test): the fit learns the training positives; `seen` is every training
    pair, below-threshold ratings too, which sqlrec's metrics exclude from the lists as SELECT does.
    """
    matrix = positives(ratings)
    train, test = SPLITS[split](matrix, test_size, seed)
    seen = (rated(ratings) - test > 0).astype(np.float32).tocsr()
    seen.eliminate_zeros()
    model = LightFM(**{"no_components": 8, "loss": "warp", "learning_rate": 0.025, "random_state": seed,
                       **params})
    for epoch in range(1, epochs + 1):
        model.fit_partial(train.tocoo(), epochs=1, num_threads=1)
        if on_epoch:
            on_epoch(epoch, model, seen, test)
    return model, seen, test


def lightfm_metrics(model, train, test, k):
    return {
        "precision_at_k": lfm_eval.precision_at_k(model, test, train, k=k).mean(),
        "recall_at_k": lfm_eval.recall_at_k(model, test, train, k=k).mean(),
        "auc": lfm_eval.auc_score(model, test, train).mean(),
        "reciprocal_rank": lfm_eval.reciprocal_rank(model, test, train).mean(),
    }


def one(con, sql):
    cur = con.execute(sql)
    return dict(zip([d[0] for d in cur.description], cur.fetchone()))


def stored_metrics(con, name):
    return {m: v for m, v in con.execute(f"SELECT metric, value FROM {name}.metrics").fetchall()}


@pytest.mark.parametrize("k", [3, 10])
def test_create_metrics_equal_raw_lightfm(con, ratings, k):
    con.execute(CREATE + f"eval_k = {k}, {FAST}")
    got = stored_metrics(con, "ev")
    assert list(got) == list(METRIC_NAMES)
    want = lightfm_metrics(*raw_lightfm(ratings), k)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=TOL), name
    assert con.execute("SELECT DISTINCT k, split, n_test_users FROM ev.metrics").fetchall() == [(k, "user", 60)]


def test_k_defaults_to_n_recommendations(con):
    con.execute(CREATE + f"n_recommendations = 4, {FAST}")
    assert con.execute("SELECT DISTINCT k FROM ev.metrics").fetchall() == [(4,)]


def test_evaluate_model_on_the_stored_split(con, ratings):
    con.execute(CREATE + FAST)
    row = one(con, "EVALUATE MODEL ev")
    assert (row["name"], row["version"], row["evaluated_on"], row["k"]) == ("ev", 1, "held-out user split", 10)
    assert {m: row[m] for m in METRIC_NAMES} == pytest.approx(stored_metrics(con, "ev"), abs=1e-12)
    assert row["n_test_users"] == 60 and row["n_rows"] is None and row["note"] is None
    # Another k needs no retraining and still equals LightFM on the held-out fit.
    row = one(con, "EVALUATE MODEL ev USING k = 3")
    want = lightfm_metrics(*raw_lightfm(ratings), 3)
    assert row["k"] == 3
    for name, value in want.items():
        assert row[name] == pytest.approx(value, abs=TOL), name


def test_evaluate_model_survives_reopening(tmp_path, ratings):
    path = tmp_path / "m.duckdb"
    with sqlrec.connect(str(path)) as con:
        con.register("df", ratings)
        con.execute("CREATE TABLE ratings AS SELECT * FROM df")
        con.execute(CREATE + FAST)
        before = con.execute("EVALUATE MODEL ev USING k = 5").fetchall()
    with sqlrec.connect(str(path), read_only=True) as con:
        assert con.execute("EVALUATE MODEL ev USING k = 5").fetchall() == before


def test_evaluate_model_on_a_test_query(con):
    # Train on three quarters of the pairs, test on the rest, as a user would.
    con.execute("CREATE TABLE train AS SELECT * FROM ratings WHERE (userId + movieId) % 4 <> 0")
    con.execute(f"CREATE MODEL q FROM train PREDICT movieId USING user_id = 'userId', rating = 'rating', "
                f"threshold = 4, {FAST}")
    con.execute("CREATE TABLE test AS SELECT * FROM ratings WHERE (userId + movieId) % 4 = 0 "
                "UNION ALL SELECT 999, 100, 5.0, 0 UNION ALL SELECT 1, 999, 5.0, 0 UNION ALL SELECT 998, 997, 5.0, 0")
    row = one(con, "EVALUATE MODEL q FROM (SELECT * FROM test) USING k = 5")

    model = con.router.catalog().load("q", "test")
    users = {u: i for i, u in enumerate(model.users.to_pylist())}
    items = {m: i for i, m in enumerate(model.items.to_pylist())}
    test = con.execute("SELECT userId, movieId FROM test WHERE rating >= 4").fetchall()
    known = [(users[u], items[i]) for u, i in test if u in users and i in items]
    truth = sp.csr_matrix((np.ones(len(known), np.float32), tuple(zip(*known))), shape=model.seen.shape)
    lfm = model.handler.model
    assert row["precision_at_k"] == pytest.approx(
        lfm_eval.precision_at_k(lfm, truth, model.seen, k=5).mean(), abs=TOL)
    assert row["recall_at_k"] == pytest.approx(lfm_eval.recall_at_k(lfm, truth, model.seen, k=5).mean(), abs=TOL)
    assert row["auc"] == pytest.approx(lfm_eval.auc_score(lfm, truth, model.seen).mean(), abs=TOL)
    n_low = con.execute("SELECT count(*) FROM test WHERE rating < 4").fetchone()[0]
    assert (row["evaluated_on"], row["n_rows"], row["n_test"]) == ("query", len(test) + n_low, len(known))
    assert (row["n_unknown_users"], row["n_unknown_items"], row["n_ignored_rows"]) == (2, 2, 3)
    assert row["n_seen_dropped"] == 0
    assert row["note"] == (f"ignored 3 rows with ids the model does not know (2 unknown userId, 2 unknown movieId); "
                           f"skipped {n_low} rows below the rating threshold")


def test_evaluate_query_seen_pairs_and_exclude_seen(con):
    con.execute(f"CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
                f"threshold = 4, {FAST}")
    row = one(con, "EVALUATE MODEL m FROM ratings")
    # Every test pair was a training pair: nothing is left to rank.
    assert row["n_seen_dropped"] == 600 and row["n_test"] == 0 and np.isnan(row["auc"])
    assert "dropped 600 pairs the model saw in training" in row["note"]
    row = one(con, "EVALUATE MODEL m FROM ratings USING exclude_seen = false, k = 10")
    assert row["n_test"] == 600 and row["n_seen_dropped"] == 0
    assert row["precision_at_k"] > 0.5  # the model ranks its own training positives high
    # threshold in USING overrides the model's: rating >= 5 keeps fewer rows
    low = one(con, "EVALUATE MODEL m FROM ratings USING exclude_seen = false, threshold = 5")
    assert low["n_test"] == con.execute("SELECT count(*) FROM ratings WHERE rating >= 5").fetchone()[0]


def test_evaluate_model_errors(con):
    con.execute(f"CREATE MODEL plain FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    with pytest.raises(sqlrec.ProgrammingError, match="no stored held-out split .* EVALUATE MODEL plain FROM"):
        con.execute("EVALUATE MODEL plain")
    with pytest.raises(sqlrec.ProgrammingError, match="model 'nope' does not exist"):
        con.execute("EVALUATE MODEL nope")
    with pytest.raises(sqlrec.ProgrammingError, match="unknown option 'kk'"):
        con.execute("EVALUATE MODEL plain FROM ratings USING kk = 3")
    with pytest.raises(sqlrec.ProgrammingError, match="option k must be >= 1"):
        con.execute("EVALUATE MODEL plain FROM ratings USING k = 0")
    with pytest.raises(sqlrec.ProgrammingError, match="option exclude_seen applies to a test query"):
        con.execute("EVALUATE MODEL plain USING exclude_seen = false")
    with pytest.raises(sqlrec.ProgrammingError,
                       match="the test query has no column 'movieId' \\(the model's item id\\); its columns are: userId"):
        con.execute("EVALUATE MODEL plain FROM (SELECT userId FROM ratings)")
    with pytest.raises(sqlrec.ProgrammingError, match="option threshold needs the model's rating column"):
        con.execute("EVALUATE MODEL plain FROM ratings USING threshold = 4")
    with pytest.raises(sqlrec.ProgrammingError, match="test query failed"):
        con.execute("EVALUATE MODEL plain FROM (SELECT * FROM missing_table)")


def test_metrics_view_compares_models(con):
    con.execute(CREATE + FAST)
    con.execute("CREATE MODEL pop FROM ratings PREDICT movieId USING engine = 'popularity', user_id = 'userId', "
                "rating = 'rating', threshold = 4, evaluation = true, split = 'user', test_size = 0.25")
    con.execute("CREATE MODEL raw FROM ratings PREDICT movieId USING user_id = 'userId', " + FAST)
    con.execute(CREATE.replace("CREATE MODEL", "CREATE OR REPLACE MODEL") + "epochs = 3, no_components = 4")
    rows = con.execute("SELECT name, version, active, engine, k, precision_at_k, ndcg_at_k, loss, no_components, "
                       "epochs_trained FROM sqlrec.metrics ORDER BY name, version").fetchall()
    by = {(r[0], r[1]): r for r in rows}
    assert sorted(by) == [("ev", 1), ("ev", 2), ("pop", 1), ("raw", 1)]
    assert by["ev", 1][2:5] == (False, "lightfm", 10) and by["ev", 2][2] is True
    assert by["ev", 1][7:] == ("warp", 8, 5) and by["ev", 2][7:] == ("warp", 4, 3)
    assert by["raw", 1][4:7] == (None, None, None)  # no evaluation: no metrics
    assert by["pop", 1][7] is None
    # every metric has its column, equal to the model's own metrics relation
    got = con.execute(f"SELECT {', '.join(METRIC_NAMES)} FROM sqlrec.metrics WHERE name = 'pop'").fetchone()
    assert dict(zip(METRIC_NAMES, got)) == pytest.approx(stored_metrics(con, "pop"))
    best = con.execute("SELECT name FROM sqlrec.metrics WHERE active AND auc IS NOT NULL "
                       "ORDER BY auc DESC LIMIT 1").fetchone()[0]
    assert best == "ev"  # the taste groups defeat popularity
