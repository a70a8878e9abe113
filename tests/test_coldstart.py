"""Cold start at query time (sqlrec.exec.coldstart): every branch of the cascade, real models.

Odd user ids like items 100-119 (genre A), even ones 120-139 (genre B) (conftest); the user
feature `kind` says which ('a' or 'b'). A new user or item scored from its features or interactions must land in its
group; one with no information follows cold_start.
"""

from __future__ import annotations

import numpy as np
import pytest

from sqlrec.exec import coldstart
from sqlrec.errors import ColumnError, QueryError, UnknownIdError

from conftest import FAST, group

TRAIN = FAST.replace("epochs = 5", "epochs = 20")


@pytest.fixture
def hybrid(con):
    con.execute("CREATE TABLE movies AS SELECT i AS movieId, CASE WHEN i < 120 THEN 'A' ELSE 'B' END AS genre "
                "FROM range(100, 140) t(i)")
    con.execute("CREATE TABLE users AS SELECT DISTINCT userId, CASE WHEN userId % 2 = 1 THEN 'a' ELSE 'b' END "
                "AS kind FROM ratings")
    con.execute("CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
                f"threshold = 4, user_features = users, item_features = movies, {TRAIN}")
    return con


def popular(con, model: str, n: int = 10) -> list[int]:
    """What an id with no information gets: the fallback list."""
    return [r[0] for r in con.execute(f"SELECT movieId FROM {model} WHERE userId = -1 "
                                      f"USING n_recommendations = {n} ORDER BY rank").fetchall()]


def share_in_group(items: list[int], g: int) -> float:
    return float(np.mean([group(i) == g for i in items]))


def test_default_cold_start_is_features_only_with_features(hybrid, trained):
    assert dict(hybrid.execute("SELECT * FROM m.info").fetchall())["cold_start"] == "features"
    assert dict(trained.execute("SELECT * FROM movie_rec.info").fetchall())["cold_start"] == "popularity"


def test_new_id_in_the_stored_source_is_scored_from_features_and_refreshes(hybrid):
    # added after training: the source is re-read at query time for unknown ids
    hybrid.execute("INSERT INTO users VALUES (9001, 'b'), (9002, 'a')")
    hybrid.execute("INSERT INTO movies VALUES (7001, 'B')")
    recs = hybrid.execute("SELECT userId, movieId FROM m WHERE userId IN (9001, 9002) ORDER BY userId, rank").fetchall()
    assert share_in_group([i for u, i in recs if u == 9001], 1) >= 0.8
    assert share_in_group([i for u, i in recs if u == 9002], 0) >= 0.8
    sim = [r[0] for r in hybrid.execute("SELECT similar_movieId FROM m WHERE movieId = 7001 "
                                        "USING recommender_type = 'item_item' ORDER BY rank").fetchall()]
    assert share_in_group(sim, 1) >= 0.8
    # the two new users differ, and neither got the popularity list
    assert [i for u, i in recs if u == 9001] != [i for u, i in recs if u == 9002]
    fans = [r[0] for r in hybrid.execute("SELECT userId FROM m WHERE movieId = 7001 "
                                         "USING recommender_type = 'item_user' ORDER BY rank").fetchall()]
    assert np.mean([u % 2 == 0 for u in fans]) >= 0.8


def test_cold_start_popularity_ignores_the_stored_source(hybrid):
    hybrid.execute("CREATE MODEL p FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
                   f"threshold = 4, user_features = users, cold_start = 'popularity', {TRAIN}")
    hybrid.execute("INSERT INTO users VALUES (9001, 'b')")
    got = [r[0] for r in hybrid.execute("SELECT movieId FROM p WHERE userId = 9001 ORDER BY rank").fetchall()]
    assert got == popular(hybrid, "p")
    # information in the query is still used
    given = [r[0] for r in hybrid.execute(
        "SELECT movieId FROM p WHERE userId = 9001 USING user_features = 'SELECT 9001 AS userId, ''b'' AS kind' "
        "ORDER BY rank").fetchall()]
    assert given != got and share_in_group(given, 1) >= 0.8


def test_cold_start_error_unless_the_query_informs(hybrid):
    hybrid.execute("CREATE MODEL e FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
                   f"threshold = 4, user_features = users, cold_start = 'error', {TRAIN}")
    hybrid.execute("INSERT INTO users VALUES (9001, 'b')")
    with pytest.raises(UnknownIdError, match="9001"):
        hybrid.execute("SELECT * FROM e WHERE userId IN (1, 9001)")
    rows = hybrid.execute("SELECT userId, movieId FROM e WHERE userId IN (1, 9001) "
                          "USING user_features = 'SELECT 9001 AS userId, ''b'' AS kind'").fetchall()
    assert {u for u, _ in rows} == {1, 9001}
    with pytest.raises(UnknownIdError, match="9002"):  # informed ids pass, the others still fail
        hybrid.execute("SELECT * FROM e WHERE userId IN (9001, 9002) "
                       "USING user_features = 'SELECT 9001 AS userId, ''b'' AS kind'")


def test_cold_start_features_without_any_information_falls_back_to_popularity(hybrid):
    got = [r[0] for r in hybrid.execute("SELECT movieId FROM m WHERE userId = 12345 ORDER BY rank").fetchall()]
    assert got == popular(hybrid, "m")
    # a feature value the model never saw is no information either
    got = [r[0] for r in hybrid.execute("SELECT movieId FROM m WHERE userId = 12345 USING user_features = "
                                        "'SELECT 12345 AS userId, ''z'' AS kind' ORDER BY rank").fetchall()]
    assert got == popular(hybrid, "m")


