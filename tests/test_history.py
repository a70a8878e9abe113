"""Learning curves (m.history), early stopping, and the embeddings relations."""

from __future__ import annotations

import numpy as np
import pytest
from lightfm import evaluation as lfm_eval

import sqlrec
from conftest import FAST
from sqlrec.numeric.evaluation import METRIC_NAMES
from test_evaluate import CREATE, raw_lightfm, stored_metrics

TOL = 1e-6
SLOW = "no_components = 8, random_state = 7, learning_rate = 0.05"


def history(con, name):
    cur = con.execute(f"SELECT * FROM {name}.history ORDER BY epoch")
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def test_history_is_lightfm_after_every_epoch(con, ratings):
    con.execute(CREATE + FAST)
    rows = history(con, "ev")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    assert list(rows[0]) == ["epoch", "seconds", "split", "k", *METRIC_NAMES]
    assert {(r["split"], r["k"]) for r in rows} == {("test", 10)}
    seconds = [r["seconds"] for r in rows]
    assert all(s > 0 for s in seconds) and seconds == sorted(seconds)
    curves = {"auc": [], "precision_at_k": []}

    def measure(epoch, model, train, test):
        curves["auc"].append(lfm_eval.auc_score(model, test, train).mean())
        curves["precision_at_k"].append(lfm_eval.precision_at_k(model, test, train, k=10).mean())

    raw_lightfm(ratings, on_epoch=measure)
    for name, values in curves.items():
        np.testing.assert_allclose([r[name] for r in rows], values, atol=TOL)
    # no early stopping: the last epoch is the held-out model the metrics describe
    last = {m: rows[-1][m] for m in METRIC_NAMES}
    assert last == pytest.approx(stored_metrics(con, "ev"), abs=1e-12)


def test_describe_history_and_95_percent_epoch(con):
    con.execute(CREATE + "epochs = 12, " + SLOW)
    rows = history(con, "ev")
    assert con.execute("DESCRIBE ev.history").fetchall() == con.execute("SELECT * FROM ev.history").fetchall()
    auc = np.array([r["auc"] for r in rows])
    want = rows[int(np.flatnonzero(auc >= 0.95 * auc.max())[0])]["epoch"]
    model = dict(con.execute("DESCRIBE ev.model").fetchall())
    assert model["epoch_95pct_best_auc"] == str(want)
    assert 1 < want < 12  # the curve rises over the first epochs on this data
    assert "early_stopping_best_epoch" not in model


def test_no_history_without_evaluation(trained):
    cur = trained.execute("SELECT * FROM movie_rec.history")
    assert cur.fetchall() == []
    assert [d[0] for d in cur.description] == ["epoch", "seconds", "split", "k", *METRIC_NAMES]
    assert "epoch_95pct_best_auc" not in dict(trained.execute("SELECT * FROM movie_rec.model").fetchall())


def test_early_stopping(con):
    con.execute(CREATE + "epochs = 200, early_stopping = true, patience = 3, " + SLOW)
    rows = history(con, "ev")
    auc = [r["auc"] for r in rows]
    best = int(np.argmax(auc)) + 1
    assert {r["split"] for r in rows} == {"validation"}
    assert len(rows) == best + 3 < 200  # stopped `patience` epochs after the best one
    model = dict(con.execute("SELECT * FROM ev.model").fetchall())
    assert model["early_stopping_best_epoch"] == str(best) and model["early_stopping_epochs_run"] == str(best + 3)
    assert model["early_stopping_metric"] == "auc"
    assert model["epochs"] == "200" and model["epochs_trained"] == str(best)  # final fit: the best count
    # the test metrics are measured on held-out data the stopping never saw
    assert stored_metrics(con, "ev")["auc"] != pytest.approx(max(auc), abs=1e-9)
    assert one_row(con, "EVALUATE MODEL ev")["auc"] == pytest.approx(stored_metrics(con, "ev")["auc"], abs=1e-12)


def test_early_stopping_on_another_metric(con):
    con.execute(CREATE + "epochs = 200, early_stopping = true, patience = 2, stopping_metric = 'ndcg_at_k', " + SLOW)
    rows = history(con, "ev")
    ndcg = [r["ndcg_at_k"] for r in rows]
    assert len(rows) == int(np.argmax(ndcg)) + 1 + 2
    assert dict(con.execute("SELECT * FROM ev.model").fetchall())["early_stopping_metric"] == "ndcg_at_k"


