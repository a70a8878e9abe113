"""Catalogue ids (CREATE options items / users, sqlrec.ingest.known_ids): known before their first interaction.

conftest's data: odd users like items 100-119 (genre A), even users 120-139 (genre B). The
catalogue adds items 140 (genre A in the feature table) and 141 (no features), and users 9001
(kind 'a') and 9002 (nothing).
"""

from __future__ import annotations

import pytest

from sqlrec.errors import ColumnError, OptionError, TrainingDataError
from conftest import FAST, group

TRAIN = FAST.replace("epochs = 5", "epochs = 20")
BASE = "CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', threshold = 4, "


@pytest.fixture
def shop(con):
    con.execute("CREATE TABLE catalogue AS SELECT i AS movieId FROM range(100, 142) t(i)")
    con.execute("CREATE TABLE movies AS SELECT i AS movieId, CASE WHEN i < 120 OR i = 140 THEN 'A' ELSE 'B' END "
                "AS genre FROM range(100, 141) t(i)")
    con.execute("CREATE TABLE people AS SELECT DISTINCT userId FROM ratings UNION ALL SELECT 9001 UNION ALL SELECT 9002")
    con.execute("CREATE TABLE kinds AS SELECT DISTINCT userId, CASE WHEN userId % 2 = 1 THEN 'a' ELSE 'b' END AS kind "
                "FROM ratings UNION ALL SELECT 9001, 'a'")
    return con


def info(con, name="m"):
    return dict(con.execute(f"SELECT property, value FROM {name}.info").fetchall())


def test_catalogue_items_are_recommended_from_their_features(shop):
    shop.execute(BASE + f"items = catalogue, item_features = movies, {TRAIN}")
    got = info(shop)
    assert (got["n_items"], got["n_items_only_in_catalogue"], got["n_items_without_features"]) == ("42", "1", "1")
    # 140 (genre A, never rated) is scored from its genre: odd users (genre A) rank it above every B item.
    for user in (1, 3, 5):
        ranked = [r[0] for r in shop.execute(f"SELECT movieId FROM m WHERE userId = {user} USING n = 100 "
                                              "ORDER BY rank").fetchall()]
        assert 140 in ranked and 141 in ranked
        assert all(ranked.index(140) < ranked.index(b) for b in range(120, 140) if b in ranked), user
    # as a key, 140's neighbours are genre A items
    similar = [r[0] for r in shop.execute("SELECT similar_movieId FROM m WHERE movieId = 140 USING "
                                           "recommender_type = 'item_item', n = 5").fetchall()]
    assert len(similar) == 5 and all(group(i) == 0 for i in similar)


def test_catalogue_only_ids_without_information_get_the_fallback_not_an_error(shop):
    shop.execute(BASE + f"items = 'SELECT movieId FROM catalogue', users = people, cold_start = 'error', {TRAIN}")
    got = info(shop)
    assert (got["n_items"], got["n_users"], got["n_users_only_in_catalogue"]) == ("42", "62", "2")
    popular = [r[0] for r in shop.execute("SELECT movieId, count(*) FROM ratings WHERE rating >= 4 "
                                          "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3").fetchall()]
    # known users with nothing learned: the most popular items, no UnknownIdError despite cold_start = 'error'
    assert [r[0] for r in shop.execute("SELECT movieId FROM m WHERE userId = 9002 USING n = 3 ORDER BY rank"
                                       ).fetchall()] == popular
    assert len(shop.execute("SELECT * FROM m WHERE movieId = 141 USING recommender_type = 'item_item'").fetchall()) == 10
    # a pair score for the never-seen item, as for any known item
    assert len(shop.execute("SELECT score FROM m WHERE userId = 1 AND movieId = 141").fetchall()) == 1
    with pytest.raises(Exception, match="unknown userId 777"):
        shop.execute("SELECT * FROM m WHERE userId = 777")


def test_catalogue_users_with_features(shop):
    shop.execute(BASE + f"users = people, user_features = kinds, {TRAIN}")
    assert info(shop)["n_users_only_in_catalogue"] == "1"  # 9001 came with the features, 9002 only here
    top = [r[0] for r in shop.execute("SELECT movieId FROM m WHERE userId = 9001 ORDER BY rank").fetchall()]
    assert sum(group(i) == 0 for i in top) >= 8  # kind 'a' likes genre A


def test_catalogue_items_with_als(shop):
    pytest.importorskip("implicit")
    shop.execute(BASE + "engine = 'als', items = catalogue, no_components = 8, random_state = 3")
    assert info(shop)["n_items"] == "42"
    top = [r[0] for r in shop.execute("SELECT movieId FROM m WHERE userId = 1").fetchall()]
    assert 140 not in top and 141 not in top  # nothing liked them yet: below the liked items
    assert shop.execute("SELECT count(*) FROM m WHERE movieId = 141 USING recommender_type = 'item_user'"
                        ).fetchone()[0] == 10


@pytest.mark.parametrize("value, error, message", [
    ("'SELECT movieId, 1 AS x FROM catalogue' , user_id = 'userId'", None, None),
    ("'SELECT 1 AS a, 2 AS b'", ColumnError, "option items: the query has no column 'movieId'"),
    ("'SELECT ''abc'' AS movieId'", TrainingDataError, "option items: 1 value\\(s\\) of column 'movieId' do not convert"),
    ("'DROP TABLE ratings'", OptionError, "option items"),
    ("'SELECT * FROM nowhere'", Exception, "the items query failed"),
])
def test_bad_catalogue_is_an_error_and_loses_nothing(shop, value, error, message):
    before = shop.execute("SELECT count(*) FROM ratings").fetchone()
    if error is None:  # the id column found by name among several
        shop.execute(BASE.replace("user_id = 'userId', ", "") + f"items = {value}, {TRAIN}")
        assert info(shop)["n_items"] == "42"
        return
    with pytest.raises(error, match=message):
        shop.execute(BASE + f"items = {value}, {TRAIN}")
    assert shop.execute("SELECT count(*) FROM ratings").fetchone() == before
    assert shop.execute("SHOW MODELS").fetchall() == []