def test_query_features_without_key_filter_score_the_given_ids(hybrid):
    rows = hybrid.execute("SELECT userId, movieId FROM m USING user_features = "
                          "'SELECT 9001 AS userId, ''b'' AS kind UNION ALL SELECT 9002, ''a'''").fetchall()
    assert {u for u, _ in rows} == {9001, 9002} and len(rows) == 20
    assert share_in_group([i for u, i in rows if u == 9001], 1) >= 0.8
    # genre B: ties (a zero vector) would rank the low ids of genre A first
    sim = [r[0] for r in hybrid.execute(
        "SELECT similar_movieId FROM m WHERE movieId = 5555 USING recommender_type = 'item_item', "
        "item_features = 'SELECT 5555 AS movieId, ''B'' AS genre' ORDER BY rank").fetchall()]
    assert share_in_group(sim, 1) >= 0.8


@pytest.mark.parametrize("model", ["plain", "hybrid"])
def test_fold_in_from_given_interactions(trained, model):
    if model == "hybrid":
        trained.execute("CREATE TABLE movies AS SELECT i AS movieId, 'all' AS genre FROM range(100, 140) t(i)")
        trained.execute("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', "
                        f"rating = 'rating', threshold = 4, item_features = movies, {TRAIN}")
    else:
        trained.execute("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', "
                        f"rating = 'rating', threshold = 4, {TRAIN}")
    given = "SELECT 9001 AS userId, 121 AS movieId, 5 AS rating UNION ALL SELECT 9001, 125, 4.5 " \
            "UNION ALL SELECT 9001, 133, 5 UNION ALL SELECT 9001, 104, 1"  # 104: below threshold, not a positive
    recs = [r[0] for r in trained.execute(
        f"SELECT movieId FROM movie_rec USING interactions = '{given.replace(chr(39), chr(39) * 2)}' ORDER BY rank"
    ).fetchall()]
    assert len(recs) == 10 and not {121, 125, 133} & set(recs)  # the given items are seen
    assert share_in_group(recs, 1) >= 0.8
    assert recs != popular(trained, "movie_rec")
    # exclude_seen = false keeps them
    kept = [r[0] for r in trained.execute(
        f"SELECT movieId FROM movie_rec WHERE userId = 9001 USING exclude_seen = false, n_recommendations = 40, "
        f"interactions = '{given.replace(chr(39), chr(39) * 2)}'").fetchall()]
    assert {121, 125, 133} <= set(kept)


def test_fold_in_a_new_item_from_the_users_who_liked_it(trained):
    sim = [r[0] for r in trained.execute(
        "SELECT similar_movieId FROM movie_rec WHERE movieId = 777 USING recommender_type = 'item_item', "
        "interactions = 'SELECT userId, 777 AS movieId FROM ratings WHERE userId % 2 = 1 AND userId <= 20 "
        "GROUP BY userId' ORDER BY rank").fetchall()]
    assert share_in_group(sim, 0) >= 0.8


def test_fold_in_on_a_model_without_vectors_is_no_information(con):
    con.execute("CREATE MODEL top FROM ratings PREDICT movieId USING engine = 'popularity', user_id = 'userId'")
    got = [r[0] for r in con.execute("SELECT movieId FROM top USING interactions = "
                                     "'SELECT 9001 AS userId, 121 AS movieId' ORDER BY rank").fetchall()]
    assert got == popular(con, "top")


def test_known_ids_keep_their_learned_vectors(hybrid):
    plain = hybrid.execute("SELECT movieId, score FROM m WHERE userId = 2 ORDER BY rank").fetchall()
    informed = hybrid.execute("SELECT movieId, score FROM m WHERE userId = 2 USING user_features = "
                              "'SELECT 2 AS userId, ''b'' AS kind'").fetchall()
    assert informed == plain


def test_bad_query_information_names_the_culprit(hybrid, trained):
    cases = [
        ("SELECT * FROM movie_rec WHERE userId = 9001 USING user_features = 'SELECT 9001 AS userId, 1 AS x'",
         QueryError, "no user features"),
        ("SELECT * FROM m WHERE userId = 9001 USING item_features = 'SELECT 1 AS movieId, ''A'' AS genre'",
         QueryError, "user_features"),
        ("SELECT * FROM m WHERE userId = 9001 USING user_features = 'SELECT 9001 AS userId, ''b'' AS mood'",
         ColumnError, "'mood'"),
        ("SELECT * FROM m WHERE userId = 9001 USING user_features = 'SELECT ''x'' AS userId, ''b'' AS kind'",
         ColumnError, "VARCHAR"),
        ("SELECT * FROM m WHERE userId = 9001 USING user_features = 'SELECT ''b'' AS kind'",
         ColumnError, "'userId'"),
        ("SELECT * FROM m USING interactions = 'SELECT 9001 AS userId, 5 AS item'", ColumnError, "'movieId'"),
    ]
    for sql, error, word in cases:
        con = trained if "movie_rec" in sql else hybrid
        with pytest.raises(error) as info:
            con.execute(sql)
        assert word in str(info.value), (sql, str(info.value))


def test_fold_in_solves_the_ridge_problem():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(50, 4))
    pos = np.array([3, 7, 9])
    u = coldstart.fold_in(t, pos, target_score=2.0, ridge=0.5)
    p = t[pos]
    expected = np.linalg.solve(p.T @ p + 0.5 * np.eye(4), p.T @ np.full(3, 2.0))
    np.testing.assert_allclose(u, expected, rtol=1e-5)
    prior = np.ones(4)
    u = coldstart.fold_in(t, pos, target_score=2.0, ridge=1e6, prior=prior)
    np.testing.assert_allclose(u, prior, rtol=1e-4)  # a strong ridge stays at the prior
