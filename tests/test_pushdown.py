"""Pushdown: subqueries, OR and joins on the id column score only the keys they ask
for, with the rows the same query gives without pushdown; the max_scored bound; cancellation.

"Defeated" below is the same query over a CTE that reads the whole model (a CTE without a
filter of its own scores every key), so DuckDB alone applies the filters.
"""

from __future__ import annotations

import threading
import time

import pytest

import sqlrec
from sqlrec import errors


@pytest.fixture
def db(trained):
    """The trained 60-user model plus a users table: grp = userId % 3 (20 users each)."""
    trained.execute("CREATE TABLE users AS SELECT DISTINCT userId, userId % 3 AS grp FROM ratings")
    return trained


def run(con, sql: str, params=None) -> tuple[int, list[tuple]]:
    """(keys scored, rows) of one query."""
    rows = con.execute(sql, params).fetchall()
    return con.router.scored(), rows


def defeated(con, sql: str) -> list[tuple]:
    """The query with every key scored and DuckDB applying its filters (`recs` stands for the model)."""
    scored, rows = run(con, "WITH recs AS (SELECT * FROM movie_rec) " + sql.replace("movie_rec", "recs"))
    assert scored == 60
    return rows


GROUP_1 = list(range(1, 61, 3))  # userId % 3 = 1


def test_in_subquery_scores_only_its_values(db):
    scored, rows = run(db, "SELECT * FROM movie_rec WHERE userId IN (SELECT 12)")
    assert scored == 1 and rows == run(db, "SELECT * FROM movie_rec WHERE userId = 12")[1]
    assert len(rows) == 10 and {r[0] for r in rows} == {12}
    sql = "SELECT * FROM movie_rec WHERE userId IN (SELECT userId FROM users WHERE grp = 1) ORDER BY userId, rank"
    scored, rows = run(db, sql)
    assert scored == 20 and len(rows) == 200
    literal = ", ".join(map(str, GROUP_1))
    assert rows == run(db, f"SELECT * FROM movie_rec WHERE userId IN ({literal}) ORDER BY userId, rank")[1]
    assert rows == defeated(db, sql)


def test_scalar_subquery_and_ctes_and_parameters(db):
    scored, rows = run(db, "SELECT userId, rank FROM movie_rec WHERE userId = (SELECT max(userId) FROM users)")
    assert scored == 1 and rows == [(60, r) for r in range(1, 11)]
    sql = ("WITH g AS (SELECT userId FROM users WHERE grp = ?) "
           "SELECT userId, movieId, rank FROM movie_rec WHERE userId IN (SELECT userId FROM g) AND rank <= ? "
           "ORDER BY userId, rank")
    scored, rows = run(db, sql, [1, 2])
    assert scored == 20 and [r[0] for r in rows] == [u for u in GROUP_1 for _ in range(2)]
    assert rows == defeated(db, sql.replace("grp = ?", "grp = 1").replace("rank <= ?", "rank <= 2"))


def test_correlated_or_unbindable_subquery_is_left_to_duckdb(db):
    sql = ("SELECT * FROM movie_rec r WHERE r.userId IN "
           "(SELECT x.userId FROM ratings x WHERE x.movieId = r.movieId) ORDER BY r.userId, r.rank")
    scored, rows = run(db, sql)
    assert scored == 60 and rows == defeated(db, sql)
    # `score` is the model's column: the subquery cannot run alone, DuckDB runs it as written
    sql = "SELECT * FROM movie_rec WHERE userId IN (SELECT userId FROM ratings WHERE rating > score + 3)"
    scored, rows = run(db, sql + " ORDER BY userId, rank")
    assert scored == 60 and rows == defeated(db, sql + " ORDER BY userId, rank")


def test_or_of_id_filters(db):
    scored, rows = run(db, "SELECT * FROM movie_rec WHERE userId = 1 OR userId IN (2, 3) OR userId = (SELECT 4)")
    assert scored == 4 and rows == run(db, "SELECT * FROM movie_rec WHERE userId IN (1, 2, 3, 4)")[1]
    sql = "SELECT * FROM movie_rec WHERE (userId = 1 AND rank <= 3) OR userId = 2 ORDER BY userId, rank"
    scored, rows = run(db, sql)
    assert scored == 2 and [(r[0], r[3]) for r in rows] == [(1, 1), (1, 2), (1, 3)] + [(2, k) for k in range(1, 11)]
    assert rows == defeated(db, sql)
    # a branch that is no id filter: every key is scored, DuckDB filters
    sql = "SELECT * FROM movie_rec WHERE userId = 1 OR rank = 1 ORDER BY userId, rank"
    scored, rows = run(db, sql)
    assert scored == 60 and len(rows) == 69 and rows == defeated(db, sql)