def one_row(con, sql):
    cur = con.execute(sql)
    return dict(zip([d[0] for d in cur.description], cur.fetchone()))


def test_early_stopping_errors(con):
    base = "CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', "
    with pytest.raises(sqlrec.ProgrammingError, match="option early_stopping needs evaluation = true"):
        con.execute(base + "early_stopping = true, " + FAST)
    with pytest.raises(sqlrec.ProgrammingError, match="option stopping_metric must be one of .*got 'coverage_at_k'"):
        con.execute(base + "evaluation = true, early_stopping = true, stopping_metric = 'coverage_at_k', " + FAST)
    with pytest.raises(sqlrec.ProgrammingError, match="option patience must be >= 1, got 0"):
        con.execute(base + "evaluation = true, early_stopping = true, patience = 0, " + FAST)
    assert con.execute("SHOW MODELS").fetchall() == []


# --- embeddings ----------------------------------------------------------------------------------


def test_item_and_user_embeddings(trained):
    model = trained.router.catalog().load("movie_rec", "test")
    cur = trained.execute("SELECT * FROM movie_rec.item_embeddings ORDER BY id")
    assert [d[0] for d in cur.description] == ["id", "bias", "vector"]
    rows = cur.fetchall()
    iv, ib = model.handler.item_factors()
    assert [r[0] for r in rows] == model.items.to_pylist()
    np.testing.assert_allclose([r[1] for r in rows], ib, rtol=1e-6)
    np.testing.assert_allclose(np.array([r[2] for r in rows]), iv, rtol=1e-6)
    types = dict((r[0], r[1]) for r in trained.execute("DESCRIBE SELECT * FROM movie_rec.user_embeddings").fetchall())
    assert types == {"id": "BIGINT", "bias": "FLOAT", "vector": "FLOAT[]"}
    assert trained.execute("SELECT count(*), min(len(vector)), max(len(vector)) FROM movie_rec.user_embeddings"
                           ).fetchone() == (60, 8, 8)


def test_embeddings_reproduce_scores_in_sql(trained):
    got = trained.execute("""
        SELECT i.id, u.bias + i.bias + list_dot_product(u.vector, i.vector) AS s
        FROM movie_rec.user_embeddings u, movie_rec.item_embeddings i
        WHERE u.id = 1 ORDER BY s DESC""").fetchall()
    recs = trained.execute("SELECT movieId, score FROM movie_rec WHERE userId = 1 "
                           "USING n_recommendations = 40, exclude_seen = false").fetchall()
    assert [g[0] for g in got[:5]] == [r[0] for r in recs[:5]]
    np.testing.assert_allclose([g[1] for g in got], [r[1] for r in recs], atol=1e-5)


def test_embeddings_of_baselines(con):
    con.execute("CREATE MODEL p FROM ratings PREDICT movieId USING engine = 'popularity', user_id = 'userId'")
    con.execute("CREATE MODEL s FROM ratings PREDICT movieId USING engine = 'svd', user_id = 'userId', "
                "no_components = 3")
    top = con.execute("SELECT id FROM p.item_embeddings ORDER BY bias DESC, id LIMIT 1").fetchone()[0]
    assert top == con.execute("SELECT movieId FROM p WHERE userId = 99999").fetchone()[0]  # popularity fallback
    assert con.execute("SELECT DISTINCT len(vector) FROM s.item_embeddings").fetchall() == [(3,)]
    assert con.execute("SELECT max(abs(bias)) FROM s.user_embeddings").fetchone()[0] == 0


def test_history_off(con):
    con.execute(CREATE + "history = false, " + FAST)
    assert con.execute("SELECT count(*) FROM ev.history").fetchone() == (0,)
    assert len(stored_metrics(con, "ev")) == len(METRIC_NAMES)
    assert "epoch_95pct_best_auc" not in dict(con.execute("SELECT * FROM ev.model").fetchall())
    # the same model with the curve on reports the same final metrics
    con.execute(CREATE.replace("MODEL ev", "MODEL ev2") + FAST)
    assert stored_metrics(con, "ev2") == pytest.approx(stored_metrics(con, "ev"), abs=1e-12)
