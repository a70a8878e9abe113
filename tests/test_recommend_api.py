"""The recommend API (con.recommend / cur.recommend): the same rows as the SQL query it stands for.

Every test compares with the query a user would write (`SELECT * FROM m WHERE userId IN (...)
USING ...`) on the same real model in a real DuckDB database: columns, order, ties, types and
values must be equal, and bad arguments must give sqlrec errors naming the argument while the
transaction goes on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import sqlrec
from conftest import FAST, group
from sqlrec import errors
from sqlrec.api import Recommendations


def same(rec: Recommendations, cur: sqlrec.Cursor, sql: str, params: list | None = None) -> list[tuple]:
    """The API's rows equal the query's, description (names and types) included; its rows. The
    API's rows are read first: `cur` may be the cursor they are on."""
    description, got = rec.description, rec.fetchall()
    assert cur.execute(sql, params).description == description
    assert rec.columns == [d[0] for d in description]
    assert got == cur.fetchall()
    return got


@pytest.mark.parametrize("kind, arg, keys", [
    ("user_item", "users", [2, 99999, 1, 2]),  # a duplicate and an unknown user (cold start)
    ("user_user", "users", [5, 8]),
    ("item_item", "items", [101, 130, 123456]),
    ("item_user", "items", [101, 130]),
])
def test_every_kind_equals_its_query(trained, kind, arg, keys):
    column = "userId" if arg == "users" else "movieId"
    rec = trained.recommend("movie_rec", **{arg: keys}, kind=kind, k=4)
    assert rec.kind == kind and rec.model == "movie_rec" and rec.version == 1
    rows = same(rec, trained.cursor(), f"SELECT * FROM movie_rec WHERE {column} IN ({', '.join(map(str, keys))}) "
                                       f"USING recommender_type = '{kind}', n_recommendations = 4")
    assert {r[0] for r in rows} == set(keys)


def test_defaults_follow_the_ids_given(trained):
    cur = trained.cursor()
    same(trained.recommend("movie_rec", users=[3]), cur, "SELECT * FROM movie_rec WHERE userId = 3")
    same(trained.recommend("movie_rec", items=[104]), cur,
         "SELECT * FROM movie_rec WHERE movieId = 104 USING recommender_type = 'item_item'")
    # no ids: every user, as the query without a filter
    same(trained.recommend("movie_rec", k=2), cur, "SELECT * FROM movie_rec USING n_recommendations = 2")


def test_a_working_model_recommends_the_users_own_group(trained):
    rows = trained.recommend("movie_rec", users=[2, 3], k=5).fetchall()
    assert all(group(item) == (user - 1) % 2 for user, item, _, _ in rows)


def test_exclude_seen_candidates_and_targets(trained):
    cur = trained.cursor()
    same(trained.recommend("movie_rec", users=[1, 4], k=40, exclude_seen=False), cur,
         "SELECT * FROM movie_rec WHERE userId IN (1, 4) USING n_recommendations = 40, exclude_seen = false")
    same(trained.recommend("movie_rec", users=[1, 4], k=3, candidates=list(range(100, 110))), cur,
         "SELECT * FROM movie_rec WHERE userId IN (1, 4) USING n_recommendations = 3, "
         "candidates = 'SELECT DISTINCT movieId FROM ratings WHERE movieId < 110'")
    # users and items: the items are the targets scored, as a filter on both columns
    same(trained.recommend("movie_rec", users=[1], items=[100, 125, 139]), cur,
         "SELECT * FROM movie_rec WHERE userId = 1 AND movieId IN (100, 125, 139)")
    same(trained.recommend("movie_rec", users=[1, 2], items=[100, 125], kind="rating"), cur,
         "SELECT * FROM movie_rec WHERE userId IN (1, 2) AND movieId IN (100, 125) "
         "USING recommender_type = 'rating'")


