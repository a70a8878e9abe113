"""Querying models: the four recommender types, pushdown, joins and relations."""

from __future__ import annotations

import numpy as np
import pytest

import sqlrec
from conftest import FAST, group


def rows(con, sql, params=None):
    return con.execute(sql, params).fetchall()


def test_user_item_columns_order_and_unseen(trained, ratings):
    cur = trained.execute("SELECT * FROM movie_rec WHERE userId = 2 USING recommender_type = 'user_item'")
    assert [d[0] for d in cur.description] == ["userId", "movieId", "score", "rank"]
    got = cur.fetchall()
    assert len(got) == 10
    assert [r[3] for r in got] == list(range(1, 11))
    scores = [r[2] for r in got]
    assert scores == sorted(scores, reverse=True)
    seen = set(ratings.loc[ratings.userId == 2, "movieId"])
    assert not seen & {r[1] for r in got}, "seen items (even below threshold) are excluded"
    # user 2 is in the odd group (index 1): most recommendations from items 120-139
    assert sum(group(r[1]) == 1 for r in got) >= 7


def test_scores_match_factors(trained):
    model = trained.router.catalog().load("movie_rec", "test")
    uv, ub = model.handler.user_factors()
    iv, ib = model.handler.item_factors()
    users = model.users.to_pylist()
    items = model.items.to_pylist()
    got = rows(trained, "SELECT movieId, score FROM movie_rec WHERE userId = 5")
    u = users.index(5)
    for item, score in got:
        j = items.index(item)
        assert score == pytest.approx(float(uv[u] @ iv[j] + ub[u] + ib[j]), abs=1e-4)


def test_recommender_type_in_where_and_default(trained):
    a = rows(trained, "SELECT * FROM movie_rec WHERE userId = 3 AND recommender_type = 'user_item'")
    b = rows(trained, "SELECT * FROM movie_rec WHERE userId = 3")
    assert a == b and len(a) == 10


def test_in_list_and_all_users(trained):
    got = rows(trained, "SELECT userId, count(*) FROM movie_rec WHERE userId IN (1, 2, 3) GROUP BY 1 ORDER BY 1")
    assert got == [(1, 10), (2, 10), (3, 10)]
    allrows = rows(trained, "SELECT count(*), count(DISTINCT userId) FROM movie_rec")
    assert allrows == [(600, 60)]


def test_n_recommendations_and_exclude_seen(trained, ratings):
    got = rows(trained, "SELECT movieId FROM movie_rec WHERE userId = 1 USING n_recommendations = 3")
    assert len(got) == 3
    with_seen = rows(trained, "SELECT movieId FROM movie_rec WHERE userId = 1 USING n_recommendations = 40, exclude_seen = false")
    assert len(with_seen) == 40
    seen = set(ratings.loc[ratings.userId == 1, "movieId"])
    assert seen <= {r[0] for r in with_seen}


def test_candidates_restrict_before_top_n(trained):
    got = rows(trained, "SELECT movieId, rank FROM movie_rec WHERE userId = 1 "
                        "USING candidates = 'SELECT movieId FROM ratings WHERE movieId BETWEEN 100 AND 104'")
    assert {r[0] for r in got} <= set(range(100, 105))
    assert [r[1] for r in got] == list(range(1, len(got) + 1))


def test_item_item(trained):
    cur = trained.execute("SELECT * FROM movie_rec WHERE movieId = 101 USING recommender_type = 'item_item', n_recommendations = 5")
    assert [d[0] for d in cur.description] == ["movieId", "similar_movieId", "score", "rank"]
    got = cur.fetchall()
    assert len(got) == 5 and all(r[0] == 101 for r in got)
    assert 101 not in {r[1] for r in got}
    assert all(-1.0001 <= r[2] <= 1.0001 for r in got)
    assert sum(group(r[1]) == 0 for r in got) >= 4


def test_item_user_and_user_user(trained, ratings):
    cur = trained.execute("SELECT * FROM movie_rec WHERE movieId = 125 USING recommender_type = 'item_user', n_recommendations = 5")
    assert [d[0] for d in cur.description] == ["movieId", "userId", "score", "rank"]
    got = cur.fetchall()
    has = set(ratings.loc[ratings.movieId == 125, "userId"])
    assert len(got) == 5 and not has & {r[1] for r in got}
    cur = trained.execute("SELECT * FROM movie_rec WHERE userId = 4 USING recommender_type = 'user_user', n_recommendations = 5")
    assert [d[0] for d in cur.description] == ["userId", "similar_userId", "score", "rank"]
    sims = cur.fetchall()
    assert 4 not in {r[1] for r in sims}
    assert sum(r[1] % 2 == 0 for r in sims) >= 4  # same taste group


