"""Repeated statements follow a plan (sqlrec.exec.plans): same rows as the full path, and a plan
never outlives what it was learnt from (a new model version, a dropped model, another cursor's
transaction, a table replaced by a model, DuckDB settings)."""

from __future__ import annotations

import itertools

import pytest

import sqlrec
from conftest import FAST

_fresh = itertools.count()


def full(con, sql, params=None):
    """The full path's rows: a text never run before is parsed and planned from scratch."""
    return con.execute(f"{sql} /* {next(_fresh)} */", params).fetchall()


def repeated(con, sql, params_list):
    """Rows of `sql` run once per parameter list (the third run on follows its plan)."""
    return [con.execute(sql, p).fetchall() for p in params_list]


USERS = [[u] for u in (2, 5, 2, 7, 11, 60, 999, 3, 4)]  # 999: unknown, popularity fallback


@pytest.mark.parametrize("sql, literal", [
    ("SELECT * FROM movie_rec WHERE userId = ?", "SELECT * FROM movie_rec WHERE userId = {}"),
    ("SELECT movieId, score FROM movie_rec WHERE userId = $1 ORDER BY rank DESC",
     "SELECT movieId, score FROM movie_rec WHERE userId = {} ORDER BY rank DESC"),
    ("SELECT * FROM movie_rec r WHERE r.userId = ? AND r.score > 0 USING n_recommendations = 4",
     "SELECT * FROM movie_rec r WHERE r.userId = {} AND r.score > 0 USING n_recommendations = 4"),
    ("SELECT * FROM movie_rec WHERE movieId = ? USING recommender_type = 'item_item'",
     "SELECT * FROM movie_rec WHERE movieId = {} USING recommender_type = 'item_item'"),
    ("SELECT * FROM movie_rec WHERE userId = ? AND recommender_type = 'user_user'",
     "SELECT * FROM movie_rec WHERE userId = {} AND recommender_type = 'user_user'"),
    ("SELECT count(*), max(rank) FROM movie_rec WHERE userId = ?",
     "SELECT count(*), max(rank) FROM movie_rec WHERE userId = {}"),
    ("SELECT * FROM movie_rec WHERE movieId = ? USING recommender_type = 'item_user', n_recommendations = 7",
     "SELECT * FROM movie_rec WHERE movieId = {} USING recommender_type = 'item_user', n_recommendations = 7"),
    ("SELECT * FROM movie_rec WHERE userId = ? USING exclude_seen = false, n_recommendations = 40",
     "SELECT * FROM movie_rec WHERE userId = {} USING exclude_seen = false, n_recommendations = 40"),
])
def test_repeated_queries_equal_the_full_path(trained, sql, literal):
    params = USERS if "movieId = ?" not in sql else [[m] for m in (101, 130, 101, 139, 5000, 120)]
    got = repeated(trained, sql, params)
    for p, rows in zip(params, got):
        assert rows == full(trained, literal.format(p[0])), (sql, p)
    assert any(rows for rows in got)


def test_pushed_pairs_and_in_lists_follow_the_plan(trained):
    sql = "SELECT * FROM movie_rec WHERE userId IN (?, 3, ?) AND movieId IN (101, 102, ?, 125) ORDER BY userId, rank"
    for a, b, m in [(2, 4, 130), (6, 8, 131), (2, 4, 130), (10, 999, 119)]:
        assert trained.execute(sql, [a, b, m]).fetchall() == full(
            trained, sql.replace("?", "{}", 3).format(a, b, m))
    for sql in ("SELECT * FROM movie_rec WHERE userId = ? OR userId = ? ORDER BY userId, rank",
                "SELECT * FROM movie_rec WHERE (userId = ? AND userId IN (2, 3)) ORDER BY userId, rank"):
        for a, b in [(2, 5), (3, 4), (2, 5), (4, 3), (7, 2)]:
            assert trained.execute(sql, [a, b][:sql.count("?")]).fetchall() == full(
                trained, sql.replace("?", "{}").format(a, b)), (sql, a, b)
    scored = []
    for user in (5, 5, 6):
        trained.execute("SELECT * FROM movie_rec WHERE userId = ?", [user]).fetchall()
        scored.append(trained.router.scored())
    assert sum(scored) == 3, "each run scores the one asked user, not every user"


