"""CREATE TABLE AS / INSERT over every key read the model as a stream of batches (sqlrec.exec.streaming):
the same rows as the materialised query, references DuckDB reads twice still whole, and a
cancelled stream leaves no table behind."""

from __future__ import annotations

import threading
import time

import pytest

import sqlrec
from sqlrec import errors
from sqlrec.exec import streaming
from conftest import FAST

ORDER = "ORDER BY userId, rank"


def same(got, want):
    """Same ids and ranks; scores to float32 rounding (a GEMM of 7 rows rounds unlike one of 60)."""
    assert [(r[0], r[1], r[3]) for r in got] == [(r[0], r[1], r[3]) for r in want]
    assert all(abs(g[2] - w[2]) <= 1e-5 * max(1.0, abs(w[2])) for g, w in zip(got, want))


@pytest.fixture
def con(ratings, monkeypatch):
    monkeypatch.setattr(streaming, "BATCH_KEYS", 7)  # 60 users: 9 batches, the last one short
    con = sqlrec.connect()
    con.register("ratings_df", ratings)
    con.execute("CREATE TABLE ratings AS SELECT * FROM ratings_df")
    con.execute(f"CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    yield con
    con.close()


def test_create_table_as_and_insert_give_the_rows_of_the_query(con):
    want = con.execute(f"SELECT * FROM m {ORDER}").fetchall()
    assert len(want) == 600
    con.execute("CREATE TABLE recs AS SELECT * FROM m")
    same(con.execute(f"SELECT * FROM recs {ORDER}").fetchall(), want)
    assert [r[:2] for r in con.execute("DESCRIBE recs").fetchall()] == [
        ("userId", "BIGINT"), ("movieId", "BIGINT"), ("score", "FLOAT"), ("rank", "INTEGER")]
    con.execute("CREATE TABLE top3 AS SELECT * FROM recs LIMIT 0")
    con.execute("INSERT INTO top3 SELECT * FROM m USING n_recommendations = 3")
    same(con.execute(f"SELECT * FROM top3 {ORDER}").fetchall(), [r for r in want if r[3] <= 3])
    con.execute("CREATE TABLE item_recs AS SELECT * FROM m USING recommender_type = 'item_item'")
    assert con.execute("SELECT count(*) FROM item_recs").fetchone() == (
        con.execute("SELECT count(*) FROM m USING recommender_type = 'item_item'").fetchone())


def test_a_streamed_target_filter_scores_the_asked_items_like_the_query(con):
    # Every user who has not seen the movie gets its row, as the plain query gives (not only the
    # users whose top 10 happened to hold it).
    top = con.execute("SELECT movieId FROM m").fetchall()
    movie = min(set(top), key=top.count)[0]  # in few users' top 10
    want = con.execute(f"SELECT * FROM m WHERE movieId = {movie} {ORDER}").fetchall()
    assert len(want) > top.count((movie,))
    con.execute(f"CREATE TABLE one_movie AS SELECT * FROM m WHERE movieId = {movie}")
    got = con.execute(f"SELECT * FROM one_movie {ORDER}").fetchall()
    assert [r[:2] for r in got] == [r[:2] for r in want]


def test_a_model_read_twice_in_one_statement_is_read_whole_both_times(con):
    con.execute("CREATE TABLE cte AS WITH r AS (SELECT * FROM m) "
                "SELECT count(*) AS n FROM r a JOIN r b USING (userId, rank)")
    assert con.execute("SELECT n FROM cte").fetchone() == (600,)
    # The recursive step scans the model once per iteration: a stream would be gone after the first.
    con.execute("CREATE TABLE walk AS WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT DISTINCT r.i + 1 "
                "FROM r JOIN m ON m.rank = r.i + 1 WHERE r.i < 4) SELECT max(i) AS n FROM r")
    assert con.execute("SELECT n FROM walk").fetchone() == (4,)
    con.execute("CREATE TABLE pair AS SELECT count(*) AS n FROM m a JOIN m b USING (userId, rank)")
    assert con.execute("SELECT n FROM pair").fetchone() == (600,)
    con.execute("CREATE TABLE scalar AS SELECT userId, (SELECT count(*) FROM m) AS n FROM m WHERE rank = 1")
    assert con.execute("SELECT count(*), min(n), max(n) FROM scalar").fetchone() == (60, 600, 600)


def test_inside_a_transaction_the_rows_are_the_same_and_rollback_removes_them(con):
    want = con.execute(f"SELECT * FROM m {ORDER}").fetchall()
    con.execute("BEGIN")
    con.execute("CREATE TABLE recs AS SELECT * FROM m")
    same(con.execute(f"SELECT * FROM recs {ORDER}").fetchall(), want)
    con.execute("ROLLBACK")
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'recs'").fetchone() == (0,)


@pytest.mark.slow
def test_cancelling_mid_stream_leaves_no_table(monkeypatch):
    monkeypatch.setattr(streaming, "BATCH_KEYS", 2_000)
    con = sqlrec.connect()
    con.execute("CREATE TABLE big AS SELECT i % 200000 AS u, (i * 7919) % 5000 AS it FROM range(600000) t(i)")
    con.execute("CREATE TABLE kept AS SELECT 1 AS x")
    con.execute("CREATE MODEL pop FROM big PREDICT it USING user_id = 'u', engine = 'popularity'")
    started = time.perf_counter()
    con.execute("CREATE TABLE probe AS SELECT * FROM pop USING n_recommendations = 50")
    full = time.perf_counter() - started  # the whole stream, to interrupt it half way
    threading.Timer(full / 2, con.interrupt).start()
    with pytest.raises(errors.Cancelled):
        con.execute("CREATE TABLE recs AS SELECT * FROM pop USING n_recommendations = 50")
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'recs'").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM probe").fetchone() == (200_000 * 50,)
    assert con.execute("SELECT * FROM kept").fetchall() == [(1,)]
    assert con.execute("SELECT count(*) FROM pop WHERE u = 3").fetchone() == (10,)  # still serving


def test_long_lists_are_streamed_in_fewer_keys_per_batch(con, monkeypatch):
    """A batch holds at most BATCH_ROWS rows: at 30 a user and 60 rows a batch, 2 users a batch."""
    monkeypatch.setattr(streaming, "BATCH_ROWS", 60)
    assert streaming.batch_keys(30) == 2 and streaming.batch_keys(10) == 6 and streaming.batch_keys(10**6) == 1
    sizes = []
    real = streaming.RecsStream.__init__

    def spy(self, tables):
        def counted():
            for t in tables:
                sizes.append(t.num_rows)
                yield t
        real(self, counted())
    monkeypatch.setattr(streaming.RecsStream, "__init__", spy)
    want = con.execute(f"SELECT * FROM m {ORDER} USING n_recommendations = 30").fetchall()
    con.execute("CREATE TABLE recs AS SELECT * FROM m USING n_recommendations = 30")
    same(con.execute(f"SELECT * FROM recs {ORDER}").fetchall(), want)
    assert len(sizes) == 30 and max(sizes) <= 60