def test_join_with_table_and_cte_and_subquery(trained):
    trained.execute("CREATE TABLE movies AS SELECT DISTINCT movieId, 'Movie ' || movieId AS title FROM ratings")
    joined = rows(trained, "SELECT r.rank, m.title FROM movie_rec r JOIN movies m ON m.movieId = r.movieId "
                           "WHERE r.userId = 7 ORDER BY r.rank")
    direct = rows(trained, "SELECT rank, 'Movie ' || movieId FROM movie_rec WHERE userId = 7 ORDER BY rank")
    assert joined == direct
    cte = rows(trained, "WITH recs AS (SELECT * FROM movie_rec WHERE userId = 7) SELECT count(*) FROM recs")
    assert cte == [(10,)]
    sub = rows(trained, "SELECT max(rank) FROM (SELECT * FROM movie_rec WHERE userId IN (7, 8)) t")
    assert sub == [(10,)]
    qualified = rows(trained, "SELECT movie_rec.movieId FROM movie_rec WHERE movie_rec.userId = 7 ORDER BY movie_rec.rank")
    assert [r[0] for r in qualified] == [r[1] for r in rows(trained, "SELECT * FROM movie_rec WHERE userId = 7")]


def test_create_table_as_select_from_model(trained):
    trained.execute("CREATE TABLE nightly_recs AS SELECT * FROM movie_rec")
    assert rows(trained, "SELECT count(*) FROM nightly_recs") == [(600,)]
    types = dict((r[0], r[1]) for r in rows(trained, "DESCRIBE nightly_recs"))
    assert types == {"userId": "BIGINT", "movieId": "BIGINT", "score": "FLOAT", "rank": "INTEGER"}


def test_mindsdb_batch_join(trained):
    got = rows(trained, "SELECT b.* FROM ratings a JOIN movie_rec b WHERE a.userId IN (15, 16)")
    assert len(got) == 20
    assert {r[0] for r in got} == {15, 16}
    assert len({(r[0], r[3]) for r in got}) == 20  # one list per user, not per input row
    assert sorted(got) == sorted(rows(trained, "SELECT * FROM movie_rec WHERE userId IN (15, 16)"))
    assert [(r[0], r[3]) for r in got] == sorted((r[0], r[3]) for r in got), "one ranked list per user, in order"


def test_parameters_are_pushed_and_bound(trained):
    a = rows(trained, "SELECT * FROM movie_rec WHERE userId = ?", [9])
    b = rows(trained, "SELECT * FROM movie_rec WHERE userId = 9")
    assert a == b and len(a) == 10
    c = rows(trained, "SELECT movieId FROM movie_rec WHERE userId = ? AND rank <= ?", [9, 3])
    assert [r[0] for r in c] == [r[1] for r in b[:3]]


def test_unknown_user_gets_popular_items(trained, ratings):
    got = rows(trained, "SELECT * FROM movie_rec WHERE userId IN (1, 99999)")
    unknown = [r for r in got if r[0] == 99999]
    assert len(unknown) == 10 and [r[3] for r in unknown] == list(range(1, 11))
    popular = ratings[ratings.rating >= 4].groupby("movieId").size().sort_values(ascending=False)
    assert popular[unknown[0][1]] == popular.iloc[0]


def test_text_ids(con, ratings):
    df = ratings.assign(user=lambda d: "u" + d.userId.astype(str), item=lambda d: "i" + d.movieId.astype(str))
    con.register("text_df", df)
    con.execute(f"CREATE MODEL tm FROM (SELECT user, item FROM text_df) PREDICT item USING user_id = 'user', {FAST}")
    got = rows(con, "SELECT * FROM tm WHERE user = 'u3'")
    assert len(got) == 10 and all(r[0] == "u3" and r[1].startswith("i") for r in got)


def test_uuid_ids(con):
    con.execute(
        "CREATE TABLE ev AS SELECT uuid() AS u_id, (i % 7) AS item FROM range(50) t(i), range(3)")
    con.execute(f"CREATE MODEL um FROM ev PREDICT item USING user_id = 'u_id', {FAST}")
    some = rows(con, "SELECT u_id FROM ev LIMIT 1")[0][0]
    got = rows(con, "SELECT * FROM um WHERE u_id = ?", [str(some)])
    assert got and all(str(r[0]) == str(some) for r in got)
    assert dict((r[0], r[1]) for r in rows(con, "DESCRIBE SELECT * FROM um"))["u_id"] == "UUID"


