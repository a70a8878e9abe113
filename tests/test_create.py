"""CREATE MODEL / BUILD MODEL and the other model statements, on real DuckDB and LightFM."""

from __future__ import annotations

import pytest

import sqlrec
from conftest import FAST


def test_create_returns_status_row(con):
    cur = con.execute(f"CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    row = dict(zip([d[0] for d in cur.description], cur.fetchone()))
    assert row["name"] == "m" and row["engine"] == "lightfm" and row["version"] == 1
    assert row["status"] == "trained" and row["n_users"] == 60 and row["n_items"] == 40
    assert row["n_interactions"] == 720


def test_mindsdb_form_from_query(con):
    con.execute(
        "CREATE MODEL m FROM (SELECT userId, movieId, rating FROM ratings WHERE userId <= 30) PREDICT movieId "
        f"USING engine = 'lightfm', user_id = 'userId', item_id = 'movieId', rating = 'rating', threshold = 4, {FAST}")
    info = dict(con.execute("SELECT * FROM m.info").fetchall())
    assert info["n_users"] == "30"
    assert info["n_positives"] == str(30 * 10)


def test_from_attached_database(con, tmp_path):
    other = tmp_path / "other.duckdb"
    con.execute(f"ATTACH '{other}' AS shop")
    con.execute("CREATE TABLE shop.main.events AS SELECT userId AS u, movieId AS i FROM ratings WHERE userId <= 20")
    con.execute(f"CREATE MODEL sm FROM shop (SELECT u, i FROM events) PREDICT i USING user_id = 'u', {FAST}")
    assert dict(con.execute("SELECT * FROM sm.info").fetchall())["n_users"] == "20"
    # the default database is back to what it was
    assert con.execute("SELECT current_database()").fetchone()[0] == "memory"


def test_build_model_thanosql_form_with_aliases(con):
    con.execute(
        "BUILD MODEL tm USING lightfm OPTIONS (user_col = 'userId', item_col = 'movieId', rating_col = 'rating', "
        "threshold = 4, epoch = 3, no_components = 8, n_jobs = 1, nrec = 4) AS SELECT * FROM ratings")
    model = dict(con.execute("SELECT * FROM tm.model").fetchall())
    assert model["epochs"] == "3" and model["num_threads"] == "1"
    assert len(con.execute("SELECT * FROM tm WHERE userId = 1").fetchall()) == 4


def test_every_lightfm_parameter_by_name(con):
    con.execute(
        "CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', loss = 'bpr', no_components = 6, "
        "epochs = 2, learning_rate = 0.03, learning_schedule = 'adadelta', item_alpha = 0.0001, user_alpha = 0.0001, "
        "max_sampled = 5, rho = 0.9, epsilon = 0.000001, k = 3, n = 8, random_state = 1, num_threads = 2")
    p = dict(con.execute("SELECT * FROM m.model").fetchall())
    assert (p["loss"], p["no_components"], p["learning_schedule"], p["max_sampled"]) == ("bpr", "6", "adadelta", "5")
    assert float(p["learning_rate"]) == pytest.approx(0.03) and p["num_threads"] == "2"


@pytest.mark.parametrize("loss", ["warp", "bpr", "logistic", "warp-kos"])
def test_losses_train_and_recommend(con, loss):
    con.execute(f"CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
                f"threshold = 4, loss = '{loss}', {FAST}")
    assert len(con.execute("SELECT * FROM m WHERE userId = 1").fetchall()) == 10


def test_random_state_reproducible(con):
    for name in ("a", "b"):
        con.execute(f"CREATE MODEL {name} FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    a = con.execute("SELECT movieId, score FROM a WHERE userId IN (1, 2)").fetchall()
    b = con.execute("SELECT movieId, score FROM b WHERE userId IN (1, 2)").fetchall()
    assert a == b


def test_weight_column_and_implicit_repeats(con):
    con.execute("CREATE TABLE plays AS SELECT userId, movieId, 1 + (userId % 3) AS n FROM ratings "
                "UNION ALL SELECT userId, movieId, 1 FROM ratings WHERE userId = 1")
    con.execute(f"CREATE MODEL w FROM plays PREDICT movieId USING user_id = 'userId', weight = 'n', {FAST}")
    con.execute(f"CREATE MODEL r FROM plays PREDICT movieId USING user_id = 'userId', {FAST}")
    info = dict(con.execute("SELECT * FROM r.info").fetchall())
    assert info["n_pairs"] == "720" and info["n_source_rows"] == str(720 + 12)


def test_latest_rating_wins_with_timestamp(con):
    con.execute("CREATE TABLE rr AS SELECT * FROM (VALUES (1, 10, 5.0, 1), (1, 10, 1.0, 2), (2, 10, 1.0, 1), "
                "(2, 10, 5.0, 2), (1, 11, 5.0, 1), (2, 12, 5.0, 1)) t(u, i, r, ts)")
    con.execute("CREATE MODEL lw FROM rr PREDICT i USING user_id = 'u', rating = 'r', timestamp = 'ts', "
                "threshold = 4, epochs = 1")
    info = dict(con.execute("SELECT * FROM lw.info").fetchall())
    # (1,10) latest is 1.0 -> negative; (2,10) latest is 5.0 -> positive
    assert info["n_pairs"] == "4" and info["n_positives"] == "3"


def test_popularity_engine(con, ratings):
    con.execute("CREATE MODEL pop FROM ratings PREDICT movieId USING engine = 'popularity', user_id = 'userId', "
                "rating = 'rating', threshold = 4")
    got = con.execute("SELECT movieId FROM pop WHERE userId = 1 USING exclude_seen = false").fetchall()
    counts = ratings[ratings.rating >= 4].groupby("movieId").size()
    assert counts[got[0][0]] == counts.max()
    with pytest.raises(sqlrec.ProgrammingError, match="does not support recommender_type 'item_item'"):
        con.execute("SELECT * FROM pop WHERE movieId = 101 USING recommender_type = 'item_item'")


def test_evaluation_metrics(con):
    con.execute(f"CREATE MODEL ev FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
                f"threshold = 4, evaluation = true, n_recommendations = 5, {FAST}")
    metrics = dict((r[0], r[1]) for r in con.execute("DESCRIBE ev.metrics").fetchall())
    assert set(metrics) == {"precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "auc", "reciprocal_rank",
                            "coverage_at_k", "popularity_bias_at_k"}
    assert 0 <= metrics["precision_at_k"] <= 1 and 0.5 < metrics["auc"] <= 1
    k = con.execute("SELECT DISTINCT k, split FROM ev.metrics").fetchall()
    assert k == [(5, "random")]


def test_show_describe_drop(trained):
    names = [r[0] for r in trained.execute("SHOW MODELS").fetchall()]
    assert names == ["movie_rec"]
    attrs = [r[0] for r in trained.execute("DESCRIBE movie_rec").fetchall()]
    assert attrs == ["info", "features", "model", "metrics", "history", "trials", "user_embeddings", "item_embeddings",
                     "feature_embeddings", "versions"]
    assert trained.execute("DESCRIBE MODEL movie_rec").fetchall() == trained.execute("DESCRIBE movie_rec").fetchall()
    feats = trained.execute("DESCRIBE movie_rec.features").fetchall()
    assert ("user", "identity", "identity", 60) in feats
    trained.execute("DROP MODEL movie_rec")
    assert trained.execute("SHOW MODELS").fetchall() == []
    trained.execute("DROP MODEL IF EXISTS movie_rec")
    # DESCRIBE of a plain table still goes to DuckDB
    assert ("userId", "BIGINT") in [(r[0], r[1]) for r in trained.execute("DESCRIBE ratings").fetchall()]


def test_replace_and_if_not_exists(trained):
    trained.execute(f"CREATE MODEL IF NOT EXISTS movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    info = dict(trained.execute("SELECT * FROM movie_rec.info").fetchall())
    assert info["version"] == "1"
    trained.execute(f"CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    assert dict(trained.execute("SELECT * FROM movie_rec.info").fetchall())["version"] == "2"


def test_script_runs_in_order(con):
    cur = con.execute(f"""
        CREATE TABLE small AS SELECT * FROM ratings WHERE userId <= 10; -- a comment; with semicolons
        CREATE MODEL s FROM small PREDICT movieId USING user_id = 'userId', {FAST};
        SELECT ';' AS semi, count(*) FROM s WHERE userId = 1;
    """)
    assert cur.fetchall() == [(";", 10)]
