"""The router's fast path: plain SQL runs in DuckDB as written, decided by DuckDB's own parser.

Two real connections get the same statements in the same order: one with the fast path (the
default), one with every statement on the full path (Router.fast_path = False: sqlrec's grammar,
plans, commands, as before the fast path). Each step must give the same outcome on both: the
same column names and types and rows, or the same sqlrec error class and message. Each step also
says which path the fast connection takes, so a comparison of the full path with itself cannot
pass for one of the two paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import sqlrec
from sqlrec.exec.router import SQLREC_WORDS
from sqlrec.sql.grammar import ModelGrammar

FAST, FULL = "fast", "full"

SETUP = [
    "CREATE TABLE r AS SELECT u, i FROM range(20) t(u), range(8) s(i) WHERE (u + i) % 3 = 0",
    "CREATE MODEL m FROM r PREDICT i USING user_id = 'u', epochs = 1, random_state = 7",
    "CREATE VIEW over_m AS SELECT i, score FROM m WHERE u = 1",  # a view over a model
    "CREATE TABLE t (id INTEGER, name VARCHAR, metrics DOUBLE)",
]

# (statement, parameters, the path the fast connection takes)
STEPS: list[tuple[str, Any, str]] = [
    ("SELECT 1", None, FAST),
    ("SELECT 42 AS answer, 'x' AS s, 1.5::DOUBLE AS d, DATE '2024-01-02' AS day, [1, 2] AS l", None, FAST),
    ("INSERT INTO t VALUES (1, 'a', 0.5), (2, 'b', NULL)", None, FAST),
    ("SELECT * FROM t ORDER BY id", None, FAST),
    ("SELECT * FROM t WHERE id = ?", [1], FAST),
    ("SELECT $1::INTEGER + $2 AS s", [2, 3], FAST),
    ("SELECT * FROM t WHERE name = $name", {"name": "b"}, FAST),
    ("UPDATE t SET metrics = 1 WHERE id = 2", None, FAST),
    ("DELETE FROM t WHERE id = 99", None, FAST),
    ("  SELECT 1 AS x -- a comment after it\n ;", None, FAST),
    # errors: DuckDB's, as sqlrec error classes with DuckDB's message (LINE context included)
    ("SELECT nope FROM t", None, FAST),
    ("  SELECT *\n  FROM missing ;", None, FAST),
    ("INSERT INTO t VALUES ('x', 'y', 'z')", None, FAST),
    ("SELECT ?", [], FAST),
    ("SELECT 1", [1], FAST),
    ("SELEC 1", None, FULL),  # DuckDB cannot parse it: the full path says why
    ("", None, FULL),
    ("-- only a comment", None, FULL),
    # transactions
    ("BEGIN", None, FAST),
    ("INSERT INTO t VALUES (3, 'c', 0)", None, FAST),
    # DuckDB's parser (asked on the connection's own handle) fails on it, sqlrec's grammar
    # reports the error: the transaction stays open
    ("CREATE MODEL x FROM", None, FULL),
    ("SELECT count(*) FROM t", None, FAST),
    ("ROLLBACK", None, FAST),
    ("SELECT count(*) FROM t", None, FAST),
    ("BEGIN TRANSACTION", None, FAST),
    ("SELECT nope FROM t", None, FAST),
    ("SELECT * FROM t", None, FAST),  # the failed statement aborted the transaction
    ("COMMIT", None, FAST),
    ("SELECT count(*) FROM t", None, FAST),
    # DDL, settings, DuckDB's own SHOW / DESCRIBE / EXPLAIN
    ("CREATE SCHEMA s", None, FAST),
    ("CREATE TABLE s.metrics AS SELECT 1 AS x", None, FAST),  # named like a model attribute
    ("SELECT * FROM s.metrics", None, FAST),
    ("CREATE TABLE metrics (x INTEGER)", None, FAST),
    ("SELECT * FROM metrics", None, FAST),
    ("DESCRIBE t", None, FAST),
    ("SHOW TABLES", None, FAST),
    ("EXPLAIN SELECT 1", None, FAST),
    ("SET threads = 2", None, FAST),
    ("SELECT current_setting('threads') AS threads", None, FAST),
    ("SELECT * FROM t JOIN t AS t2 USING (id) ORDER BY id", None, FAST),
    # schema-qualified names and attached databases
    ("SELECT * FROM main.t ORDER BY id", None, FAST),
    ("SELECT * FROM memory.main.t ORDER BY id", None, FAST),
    ("ATTACH ':memory:' AS other", None, FAST),
    ("CREATE TABLE other.t2 AS SELECT 7 AS x", None, FAST),
    ("SELECT * FROM other.t2", None, FAST),
    ("SELECT * FROM other.main.t2", None, FAST),
    ("DETACH other", None, FAST),
    # scripts: statement by statement, the last result kept
    ("CREATE TABLE s1 (x INTEGER); INSERT INTO s1 VALUES (1), (2); SELECT sum(x) AS total FROM s1", None, FAST),
    ("SELECT 1; SELECT 2", [1], FULL),  # parameters and a script: the full path says what is wrong
    ("DROP TABLE s1", None, FAST),
    # sqlrec has a part: models, model attributes, views over models, sqlrec's statements
    ("SELECT * FROM m WHERE u = 1 ORDER BY i", None, FULL),
    ('SELECT * FROM "M" WHERE u = 1 ORDER BY i', None, FULL),
    ("SELECT * FROM M WHERE u = 1 ORDER BY i", None, FULL),
    ("SELECT * FROM 'm' WHERE u = 1 ORDER BY i", None, FULL),
    ("SELECT * FROM m WHERE u = ? ORDER BY i", [2], FULL),
    ("SELECT * FROM m WHERE u = 1 USING k = 2", None, FULL),
    ("SELECT * FROM t USING k = 2", None, FULL),
    ("SELECT count(*) > 0 AS has_rows FROM m.info", None, FULL),
    ("SELECT * FROM over_m ORDER BY i", None, FULL),
    ("SELECT * FROM main.m", None, FULL),  # DuckDB's error: no table m (the full path passes it on)
    ("WITH m AS (SELECT 1 AS x) SELECT * FROM m", None, FULL),  # a CTE named like the model
    ("SHOW MODELS", None, FULL),
    ("DESCRIBE m", None, FULL),
    ("SELECT * FROM mindsdb.m WHERE u = 1 ORDER BY i", None, FULL),
    ("SELECT * FROM ML.RECOMMEND(MODEL m, (SELECT 1 AS u))", None, FULL),
    ("EXPLAIN SELECT * FROM m WHERE u = 1", None, FULL),
    ("CREATE TEMP TABLE m AS SELECT 5 AS x", None, FULL),  # a temp table shadowing the model
    ("SELECT * FROM m WHERE u = 1 ORDER BY i", None, FULL),
    ("DROP TABLE temp.m", None, FULL),
    ("DROP MODEL m", None, FULL),
    ("SELECT * FROM m", None, FAST),  # no model m any more: DuckDB's own error
    ("SELECT * FROM over_m", None, FULL),  # the view over it is still sqlrec's
]


def outcome(con: sqlrec.Connection, sql: str, params: Any) -> tuple:
    try:
        cur = con.execute(sql, params)
    except sqlrec.Error as exc:
        return ("error", type(exc).__name__, str(exc))
    if cur.description is None:
        return ("no result",)
    return ("rows", [d[:2] for d in cur.description], cur.fetchall())


@pytest.fixture()
def pair(tmp_path: Path):
    fast = sqlrec.connect(str(tmp_path / "fast.duckdb"))
    full = sqlrec.connect(str(tmp_path / "full.duckdb"))
    full.router.fast_path = False
    for con in (fast, full):
        for sql in SETUP:
            con.execute(sql)
    yield fast, full
    fast.close()
    full.close()


def test_plain_statements_give_the_same_results_and_errors_on_both_paths(pair) -> None:
    fast, full = pair
    arrow_rows = pa.table({"v": [1, 2, 3]})  # noqa: F841 - read by name (DuckDB's replacement scan)
    steps = STEPS + [("SELECT sum(v) AS total FROM arrow_rows", None, FAST)]
    for sql, params, path in steps:
        assert fast.router.is_plain(sql, params) == (path == FAST), (sql, path)
        assert not full.router.is_plain(sql, params)
        got, expected = outcome(fast, sql, params), outcome(full, sql, params)
        if path == FULL and got[0] == "rows":  # both ran the full path; training times and dates differ
            got, expected = (got[:2], len(got[2])), (expected[:2], len(expected[2]))
        assert got == expected, sql
    # the comparison saw rows and errors both ways, not only empty results
    kinds = {outcome(fast, sql, params)[0] for sql, params, _ in [("SELECT 1", None, 0), ("SELECT nope", None, 0)]}
    assert kinds == {"rows", "error"}


def test_errors_on_the_fast_path_are_sqlrec_errors(tmp_path: Path) -> None:
    con = sqlrec.connect()
    for sql, expected in [("SELECT nope", sqlrec.ProgrammingError), ("SELECT 1/0::INTEGER + 'x'", sqlrec.Error),
                          ("CREATE TABLE t (x INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (1)",
                           sqlrec.IntegrityError)]:
        assert con.router.is_plain(sql)
        with pytest.raises(expected) as info:
            con.execute(sql)
        assert type(info.value).__module__ == "sqlrec.errors", type(info.value)


def test_read_only_behaves_the_same(tmp_path: Path) -> None:
    path = str(tmp_path / "ro.duckdb")
    with sqlrec.connect(path) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    fast = sqlrec.connect(path, read_only=True)
    full = sqlrec.connect(path, read_only=True)
    full.router.fast_path = False
    for sql in ("SELECT * FROM t", "INSERT INTO t VALUES (2)", "CREATE TABLE u (x INTEGER)",
                "SELECT * FROM t", "CREATE TEMP TABLE tmp AS SELECT 3 AS x", "SELECT * FROM tmp"):
        assert fast.router.is_plain(sql)
        assert outcome(fast, sql, None) == outcome(full, sql, None), sql
    assert outcome(fast, "INSERT INTO t VALUES (2)", None)[1] == "ReadOnlyError"
    fast.close()
    full.close()


def test_a_model_made_on_another_cursor_is_seen(tmp_path: Path) -> None:
    # The names the fast path checks are cached per handle while nothing is written: a model
    # created (and committed) on another cursor must take the text off the fast path at once.
    con = sqlrec.connect(str(tmp_path / "db.duckdb"))
    con.execute("CREATE TABLE r AS SELECT u, i FROM range(20) t(u), range(8) s(i) WHERE (u + i) % 3 = 0")
    assert con.router.is_plain("SELECT * FROM m2 WHERE u = 1")
    with pytest.raises(sqlrec.Error, match="m2"):
        con.execute("SELECT * FROM m2 WHERE u = 1")
    other = con.cursor()
    other.execute("CREATE MODEL m2 FROM r PREDICT i USING user_id = 'u', epochs = 1")
    assert not con.router.is_plain("SELECT * FROM m2 WHERE u = 1")
    assert len(con.execute("SELECT * FROM m2 WHERE u = 1").fetchall()) == 6  # 8 items, 2 seen
    con.close()


def test_interrupt_reaches_a_plain_statement() -> None:
    import threading

    con = sqlrec.connect()
    sql = "SELECT count(*) FROM range(10000000000) a"
    assert con.router.is_plain(sql)
    timer = threading.Timer(0.3, con.interrupt)
    timer.start()
    with pytest.raises(sqlrec.Error):
        con.execute(sql).fetchall()
    timer.join()
    con.close()


def test_every_sqlrec_statement_is_kept_off_the_fast_path() -> None:
    # Each statement sqlrec's grammar knows starts with words that either DuckDB's parser fails
    # on or that the router lists as sqlrec's (DESCRIBE m goes by the model's name).
    for words in ModelGrammar.MODEL_STATEMENT_PARSERS:
        assert words in (("DESCRIBE",), ("DESC",)) or {w.lower() for w in words} & SQLREC_WORDS, words
    con = sqlrec.connect()
    for sql in ("CREATE MODEL x FROM t PREDICT i", "CREATE OR REPLACE MODEL x FROM t", "BUILD MODEL x USING lightfm",
                "DROP MODEL x", "ALTER MODEL x SET VERSION 1", "SHOW MODELS", "RETRAIN x", "FINETUNE x",
                "EVALUATE MODEL x", "EXPORT RECOMMENDATIONS FROM x TO 'f.csv'", "CREATE ML_ENGINE e FROM lightfm",
                "SHOW ML_ENGINES", "PREDICT USING x AS SELECT 1", "SELECT * FROM ML.RECOMMEND(MODEL x)",
                "SELECT ML.PREDICT(1)", "SELECT * FROM mindsdb.x", "SELECT 1 USING k = 2"):
        assert not con.router.is_plain(sql), sql
    con.close()


def test_the_fast_path_fills_the_catalogs_own_cache(tmp_path: Path) -> None:
    # The fast path's check reads the active models once per generation into the cache the
    # catalog reads from: what it stores there is what the catalog itself would read.
    con = sqlrec.connect(str(tmp_path / "db.duckdb"))
    con.execute("CREATE TABLE r AS SELECT u, i FROM range(20) t(u), range(8) s(i) WHERE (u + i) % 3 = 0")
    con.execute("CREATE MODEL Mixed FROM r PREDICT i USING user_id = 'u', epochs = 1")
    con.execute("CREATE TABLE t AS SELECT 1 AS x")  # a write: the cached versions are stale
    assert con.router.is_plain("SELECT * FROM t")  # the check reads them again
    filled = con.router.catalog().actives()
    con.router.forget_catalog()
    assert filled == con.router.catalog().actives() == {"mixed": ("Mixed", 1)}
    assert not con.router.is_plain('SELECT * FROM "MIXED"')
    con.close()


def test_remembered_texts_stay_bounded() -> None:
    # A client inlining values makes a new text per statement: what the router remembers of
    # each stays within MAX_SCRIPTS, and an evicted text still runs (it is read again).
    from sqlrec.exec.router import MAX_SCRIPTS

    con = sqlrec.connect()
    for n in range(MAX_SCRIPTS + 50):
        assert con.execute(f"SELECT {n} AS n").fetchone() == (n,)
    assert len(con.router._scripts) <= MAX_SCRIPTS
    assert con.execute("SELECT 0 AS n").fetchone() == (0,)
    con.close()
