"""Semantics decided once: rating without threshold, ids that are not ids, the MindsDB
batch join under ordinary SQL, and duckdb's conventions (Python objects by name, .sql)."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import sqlrec
from conftest import FAST
from sqlrec.errors import ColumnError, OptionError, QueryError


def rows(con, sql, params=None):
    return con.execute(sql, params).fetchall()


def info(con, model):
    return dict(rows(con, f"SELECT * FROM {model}.info"))


def books(con) -> None:
    """A 1-10 rating scale (Goodbooks-like): 30 readers, 20 books, every reader rates 10."""
    rng = np.random.default_rng(3)
    data = [(u, f"isbn{b:02d}", int(rng.integers(1, 11))) for u in range(30) for b in rng.choice(20, 10, replace=False)]
    frame = pd.DataFrame(data, columns=["user_id", "isbn", "rating"])
    con.execute("CREATE TABLE book_ratings AS SELECT * FROM frame")


# --- rating without threshold -------------------------------------------------------------------


def test_rating_without_threshold_uses_the_middle_of_the_scale(con):
    books(con)
    con.execute(f"BUILD MODEL b USING lightfm OPTIONS (user_col = 'user_id', item_col = 'isbn', rating_col = 'rating', "
                f"{FAST}) AS SELECT * FROM book_ratings")
    got = info(con, "b")
    assert got["threshold"] == "5.5"  # (1 + 10) / 2
    assert int(got["n_positives"]) == rows(con, "SELECT count(*) FROM book_ratings WHERE rating >= 6")[0][0]
    assert int(got["n_positives"]) < int(got["n_pairs"]) == 300
    con.execute(f"CREATE MODEL explicit FROM book_ratings PREDICT isbn USING user_id = 'user_id', rating = 'rating', "
                f"threshold = 5.5, {FAST}")
    assert rows(con, "SELECT * FROM b WHERE user_id = 4") == rows(con, "SELECT * FROM explicit WHERE user_id = 4")


def test_rating_midpoint_on_the_star_scale_and_an_explicit_threshold_wins(con):
    con.execute(f"CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', {FAST}")
    assert info(con, "m")["threshold"] == "3"  # ratings 1 to 5
    assert info(con, "m")["n_positives"] == str(rows(con, "SELECT count(*) FROM ratings WHERE rating >= 3")[0][0])
    con.execute(f"CREATE MODEL t FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
                f"threshold = 4.5, {FAST}")
    assert info(con, "t")["threshold"] == "4.5"
    assert info(con, "t")["n_positives"] == str(rows(con, "SELECT count(*) FROM ratings WHERE rating >= 4.5")[0][0])
    con.execute(f"CREATE MODEL plain FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    assert info(con, "plain")["threshold"] is None and info(con, "plain")["n_positives"] == "720"


@pytest.mark.parametrize("option", ["user_id", "item_id", "rating", "weight", "timestamp"])
def test_empty_column_option_is_an_option_error(con, option):
    given = {"user_id": "'userId'", option: "''"}
    using = ", ".join(f"{k} = {v}" for k, v in given.items())
    with pytest.raises(OptionError, match=f"CREATE MODEL e: option {option} is empty"):
        con.execute(f"CREATE MODEL e FROM ratings PREDICT movieId USING {using}")
    with pytest.raises(OptionError, match=f"option {option} is empty"):
        con.execute(f"BUILD MODEL e USING lightfm OPTIONS ({using.replace('user_id', 'user_col')}) AS SELECT * FROM ratings")
    assert rows(con, "SHOW MODELS") == []
    assert rows(con, "SELECT count(*) FROM ratings") == [(720,)]


# --- PREDICT a column that is not an id -------------------------------------------------------------


def test_predict_a_rating_column_is_an_error(con):
    with pytest.raises(ColumnError, match=r"column 'rating' \(option item_id or PREDICT\) has type DOUBLE, a "
                                          r"measurement rather than an id"):
        con.execute(f"CREATE MODEL p FROM ratings PREDICT rating USING user_id = 'userId', {FAST}")
    with pytest.raises(OptionError, match="PREDICT rating names column 'rating', which option rating also names"):
        con.execute(f"CREATE MODEL p FROM ratings PREDICT rating USING user_id = 'userId', rating = 'rating', {FAST}")
    with pytest.raises(OptionError, match="option user_id names column 'ts', which option timestamp also names"):
        con.execute(f"CREATE MODEL p FROM ratings PREDICT movieId USING user_id = 'ts', timestamp = 'ts', {FAST}")
    with pytest.raises(ColumnError, match=r"column 'rating' \(option user_id\) has type DOUBLE"):
        con.execute(f"CREATE MODEL p FROM ratings PREDICT movieId USING user_id = 'rating', {FAST}")
    assert rows(con, "SHOW MODELS") == []


def test_exact_decimal_ids_are_still_ids(con):
    con.execute(f"CREATE MODEL d FROM (SELECT userId, CAST(movieId AS DECIMAL(6, 0)) AS movieId FROM ratings) "
                f"PREDICT movieId USING user_id = 'userId', {FAST}")
    assert len(rows(con, "SELECT * FROM d WHERE userId = 1")) == 10


# --- the MindsDB batch join under ordinary SQL -------------------------------------------------------


def test_batch_join_under_aggregates_group_by_and_order_by(trained):
    direct = rows(trained, "SELECT * FROM movie_rec WHERE userId IN (15, 16) ORDER BY userId, rank")
    assert rows(trained, "SELECT count(*) FROM ratings a JOIN movie_rec b WHERE a.userId IN (15, 16)") == [(20,)]
    assert rows(trained, "SELECT count(*) FROM ratings a JOIN movie_rec b WHERE a.userId = 15") == [(10,)]
    grouped = rows(trained, "SELECT a.userId, count(*), max(b.rank) FROM ratings a JOIN movie_rec b "
                            "WHERE a.userId IN (15, 16) GROUP BY a.userId ORDER BY 1")
    assert grouped == [(15, 10, 10), (16, 10, 10)]
    reverse = rows(trained, "SELECT b.movieId FROM ratings a JOIN movie_rec b WHERE a.userId = 15 ORDER BY b.rank DESC")
    assert [r[0] for r in reverse] == [r[1] for r in direct if r[0] == 15][::-1]
    outer = rows(trained, "SELECT a.userId, b.movieId, b.rank FROM ratings a JOIN movie_rec b WHERE a.userId = 16 "
                          "AND b.rank <= 3")
    assert outer == [(16, r[1], r[3]) for r in direct if r[0] == 16 and r[3] <= 3]


def test_batch_join_with_ctes_and_subqueries(trained):
    direct = rows(trained, "SELECT * FROM movie_rec WHERE userId = 15 ORDER BY rank")
    left_cte = rows(trained, "WITH fans AS (SELECT * FROM ratings WHERE userId = 15) SELECT b.* FROM fans a JOIN movie_rec b")
    assert left_cte == direct
    around = rows(trained, "WITH recs AS (SELECT b.* FROM ratings a JOIN movie_rec b WHERE a.userId IN (15, 16)) "
                           "SELECT userId, count(*) FROM recs GROUP BY userId ORDER BY userId")
    assert around == [(15, 10), (16, 10)]
    sub = rows(trained, "SELECT * FROM (SELECT b.* FROM ratings a JOIN movie_rec b WHERE a.userId = 15) LIMIT 2")
    assert sub == direct[:2]


def test_batch_join_reads_only_the_key_of_the_joined_table(trained):
    with pytest.raises(QueryError, match=r"only a\.userId can be read, not a\.movieId; filter on it in WHERE, or join "
                                         r"with ON b\.userId = a\.userId"):
        trained.execute("SELECT a.movieId FROM ratings a JOIN movie_rec b WHERE a.userId = 215")
    with pytest.raises(QueryError, match=r"not a\.rating"):
        trained.execute("SELECT b.* FROM ratings a JOIN movie_rec b WHERE a.userId = 15 ORDER BY a.rating")
    # filters on the joined table's other columns choose the keys
    chosen = rows(trained, "SELECT DISTINCT b.userId FROM ratings a JOIN movie_rec b WHERE a.movieId = 100 "
                           "AND a.rating >= 4 ORDER BY 1")
    assert chosen == rows(trained, "SELECT DISTINCT userId FROM ratings WHERE movieId = 100 AND rating >= 4 ORDER BY 1")


# --- duckdb's conventions ----------------------------------------------------------------------------

module_frame = pd.DataFrame({"x": [1, 2, 3]})


def test_python_objects_in_the_callers_scope_are_tables(con, ratings):
    arrow_table = pa.table({"y": [10, 20]})
    local_frame = ratings[ratings.userId <= 10]
    con.execute("CREATE TABLE small AS SELECT * FROM local_frame")
    assert rows(con, "SELECT count(*) FROM small") == [(len(local_frame),)]
    assert con.execute("SELECT sum(y) FROM arrow_table").fetchall() == [(30,)]
    assert con.sql("SELECT sum(y) FROM arrow_table").fetchall() == [(30,)]
    assert rows(con, "SELECT sum(x) FROM module_frame") == [(6,)]
    # as in duckdb, the calling frame's names only: rows() has no arrow_table
    with pytest.raises(sqlrec.ProgrammingError, match="Table with name arrow_table does not exist"):
        rows(con, "SELECT sum(y) FROM arrow_table")
    cur = con.cursor()
    assert cur.execute("SELECT count(*) FROM local_frame").fetchall() == [(len(local_frame),)]
    con.execute(f"CREATE MODEL framed FROM local_frame PREDICT movieId USING user_id = 'userId', {FAST}")
    assert info(con, "framed")["n_users"] == "10"
    batch = con.execute("SELECT b.userId, count(*) FROM local_frame a JOIN framed b WHERE a.userId IN (1, 2) "
                        "GROUP BY 1 ORDER BY 1").fetchall()
    assert batch == [(1, 10), (2, 10)]
    with pytest.raises(sqlrec.ProgrammingError, match="Table with name no_such_frame does not exist"):
        con.execute("SELECT * FROM no_such_frame")


def test_a_table_wins_over_a_python_object_of_the_same_name(con):
    ratings = pd.DataFrame({"userId": [1]})  # noqa: F841 - read by name through SQL
    assert con.execute("SELECT count(*) FROM ratings").fetchall() == [(720,)]


def test_polars_frames_are_tables(con):
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"a": [1, 2, 3]})  # noqa: F841
    assert con.execute("SELECT sum(a) FROM frame").fetchall() == [(6,)]


def test_sql_returns_duckdb_relations(trained):
    rel = trained.sql("SELECT movieId FROM ratings WHERE userId = 1 ORDER BY movieId")
    assert isinstance(rel, duckdb.DuckDBPyRelation)
    before = rel.fetchall()
    trained.execute("INSERT INTO ratings VALUES (1, 999, 5.0, 0)")
    assert rel.fetchall() == before + [(999,)], "a plain query's relation is DuckDB's, lazy"
    recs = trained.sql("SELECT * FROM movie_rec WHERE userId = 3")
    assert isinstance(recs, duckdb.DuckDBPyRelation)
    assert recs.fetchall() == rows(trained, "SELECT * FROM movie_rec WHERE userId = 3")
    assert recs.columns == ["userId", "movieId", "score", "rank"]
    assert isinstance(recs.arrow(), pa.RecordBatchReader)  # duckdb 2.x's relation.arrow()
    assert trained.sql("CREATE TABLE copy AS SELECT * FROM ratings") is None
    assert rows(trained, "SELECT count(*) FROM copy") == [(721,)]
    status = trained.sql(f"CREATE MODEL again FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    assert status.fetchall()[0][:2] == ("again", "lightfm")


def test_cursor_arrow_names(trained):
    table = trained.execute("SELECT * FROM movie_rec WHERE userId = 3").arrow()
    assert isinstance(table, pa.Table) and table.num_rows == 10
    reader = trained.execute("SELECT * FROM movie_rec WHERE userId = 3").to_arrow_reader()
    assert isinstance(reader, pa.RecordBatchReader) and reader.read_all().equals(table)
    assert trained.execute("SELECT * FROM movie_rec WHERE userId = 3").to_arrow_table().equals(table)


# --- views over models ---------------------------------------------------------------------------------


def test_a_view_over_a_model_recomputes_at_every_read(trained):
    trained.execute("CREATE VIEW top3 AS SELECT * FROM movie_rec WHERE userId = 1 USING n_recommendations = 3")
    direct = rows(trained, "SELECT * FROM movie_rec WHERE userId = 1 USING n_recommendations = 3")
    assert len(direct) == 3 and rows(trained, "SELECT * FROM top3") == direct
    assert rows(trained, "SELECT count(*), max(rank) FROM top3") == [(3, 3)]
    trained.execute("CREATE VIEW firsts AS SELECT movieId FROM top3 WHERE rank = 1")  # a view over the view
    assert rows(trained, "SELECT * FROM firsts") == [(direct[0][1],)]
    assert trained.sql("SELECT * FROM top3").fetchall() == direct
    trained.execute("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', "
                    "epochs = 5, no_components = 8, random_state = 8")
    assert rows(trained, "SELECT * FROM top3") == rows(trained, "SELECT * FROM movie_rec WHERE userId = 1 "
                                                                "USING n_recommendations = 3"), "read again, not kept"
    trained.execute("CREATE OR REPLACE VIEW top3 AS SELECT * FROM movie_rec WHERE userId = 2 USING n_recommendations = 2")
    assert [r[0] for r in rows(trained, "SELECT * FROM top3")] == [2, 2]
    assert rows(trained, "SELECT count(*) FROM firsts") == [(1,)]
    trained.execute("CREATE OR REPLACE VIEW top3 AS SELECT 1 AS one")  # a plain view again: DuckDB's
    assert rows(trained, "SELECT * FROM top3") == [(1,)]
    trained.execute("DROP VIEW firsts")
    assert rows(trained, "SELECT count(*) FROM duckdb_views() WHERE view_name = 'firsts'") == [(0,)]


def test_views_over_models_in_a_file_database(tmp_path):
    from conftest import file_database

    path = tmp_path / "views.duckdb"
    con = file_database(path, f"CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    con.execute("CREATE VIEW recs AS SELECT b.* FROM ratings a JOIN m b WHERE a.userId IN (3, 4)")
    before = rows(con, "SELECT * FROM recs")
    assert len(before) == 20
    con.close()
    con = sqlrec.connect(str(path))
    assert rows(con, "SELECT * FROM recs") == before
    with pytest.raises(duckdb.Error, match="view recs reads sqlrec model m: query it through sqlrec"):
        con.duckdb.execute("SELECT * FROM recs").fetchall()  # DuckDB alone says why it cannot
    con.execute("DROP MODEL m")
    with pytest.raises(QueryError, match="view 'recs' reads model 'm', which does not exist"):
        con.execute("SELECT * FROM recs")
    con.execute("DROP VIEW recs")
    assert rows(con, "SELECT count(*) FROM duckdb_views() WHERE view_name = 'recs'") == [(0,)]
    con.close()


def test_a_view_in_a_rolled_back_transaction_is_gone(trained):
    trained.execute("BEGIN")
    trained.execute("CREATE VIEW v AS SELECT * FROM movie_rec WHERE userId = 1")
    assert len(rows(trained, "SELECT * FROM v")) == 10
    trained.execute("ROLLBACK")
    with pytest.raises(sqlrec.ProgrammingError, match="Table with name v does not exist"):
        trained.execute("SELECT * FROM v")


def test_a_macro_over_a_model_is_refused_and_leaves_nothing(trained):
    with pytest.raises(QueryError, match="CREATE MACRO: a macro cannot read model 'movie_rec'.*use a view"):
        trained.execute("CREATE MACRO v() AS TABLE SELECT * FROM movie_rec")
    assert rows(trained, "SELECT count(*) FROM duckdb_functions() WHERE function_name = 'v'") == [(0,)]
    assert len(rows(trained, "SELECT * FROM movie_rec WHERE userId = 1")) == 10


@pytest.mark.parametrize("payload, message", [
    ("not json", "its stored query cannot be read"),
    ('{"query": "DROP TABLE ratings", "models": []}', "its stored query is not a SELECT"),
    ('{"query": "SELECT 1"}', "its stored query cannot be read"),
])
def test_a_crafted_view_comment_is_a_clear_error_and_runs_nothing(trained, payload, message):
    from sqlrec.models.cache import VIEW_MARK as MARK

    trained.duckdb.execute("CREATE VIEW crafted AS SELECT 1 AS x")
    trained.duckdb.execute(f"COMMENT ON VIEW crafted IS '{MARK}{payload}'")
    trained.router.forget_catalog()  # written behind sqlrec's back
    with pytest.raises(QueryError, match=f"view 'crafted': {message}"):
        trained.execute("SELECT * FROM crafted")
    assert rows(trained, "SELECT count(*) FROM ratings") == [(720,)]