def test_liked_items_fold_in_a_new_user_as_interactions_do(trained):
    liked = [100, 101, 102, 103, 104, 105]
    rec = trained.recommend("movie_rec", liked=liked, k=5)
    assert rec.new_user == -(2**31) + 1  # an id no trained user has
    given = f"SELECT {rec.new_user}::BIGINT AS userId, * FROM (VALUES {', '.join(f'({i})' for i in liked)}) t(movieId)"
    rows = same(rec, trained.cursor(), f"SELECT * FROM movie_rec USING n_recommendations = 5, "
                                       f"interactions = '{given}'")
    assert not set(liked) & {r[1] for r in rows} and sum(group(r[1]) == 0 for r in rows) >= 4
    named = trained.recommend("movie_rec", liked=[120, 121, 122], new_user=9999, k=3)
    assert named.new_user == 9999 and {r[0] for r in named.fetchall()} == {9999}


def test_text_ids_and_their_types(con):
    con.execute("CREATE TABLE sr AS SELECT 'u' || userId AS uid, 'm' || movieId AS mid, rating FROM ratings")
    con.execute(f"CREATE MODEL srec FROM sr PREDICT mid USING user_id = 'uid', {FAST}")
    cur = con.cursor()
    same(con.recommend("srec", users=["u1", "nobody", "u2"], k=3), cur,
         "SELECT * FROM srec WHERE uid IN ('u1', 'nobody', 'u2') USING n_recommendations = 3")
    same(con.recommend("srec", items=["m101"], kind="item_user", k=3), cur,
         "SELECT * FROM srec WHERE mid = 'm101' USING recommender_type = 'item_user', n_recommendations = 3")
    rec = con.recommend("srec", liked=["m100", "m101"], k=2)
    assert rec.new_user == "__new_user__" and {r[0] for r in rec.fetchall()} == {"__new_user__"}


def test_arrow_df_and_id_containers(trained):
    expected = trained.execute("SELECT * FROM movie_rec WHERE userId IN (1, 2) USING n_recommendations = 3").arrow()
    table = trained.recommend("movie_rec", users=[1, 2], k=3).arrow()
    assert isinstance(table, pa.Table) and table.equals(expected)
    assert table.schema.field("score").type == pa.float32() and table.schema.field("userId").type == pa.int64()
    frame = trained.recommend("movie_rec", users=pd.Series([1, 2]), k=3).df()
    pd.testing.assert_frame_equal(frame, expected.to_pandas())
    assert trained.recommend("movie_rec", users=np.array([1, 2]), k=3).arrow().equals(expected)
    assert trained.recommend("movie_rec", users=pa.array([1, 2]), k=3).arrow().equals(expected)
    assert trained.recommend("movie_rec", users=("1", "2"), k=3).arrow().equals(expected)  # as '1' in SQL
    assert trained.recommend("movie_rec", users=[], k=3).fetchall() == []


@pytest.mark.parametrize("arguments, error, text", [
    (dict(users=[1], k=0), errors.OptionError, "k must be an integer from 1 to 100,000, got 0"),
    (dict(users=[1], k=100_001), errors.OptionError, "k must be"),
    (dict(users=[1], k="many"), errors.OptionError, "k must be"),
    (dict(users=[1], k=True), errors.OptionError, "k must be"),
    (dict(users=[1], kind="user_movie"), errors.OptionError, "kind must be one of"),
    (dict(users=1), errors.OptionError, "users must be a list of ids, got int 1; for one id: users=[1]"),
    (dict(users={1, 2}), errors.OptionError, "users must be a list"),
    (dict(users=[1, None]), errors.OptionError, "users holds None"),
    (dict(users=["x"]), errors.QueryError, "users id 'x' is not an integer"),
    (dict(users=[1], liked=[100]), errors.OptionError, "not both"),
    (dict(liked=[]), errors.OptionError, "liked must hold at least one"),
    (dict(liked=[100], kind="item_item"), errors.OptionError, "kind must be user_item or user_user"),
    (dict(users=[1], new_user=5), errors.OptionError, "give liked too"),
    (dict(items=[100], users=[1], kind="item_item"), errors.QueryError, "users cannot be given"),
    (dict(users=[1], items=[100], kind="rating", k=3), errors.QueryError, "k does not apply"),
    (dict(users=[1], kind="rating"), errors.QueryError, "give items too"),
    (dict(users=[1], exclude_seen="yes"), errors.OptionError, "exclude_seen must be True, False or None"),
    (dict(k=1, max_scored=10), errors.QueryError, "all 60 users of the model, more than max_scored = 10"),
    (dict(users=[1], version=7), errors.Error, "version"),
])
def test_bad_arguments_are_named_and_the_transaction_goes_on(trained, arguments, error, text):
    trained.execute("BEGIN")
    trained.execute("CREATE TABLE kept AS SELECT 1 AS x")
    with pytest.raises(error) as info:
        trained.recommend("movie_rec", **arguments)
    assert text in str(info.value) and str(info.value).startswith("recommend('movie_rec')")
    assert trained.execute("SELECT x FROM kept").fetchall() == [(1,)]  # still in the open transaction
    trained.rollback()
    assert trained.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'kept'").fetchone() == (0,)