def test_model_attributes_as_relations(trained):
    info = dict(rows(trained, "SELECT * FROM movie_rec.info"))
    assert info["user_id"] == "userId" and info["item_id"] == "movieId" and info["n_users"] == "60"
    params = dict(rows(trained, "SELECT parameter, value FROM movie_rec.model"))
    assert params["loss"] == "warp" and params["epochs"] == "5" and params["no_components"] == "8"


def test_pushdown_limits_what_is_scored(trained):
    """Filters on the key column decide which rows are scored, not only which come back."""
    def scored(sql: str) -> int:
        trained.execute(sql).fetchall()
        return trained.router.scored()

    assert scored("SELECT * FROM movie_rec WHERE userId = 7") == 1
    assert scored("SELECT * FROM movie_rec WHERE userId IN (1, 2, 3) AND score > 0") == 3
    assert scored("SELECT * FROM movie_rec r WHERE r.userId = 4 AND r.movieId = 105") == 1
    assert scored("SELECT * FROM movie_rec WHERE movieId = 105 USING recommender_type = 'item_item'") == 1
    assert scored("SELECT b.* FROM ratings a JOIN movie_rec b WHERE a.userId IN (5, 6)") == 2
    # without a filter on the key, every user is scored
    assert scored("SELECT * FROM movie_rec") == 60
    # a filter on another column is applied after scoring, by DuckDB
    assert scored("SELECT * FROM movie_rec WHERE movieId = 105") == 60


def test_bound_parameters_are_pushed_down(trained):
    got = trained.execute("SELECT userId FROM movie_rec WHERE userId = ?", [9]).fetchall()
    assert trained.router.scored() == 1 and {r[0] for r in got} == {9}


def test_item_filter_scores_the_asked_pairs(trained, ratings):
    """An item filter scores those pairs (no top-N cut first); seen items follow exclude_seen."""
    full = {r[1]: r[2] for r in rows(trained, "SELECT * FROM movie_rec WHERE userId = 1 USING n_recommendations = 40, "
                                              "exclude_seen = false")}
    seen = set(ratings.loc[ratings.userId == 1, "movieId"])
    unseen = sorted(set(full) - seen)
    bottom, seen_one = min(unseen, key=full.get), sorted(seen)[0]
    got = rows(trained, f"SELECT * FROM movie_rec WHERE userId = 1 AND movieId IN ({bottom}, {unseen[0]}, {seen_one}, 9999)")
    want = sorted([bottom, unseen[0]], key=lambda i: -full[i])
    assert [r[1] for r in got] == want and [r[3] for r in got] == [1, 2]
    assert [r[2] for r in got] == pytest.approx([full[i] for i in want], abs=1e-5)
    with_seen = rows(trained, f"SELECT movieId, score FROM movie_rec WHERE userId = 1 AND movieId = {seen_one} "
                              "USING exclude_seen = false")
    assert with_seen == [(seen_one, pytest.approx(full[seen_one], abs=1e-5))]
    assert rows(trained, f"SELECT count(*) FROM movie_rec WHERE movieId = {bottom}") == \
        [(int((~ratings.groupby("userId").movieId.apply(lambda s: bottom in set(s))).sum()),)]


def test_score_pairs_matches_the_ranking(trained):
    model = trained.router.catalog().load("movie_rec", "test")
    got = rows(trained, "SELECT movieId, score FROM movie_rec WHERE userId = 5")
    items = model.side("item").index.get_indexer([r[0] for r in got])
    user = model.side("user").index.get_loc(5)
    pairs = model.score_pairs(np.full(len(items), user), items)
    assert pairs == pytest.approx([r[1] for r in got], abs=1e-5)


def test_similar_filter_scores_the_asked_pairs(trained):
    full = rows(trained, "SELECT similar_movieId, score FROM movie_rec WHERE movieId = 101 "
                         "USING recommender_type = 'item_item', n_recommendations = 40")
    last, first = full[-1][0], full[0][0]
    got = rows(trained, f"SELECT similar_movieId, score, rank FROM movie_rec WHERE movieId = 101 "
                        f"AND similar_movieId IN ({last}, 101, {first}) USING recommender_type = 'item_item'")
    assert got == [(first, pytest.approx(full[0][1], abs=1e-5), 1), (last, pytest.approx(full[-1][1], abs=1e-5), 2)]
    users = rows(trained, "SELECT userId, rank FROM movie_rec WHERE movieId = 125 AND userId IN (3, 5) "
                          "USING recommender_type = 'item_user', exclude_seen = false")
    assert sorted(r[0] for r in users) == [3, 5] and sorted(r[1] for r in users) == [1, 2]
