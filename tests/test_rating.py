"""Explicit ratings: engine = 'explicit' predicts star ratings; recommender_type = 'rating' asks for pairs."""

from __future__ import annotations

import numpy as np
import pytest

from sqlrec import errors

EXPLICIT = ("CREATE MODEL stars FROM ratings PREDICT movieId USING engine = 'explicit', user_id = 'userId', "
            "rating = 'rating', no_components = 4, random_state = 1")


def test_explicit_needs_a_rating_column(con):
    with pytest.raises(errors.OptionError, match="engine 'explicit' learns rating values and needs option rating"):
        con.execute("CREATE MODEL stars FROM ratings PREDICT movieId USING engine = 'explicit', user_id = 'userId'")
    assert con.execute("SELECT count(*) FROM ratings").fetchone() == (720,)
    assert not con.engine.catalog(con.duckdb).exists("stars")


def test_explicit_fits_the_ratings_and_ranks_by_prediction(con, ratings):
    con.execute(EXPLICIT)
    model = con.engine.catalog(con.duckdb).load("stars", "test")
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