def test_or_on_the_target_column_asks_those_targets(db):
    scored, rows = run(db, "SELECT * FROM movie_rec WHERE userId = 4 AND (movieId = 105 OR movieId = 106)")
    assert scored == 1
    assert rows == run(db, "SELECT * FROM movie_rec WHERE userId = 4 AND movieId IN (105, 106)")[1]


@pytest.mark.parametrize("sql", [
    "SELECT r.* FROM users u JOIN movie_rec r ON r.userId = u.userId WHERE u.grp = 1",
    "SELECT r.* FROM movie_rec r JOIN users u ON u.userId = r.userId AND u.grp = 1",
    "SELECT r.* FROM movie_rec r JOIN users u USING (userId) WHERE u.grp = 1",
    "SELECT r.* FROM movie_rec r, users u WHERE r.userId = u.userId AND u.grp = 1",
    "SELECT r.* FROM movie_rec r SEMI JOIN (SELECT userId FROM users WHERE grp = 1) u ON r.userId = u.userId",
    "WITH g AS (SELECT * FROM users WHERE grp = 1) SELECT r.* FROM g JOIN movie_rec r ON r.userId = g.userId",
])
def test_join_on_the_id_column_scores_the_joined_ids(db, sql):
    sql += " ORDER BY r.userId, r.rank"
    scored, rows = run(db, sql)
    assert scored == 20 and len(rows) == 200
    assert [r[0] for r in rows[::10]] == GROUP_1
    assert rows == defeated(db, sql)
    assert [r[:2] for r in rows] == [r[:2] for r in run(
        db, f"SELECT * FROM movie_rec WHERE userId IN ({', '.join(map(str, GROUP_1))}) ORDER BY userId, rank")[1]]


def test_outer_joins(db):
    # the model's rows are kept whatever matches: not pushed
    sql = "SELECT r.userId, u.grp, r.rank FROM movie_rec r LEFT JOIN users u ON r.userId = u.userId AND u.grp = 1"
    sql += " ORDER BY r.userId, r.rank"
    scored, rows = run(db, sql)
    assert scored == 60 and len(rows) == 600 and rows == defeated(db, sql)
    # the model on the side that only matches: pushed
    sql = ("SELECT u.userId, r.rank FROM users u LEFT JOIN movie_rec r ON r.userId = u.userId AND u.grp = 2 "
           "ORDER BY u.userId, r.rank")
    scored, rows = run(db, sql)
    assert scored == 20 and len(rows) == 40 + 200 and rows == defeated(db, sql)
    sql = "SELECT r.userId, r.rank FROM movie_rec r FULL JOIN users u ON r.userId = u.userId ORDER BY 1, 2"
    assert run(db, sql)[0] == 60


def test_joined_ids_unknown_to_the_model_are_asked_like_literals(db):
    db.execute("CREATE TABLE signups AS SELECT * FROM (VALUES (7), (99999)) t(userId)")
    scored, rows = run(db, "SELECT r.* FROM signups s JOIN movie_rec r ON r.userId = s.userId ORDER BY r.userId, r.rank")
    assert scored == 1  # 99999 gets the cold-start rows, as in IN (7, 99999)
    assert rows == run(db, "SELECT * FROM movie_rec WHERE userId IN (7, 99999) ORDER BY userId, rank")[1]


