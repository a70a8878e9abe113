"""Explicit ratings: engine = 'explicit' predicts star ratings; recommender_type = 'rating' asks for pairs."""

from __future__ import annotations

import numpy as np
import pytest

import sqlrec
from sqlrec import errors

EXPLICIT = ("CREATE MODEL stars FROM ratings PREDICT movieId USING engine = 'explicit', user_id = 'userId', "
            "rating = 'rating', no_components = 4, random_state = 1")


def test_explicit_needs_a_rating_column(con):
    with pytest.raises(errors.OptionError, match="engine 'explicit' learns rating values and needs option rating"):
        con.execute("CREATE MODEL stars FROM ratings PREDICT movieId USING engine = 'explicit', user_id = 'userId'")
    assert con.execute("SELECT count(*) FROM ratings").fetchone() == (720,)
    assert not con.router.catalog().exists("stars")


def test_explicit_fits_the_ratings_and_ranks_by_prediction(con, ratings):
    con.execute(EXPLICIT)
    model = con.router.catalog().load("stars", "test")
    u = model.side("user").index.get_indexer(ratings.userId)
    i = model.side("item").index.get_indexer(ratings.movieId)
    pred = model.score_pairs(u, i)
    train_rmse = float(np.sqrt(np.mean((pred - ratings.rating.values) ** 2)))
    base_rmse = float(ratings.rating.std(ddof=0))
    assert train_rmse < 0.5 * base_rmse, (train_rmse, base_rmse)
    got = con.execute("SELECT movieId, score FROM stars WHERE userId = 1").fetchall()
    scores = [s for _, s in got]
    assert scores == sorted(scores, reverse=True)
    # user 1 (even) likes items 100-119: its predicted ratings there are high, elsewhere low
    assert all(m < 120 for m, _ in got[:5]) and got[0][1] > 3.5


def test_rating_type_predicts_the_asked_pairs(con):
    con.execute(EXPLICIT)
    cur = con.execute("SELECT * FROM stars WHERE userId IN (2, 1, 999) AND movieId IN (139, 101, 5) "
                      "USING recommender_type = 'rating'")
    assert [d[0] for d in cur.description] == ["userId", "movieId", "rating"]
    got = cur.fetchall()
    assert [(u, m) for u, m, _ in got] == [(2, 139), (2, 101), (1, 139), (1, 101)], "unknown ids give no row"
    full = dict(con.execute("SELECT movieId, score FROM stars WHERE userId = 1 USING n_recommendations = 40, "
                            "exclude_seen = false").fetchall())
    for _, m, r in got[2:]:
        assert r == pytest.approx(min(max(full[m], 1.0), 5.0), abs=1e-5)
        assert 1.0 <= r <= 5.0
    # user 1 (even group) rates 101 high and 139 low; user 2 the other way round
    assert got[3][2] > 3.5 > got[2][2] and got[0][2] > 3.5 > got[1][2]
    where = con.execute("SELECT rating FROM stars WHERE userId = 1 AND movieId = 101 AND "
                        "recommender_type = 'rating'").fetchall()
    assert where == [(pytest.approx(got[3][2]),)]


def test_rating_type_needs_items_and_implicit_engines_give_the_score(trained):
    with pytest.raises(errors.QueryError, match="recommender_type 'rating' predicts given pairs: filter the item column"):
        trained.execute("SELECT * FROM movie_rec WHERE userId = 1 USING recommender_type = 'rating'")
    full = dict(trained.execute("SELECT movieId, score FROM movie_rec WHERE userId = 3 USING n_recommendations = 40, "
                                "exclude_seen = false").fetchall())
    got = trained.execute("SELECT movieId, rating FROM movie_rec WHERE userId = 3 AND movieId IN (101, 130) "
                          "USING recommender_type = 'rating'").fetchall()
    assert got == [(101, pytest.approx(full[101], abs=1e-5)), (130, pytest.approx(full[130], abs=1e-5))]


@pytest.fixture(scope="module")
def movielens():
    from sqlrec.frontend.demo import load_movielens

    con = sqlrec.connect()
    load_movielens(con)
    # A seeded 20% split of the ratings, made in SQL so that the test computes its own baseline.
    con.execute("CREATE TABLE split AS SELECT *, hash(userId * 100003 + movieId) % 5 = 0 AS test FROM ratings")
    con.execute("CREATE TABLE train AS SELECT * FROM split WHERE NOT test")
    con.execute("CREATE TABLE test_set AS SELECT * FROM split WHERE test")
    yield con
    con.close()


@pytest.mark.slow
def test_explicit_rmse_on_movielens_beats_the_global_mean(movielens):
    con = movielens
    con.execute("CREATE MODEL stars FROM train PREDICT movieId USING engine = 'explicit', user_id = 'userId', "
                "rating = 'rating', random_state = 1")
    got = con.execute("EVALUATE MODEL stars FROM test_set").df().iloc[0]
    mean_rmse, mean_mae = con.execute(
        "SELECT sqrt(avg((rating - m) ^ 2)), avg(abs(rating - m)) FROM test_set, "
        "(SELECT avg(rating) AS m FROM train) WHERE movieId IN (SELECT movieId FROM train)").fetchone()
    assert got["rmse"] < 0.88 * mean_rmse, (got["rmse"], mean_rmse)
    assert got["mae"] < 0.88 * mean_mae, (got["mae"], mean_mae)
    assert got["rmse"] < 0.93


@pytest.mark.slow
def test_explicit_evaluation_reports_rmse_and_mae(movielens):
    con = movielens
    con.execute("CREATE MODEL held FROM ratings PREDICT movieId USING engine = 'explicit', user_id = 'userId', "
                "rating = 'rating', evaluation = true, random_state = 2, verbose = false")
    stored = dict(con.execute("SELECT metric, value FROM held.metrics").fetchall())
    std = con.execute("SELECT stddev_pop(rating) FROM ratings").fetchone()[0]
    assert 0.5 < stored["mae"] < stored["rmse"] < 0.88 * std
    again = con.execute("EVALUATE MODEL held").df().iloc[0]
    assert again["rmse"] == pytest.approx(stored["rmse"]) and again["mae"] == pytest.approx(stored["mae"])
    assert again["precision_at_k"] == pytest.approx(stored["precision_at_k"])


def test_options_that_do_not_apply_are_errors(con):
    con.execute(EXPLICIT)
    with pytest.raises(errors.QueryError, match="option exclude_seen does not apply to recommender_type 'rating'"):
        con.execute("SELECT * FROM stars WHERE userId = 1 AND movieId = 101 "
                    "USING recommender_type = 'rating', exclude_seen = false")
    with pytest.raises(errors.OptionError, match="engine 'explicit' fits every rating alike and does not use option weight"):
        con.execute("CREATE OR REPLACE MODEL stars FROM ratings PREDICT movieId USING engine = 'explicit', "
                    "user_id = 'userId', rating = 'rating', weight = 'ts'")
    assert con.execute("SELECT count(*) FROM stars WHERE userId = 1").fetchone() == (10,), "the model is intact"