def test_unknown_model_and_cold_start_error(trained):
    with pytest.raises(errors.ModelNotFoundError, match=r"model 'movie_recc' does not exist \(did you mean 'movie_rec'"):
        trained.recommend("movie_recc", users=[1])
    trained.execute("CREATE MODEL strict FROM ratings PREDICT movieId "
                    f"USING user_id = 'userId', cold_start = 'error', {FAST}")
    with pytest.raises(errors.UnknownIdError, match="424242"):
        trained.recommend("strict", users=[1, 424242])
    with pytest.raises(errors.OptionError, match="model must be a model's name"):
        trained.recommend(None, users=[1])


def test_it_runs_in_the_cursors_transaction(con):
    cur = con.cursor()
    cur.execute("BEGIN")
    cur.execute(f"CREATE MODEL fresh FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    same(cur.recommend("fresh", users=[7], k=3), cur, "SELECT * FROM fresh WHERE userId = 7 USING n_recommendations = 3")
    with pytest.raises(errors.ProgrammingError):  # another cursor does not see the uncommitted model
        con.cursor().execute("SELECT * FROM fresh WHERE userId = 7")
    with pytest.raises(errors.ModelNotFoundError):  # nor does its recommend (a ProgrammingError too)
        con.cursor().recommend("fresh", users=[7])
    cur.execute("ROLLBACK")
    with pytest.raises(errors.ModelNotFoundError):
        cur.recommend("fresh", users=[7])


def test_the_rows_stay_on_the_cursor_until_the_next_statement(trained):
    cur = trained.cursor()
    rec = cur.recommend("movie_rec", users=[1], k=3)
    assert rec.fetchone()[0] == 1
    assert len(cur.fetchall()) == 2  # the cursor holds the rest, as after a query
    assert rec.fetchall() == []  # read once
    cur.execute("SELECT 42")
    assert cur.fetchall() == [(42,)]
    cur.close()
    with pytest.raises(errors.InterfaceError):
        cur.recommend("movie_rec", users=[1])


def test_training_items_and_item_counts(trained):
    seen = trained.recommend("movie_rec", users=[2], k=40, exclude_seen=False).fetchall()
    unseen = trained.recommend("movie_rec", users=[2], k=40).fetchall()
    expected = sorted({r[1] for r in seen} - {r[1] for r in unseen})
    assert trained.training_items("movie_rec", 2) == expected
    assert trained.training_items("movie_rec", "2") == expected
    assert trained.training_items("movie_rec", 424242) == [] and trained.training_items("movie_rec", "abc") == []
    counts = trained.item_counts("movie_rec")
    assert counts.column_names == ["movieId", "users"]
    truth = dict(trained.execute("SELECT movieId, count(DISTINCT userId) FROM ratings GROUP BY 1").fetchall())
    assert dict(zip(counts.column(0).to_pylist(), counts.column(1).to_pylist())) == truth