def test_max_scored_bounds_a_select(db):
    with pytest.raises(errors.QueryError) as info:
        db.execute("SELECT * FROM movie_rec LIMIT 10 USING max_scored = 10")
    message = str(info.value)
    assert message.startswith("SELECT FROM movie_rec: the query would score all 60 userId ids of the model, "
                              "more than max_scored = 10: no filter on userId is pushed into scoring")
    assert "USING max_scored = 0" in message and "CREATE TABLE ... AS SELECT" in message
    with pytest.raises(errors.QueryError, match=r"the subquery on userId was not pushed: .*score"):
        db.execute("SELECT * FROM movie_rec WHERE userId IN (SELECT userId FROM ratings WHERE rating > score) "
                   "USING max_scored = 10")
    with pytest.raises(errors.QueryError, match="the query asks for 20 userId ids, more than max_scored = 10"):
        db.execute("SELECT * FROM movie_rec WHERE userId IN (SELECT userId FROM users WHERE grp = 1) "
                   "USING max_scored = 10")
    assert len(db.execute("SELECT * FROM movie_rec WHERE userId IN (1, 2) USING max_scored = 10").fetchall()) == 20
    assert len(db.execute("SELECT * FROM movie_rec USING max_scored = 0").fetchall()) == 600
    assert len(db.execute("SELECT * FROM movie_rec").fetchall()) == 600  # 60 users: under the default
    # storing every key's rows is bulk by intent: no bound
    db.execute("CREATE TABLE stored AS SELECT * FROM movie_rec USING max_scored = 10")
    db.execute("INSERT INTO stored SELECT * FROM movie_rec USING max_scored = 10")
    assert db.execute("SELECT count(*) FROM stored").fetchone() == (1200,)
    with pytest.raises(errors.OptionError, match="option max_scored must be >= 0"):
        db.execute("SELECT * FROM movie_rec USING max_scored = -1")
    with pytest.raises(errors.QueryError, match="option max_scored does not apply to recommender_type 'rating'"):
        db.execute("SELECT * FROM movie_rec WHERE movieId = 105 USING recommender_type = 'rating', max_scored = 5")


def test_bad_subqueries_are_sqlrec_errors(db):
    with pytest.raises(errors.ProgrammingError, match="nosuch"):
        db.execute("SELECT * FROM movie_rec WHERE userId IN (SELECT nosuch FROM users)")
    with pytest.raises(errors.ProgrammingError):
        db.execute("SELECT * FROM movie_rec WHERE userId IN (SELECT userId, grp FROM users)")
    assert db.execute("SELECT count(*) FROM movie_rec WHERE userId = 1").fetchone() == (10,)


def test_subqueries_in_a_transaction(db):
    db.execute("BEGIN")
    db.execute("CREATE TEMP TABLE picked AS SELECT 5 AS userId UNION ALL SELECT 6")
    scored, rows = run(db, "SELECT DISTINCT userId FROM movie_rec WHERE userId IN (SELECT userId FROM picked) ORDER BY 1")
    assert scored == 2 and rows == [(5,), (6,)]
    # one reading a model is not run alone (DuckDB has no such table)
    sql = ("SELECT userId, rank FROM movie_rec WHERE userId IN (SELECT similar_userId FROM movie_rec "
           "WHERE userId = 3 USING recommender_type = 'user_user', n_recommendations = 4) ORDER BY userId, rank")
    scored, rows = run(db, sql)
    assert scored == 60 + 1 and len(rows) == 40
    # one that cannot run alone (`score` is the model's) fails to bind, which leaves the transaction open
    sql = "SELECT count(*) FROM movie_rec WHERE userId IN (SELECT userId FROM picked WHERE score > 100)"
    assert run(db, sql) == (60, [(0,)])
    assert db.execute("SELECT count(*) FROM picked").fetchone() == (2,)
    db.execute("ROLLBACK")
    assert db.execute("SELECT count(*) FROM movie_rec WHERE userId = 1").fetchone() == (10,)


@pytest.mark.slow
def test_interrupt_stops_an_all_users_select_between_chunks():
    con = sqlrec.connect()
    con.execute("CREATE TABLE big AS SELECT i % 200000 AS u, (i * 7919) % 5000 AS it FROM range(600000) t(i)")
    con.execute("CREATE MODEL pop FROM big PREDICT it USING user_id = 'u', engine = 'popularity'")
    with pytest.raises(errors.QueryError, match="max_scored"):
        con.execute("SELECT count(*) FROM pop")
    outcome: list[BaseException | float] = []

    def query() -> None:
        started = time.perf_counter()
        try:
            con.cursor().execute("SELECT count(*) FROM pop USING n_recommendations = 50, max_scored = 0").fetchall()
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome.append(exc)
        outcome.append(time.perf_counter() - started)

    worker = threading.Thread(target=query)
    worker.start()
    time.sleep(0.5)
    con.interrupt()
    worker.join(30)
    assert not worker.is_alive()
    assert isinstance(outcome[0], errors.Cancelled) and "cancelled while scoring" in str(outcome[0])
    assert outcome[1] < 4, "scoring stops at the next chunk, not at the end"
    assert con.execute("SELECT count(*) FROM pop WHERE u = 3").fetchone() == (10,)  # still serving