def test_columns_and_types_are_the_full_paths(trained):
    sql = "SELECT * FROM movie_rec WHERE userId = ?"
    for _ in range(3):
        cur = trained.execute(sql, [4])
    assert [d[:2] for d in cur.description] == [d[:2] for d in trained.execute(
        "SELECT * FROM movie_rec WHERE userId = 4 /* types */").description]
    df = trained.execute(sql, [4]).df()
    assert list(df.columns) == ["userId", "movieId", "score", "rank"] and len(df) == 10


def test_text_and_uuid_ids(con, ratings):
    df = ratings.assign(user=lambda d: "u" + d.userId.astype(str), item=lambda d: "i" + d.movieId.astype(str))
    con.register("text_df", df)
    con.execute(f"CREATE MODEL tm FROM (SELECT user, item FROM text_df) PREDICT item USING user_id = 'user', {FAST}")
    for u in ["u3", "u5", "u3", "nobody", "u8"]:
        assert con.execute("SELECT * FROM tm WHERE user = ?", [u]).fetchall() == full(
            con, f"SELECT * FROM tm WHERE user = '{u}'")
    con.execute("CREATE TABLE ev AS SELECT uuid() AS u_id, (i % 7) AS item FROM range(50) t(i), range(3)")
    con.execute(f"CREATE MODEL um FROM ev PREDICT item USING user_id = 'u_id', {FAST}")
    ids = [str(r[0]) for r in con.execute("SELECT DISTINCT u_id FROM ev ORDER BY 1 LIMIT 4").fetchall()]
    for u in ids + ids:
        cur = con.execute("SELECT * FROM um WHERE u_id = ?", [u])
        assert cur.description[0][1] == "UUID"
        assert cur.fetchall() == full(con, f"SELECT * FROM um WHERE u_id = '{u}'")


def test_a_new_version_or_a_dropped_model_is_seen_at_once(trained):
    sql = "SELECT * FROM movie_rec WHERE userId = ?"
    assert all(len(r) == 10 for r in repeated(trained, sql, [[2], [3], [4]]))
    trained.execute("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId "
                    f"USING user_id = 'userId', n_recommendations = 3, {FAST}")
    assert [len(r) for r in repeated(trained, sql, [[2], [3]])] == [3, 3]
    trained.execute("DROP MODEL movie_rec")
    with pytest.raises(sqlrec.ProgrammingError, match="movie_rec"):
        trained.execute(sql, [2])


def test_another_cursors_transaction_keeps_its_own_version(tmp_path):
    from conftest import file_database

    con = file_database(tmp_path / "p.duckdb", "CREATE MODEL m FROM ratings PREDICT movieId "
                        f"USING user_id = 'userId', {FAST}")
    sql = "SELECT count(*) FROM m WHERE userId = ?"
    a, b = con.cursor(), con.cursor()
    assert [a.execute(sql, [2]).fetchone()[0] for _ in range(3)] == [10, 10, 10]
    b.execute("BEGIN")
    b.execute(f"CREATE OR REPLACE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', "
              f"n_recommendations = 2, {FAST}")
    assert [b.execute(sql, [2]).fetchone()[0] for _ in range(3)] == [2, 2, 2]
    assert [a.execute(sql, [2]).fetchone()[0] for _ in range(3)] == [10, 10, 10]
    b.execute("ROLLBACK")
    assert [x.execute(sql, [3]).fetchone()[0] for x in (a, b, a, b)] == [10, 10, 10, 10]
    con.close()


def test_a_table_replaced_by_a_model_of_the_same_name(con):
    con.execute("CREATE TABLE recs AS SELECT 1 AS userId, 2 AS movieId")
    sql = "SELECT count(*) FROM recs WHERE userId = ?"
    assert [con.execute(sql, [1]).fetchone()[0] for _ in range(3)] == [1, 1, 1]
    con.execute("DROP TABLE recs")
    con.execute(f"CREATE MODEL recs FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    assert [con.execute(sql, [1]).fetchone()[0] for _ in range(3)] == [10, 10, 10]


def test_parameter_errors_are_the_full_paths(trained):
    sql = "SELECT * FROM movie_rec WHERE userId = ?"
    repeated(trained, sql, [[2], [3], [4]])
    with pytest.raises(sqlrec.ProgrammingError, match="1 placeholders but 2 parameters"):
        trained.execute(sql, [2, 3])
    with pytest.raises(sqlrec.ProgrammingError, match="1 placeholders but no parameters"):
        trained.execute(sql)
    with pytest.raises(sqlrec.ProgrammingError, match="cannot be compared with column userId"):
        trained.execute(sql, ["not a number"])
    assert len(trained.execute(sql, [2]).fetchall()) == 10


def test_named_parameters_and_recommender_type_as_a_parameter(trained):
    named = "SELECT * FROM movie_rec WHERE userId = $u"
    typed = "SELECT * FROM movie_rec WHERE userId = ? AND recommender_type = ?"
    for u in (2, 3, 2, 4):
        assert trained.execute(named, {"u": u}).fetchall() == full(trained, f"SELECT * FROM movie_rec WHERE userId = {u}")
        assert trained.execute(typed, [u, "user_user"]).fetchall() == full(
            trained, f"SELECT * FROM movie_rec WHERE userId = {u} USING recommender_type = 'user_user'")


@pytest.mark.parametrize("setup", ["safe", "SET python_enable_replacements = false"])
def test_without_replacement_scans(ratings, setup):
    """DuckDB reads no Python object by name with external access off (safe=True, sqlrec serve)
    or replacement scans disabled: the rows are registered instead, and nothing lingers."""
    con = sqlrec.connect(safe=(setup == "safe"))
    con.register("ratings_df", ratings)
    con.execute("CREATE TABLE ratings AS SELECT * FROM ratings_df")
    con.execute(f"CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    if setup != "safe":
        con.execute(setup)
    sql = "SELECT * FROM m WHERE userId = ?"
    for u in (2, 3, 2, 5):
        assert con.execute(sql, [u]).fetchall() == full(con, f"SELECT * FROM m WHERE userId = {u}")
    names = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()]
    assert not [n for n in names if n.startswith("__sqlrec")], names
    con.close()


def test_plain_queries_and_writes_in_between(con):
    sql = "SELECT count(*) FROM ratings WHERE userId = ?"
    counts = [con.execute(sql, [2]).fetchone()[0] for _ in range(3)]
    con.execute("INSERT INTO ratings VALUES (2, 999, 5.0, 0)")
    assert con.execute(sql, [2]).fetchone()[0] == counts[0] + 1
    with pytest.raises(sqlrec.ProgrammingError, match="USING"):
        for _ in range(3):
            con.execute("SELECT * FROM ratings USING n_recommendations = 3")


def test_a_model_with_an_approximate_index(con):
    pytest.importorskip("faiss")
    con.execute(f"CREATE MODEL am FROM ratings PREDICT movieId USING user_id = 'userId', approximate = true, "
                f"nlist = 4, nprobe = 1, {FAST}")
    for sql in ("SELECT * FROM am WHERE userId = ?", "SELECT * FROM am WHERE userId = ? USING approximate = false"):
        for u in (2, 3, 2, 4, 5):
            assert con.execute(sql, [u]).fetchall() == full(con, sql.replace("?", str(u))), (sql, u)


def test_catalogue_only_users_get_the_fallback_as_in_the_full_path(con):
    con.execute("CREATE TABLE people AS SELECT DISTINCT userId FROM ratings UNION ALL SELECT 5000")
    con.execute(f"CREATE MODEL cm FROM ratings PREDICT movieId USING user_id = 'userId', users = people, {FAST}")
    for u in (5000, 2, 5000, 3, 5000):
        got = con.execute("SELECT * FROM cm WHERE userId = ?", [u]).fetchall()
        assert got == full(con, f"SELECT * FROM cm WHERE userId = {u}") and len(got) == 10
