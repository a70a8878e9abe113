"""sqlrec's one read-only rule (sqlrec.sql.classify through sqlrec.api.statement_access): a table of
statements, each with what running it may do, read by the real sqlrec parser and DuckDB's own.

The servers' use of it (HTTP, pgwire) is tested in test_serve.py and test_pgwire.py; the read-only
connection's use of it here, on a real database file with a trained model.
"""

from __future__ import annotations

import duckdb
import pytest

import sqlrec
from conftest import FAST
from sqlrec import errors
from sqlrec.api import READ, TRANSACTION, WRITE, statement_access
from sqlrec.sql.classify import DUCKDB_TYPES

MODEL_QUERY = "SELECT * FROM movie_rec WHERE userId = 1 USING n_recommendations = 3"

READS = [
    "SELECT 1",
    "SELECT * FROM ratings WHERE userId = ? AND rating > $2",
    "FROM ratings",
    "TABLE ratings",
    "VALUES (1, 2)",
    "SELECT 1 UNION SELECT 2",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "SHOW TABLES",
    "SHOW ratings",
    "DESCRIBE ratings",
    "DESCRIBE SELECT 1",
    "SUMMARIZE ratings",
    "PIVOT ratings ON rating IN (4, 5) USING count(*)",
    "UNPIVOT ratings ON rating",
    "/* a comment */ -- and another\n((SELECT 1))",
    "EXPLAIN SELECT 1",
    "EXPLAIN ANALYZE SELECT count(*) FROM ratings",
    "EXPLAIN (FORMAT json) SELECT 1",
    "EXPLAIN ANALYZE (SELECT 1) UNION (SELECT 2)",
    "explain /* ANALYZE SET threads = 1 */ analyze select 1",
    # sqlrec's statements that read
    MODEL_QUERY,
    "SELECT m.movieId FROM movie_rec AS m WHERE m.userId = 1 USING n_recommendations = 3",
    "SELECT * FROM ML.RECOMMEND(MODEL movie_rec, (SELECT 1 AS userId))",
    "EXPLAIN ANALYZE " + MODEL_QUERY,
    "SHOW MODELS",
    "DESCRIBE MODEL movie_rec",
    "DESCRIBE movie_rec",
    "SELECT * FROM movie_rec.info",
    "EVALUATE MODEL movie_rec",
    "EVALUATE MODEL movie_rec FROM (SELECT * FROM ratings) USING k = 5",
    "SHOW ML_ENGINES",
    "CREATE ML_ENGINE lightfm FROM lightfm",
    "SELECT 1; SHOW MODELS; " + MODEL_QUERY,
]

TRANSACTIONS = [
    "BEGIN", "BEGIN TRANSACTION", "START TRANSACTION", "COMMIT", "END", "ROLLBACK", "ABORT", "BEGIN; COMMIT",
]

# (statement, the part the refusal names)
WRITES = [
    # EXPLAIN ANALYZE runs what it explains; EXPLAIN alone does not, and is refused all the same
    ("EXPLAIN ANALYZE SET memory_limit = '64MB'", "SET under EXPLAIN"),
    ("EXPLAIN ANALYZE SET lock_configuration = true", "SET under EXPLAIN"),
    ("EXPLAIN ANALYZE PRAGMA threads = 1", "under EXPLAIN"),
    ("EXPLAIN ANALYZE LOAD httpfs", "LOAD under EXPLAIN"),
    ("EXPLAIN ANALYZE INSERT INTO ratings VALUES (1, 2, 3, 4)", "INSERT under EXPLAIN"),
    ("EXPLAIN SET threads = 1", "SET under EXPLAIN"),
    ("EXPLAIN (ANALYZE) SET threads = 1", "SET under EXPLAIN"),
    ("EXPLAIN /* x */ ANALYZE -- y\n SET threads = 1", "SET under EXPLAIN"),
    # DuckDB's comments nest: the SELECT sits in a comment, SET is what runs
    ("EXPLAIN ANALYZE /* /* */ SELECT 1 -- */ SET threads = 1", "SET under EXPLAIN"),
    ("EXPLAIN ANALYZE INSERT INTO t " + MODEL_QUERY, "INSERT under EXPLAIN"),
    ("EXPLAIN " * 40 + "SELECT 1", "EXPLAIN"),
    # a CTE before the statement that writes
    ("WITH x AS (SELECT 1 AS a) INSERT INTO ratings SELECT a, a, a, a FROM x", "INSERT"),
    ("WITH x AS (SELECT 1 AS a) UPDATE ratings SET rating = 0 WHERE userId IN (SELECT a FROM x)", "UPDATE"),
    ("WITH x AS (SELECT 1 AS a) DELETE FROM ratings WHERE userId IN (SELECT a FROM x)", "DELETE"),
    # only this connection would see them, but a server's clients share one: refused too
    ("CREATE TEMP TABLE scratch AS SELECT 1 AS a", "CREATE"),
    ("CREATE TEMPORARY VIEW v AS SELECT 1 AS a", "CREATE"),
    ("SET threads = 1", "SET"),
    ("SET GLOBAL memory_limit = '64MB'", "SET"),
    ("RESET threads", "SET"),
    ("USE memory", "SET"),
    ("SET VARIABLE v = 1", "SET"),
    ("PRAGMA threads = 1", "SET"),
    ("PRAGMA show_tables", "PRAGMA"),
    ("CALL pragma_version()", "CALL"),
    ("CHECKPOINT", "CALL"),
    ("ATTACH ':memory:' AS other", "ATTACH"),
    ("DETACH other", "DETACH"),
    ("LOAD httpfs", "LOAD"),
    ("INSTALL httpfs", "LOAD"),
    ("FORCE INSTALL httpfs", "LOAD"),
    ("UPDATE EXTENSIONS", "UNKNOWN"),  # a statement type this duckdb module has no name for
    ("CREATE SECRET s (TYPE s3)", "CREATE"),
    ("PREPARE p AS SELECT 1", "PREPARE"),
    ("EXECUTE p", "EXECUTE"),
    ("DEALLOCATE p", "DROP"),
    # plain writes
    ("CREATE TABLE t AS SELECT 1 AS a", "CREATE"),
    ("INSERT OR REPLACE INTO ratings VALUES (1, 2, 3, 4)", "INSERT"),
    ("TRUNCATE ratings", "DELETE"),
    ("MERGE INTO ratings USING ratings AS r ON ratings.userId = r.userId WHEN MATCHED THEN DELETE", "MERGE_INTO"),
    ("COMMENT ON TABLE ratings IS 'x'", "ALTER"),
    ("DROP TABLE ratings", "DROP"),
    ("COPY ratings TO 'out.csv'", "COPY"),
    ("VACUUM", "VACUUM"),
    ("PIVOT ratings ON rating", "MULTI"),  # without an IN list DuckDB runs it as several statements
    # scripts: the strongest statement decides, wherever it stands
    ("SELECT 1; INSERT INTO ratings VALUES (1, 2, 3, 4)", "INSERT"),
    ("BEGIN; DROP TABLE ratings; COMMIT", "DROP"),
    ("/* a comment */ -- and another\nCREATE TABLE t2 AS SELECT 1", "CREATE"),
    ("(SELECT 1); SET threads = 1", "SET"),
    # sqlrec's statements that write (the database, or files)
    (f"CREATE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}", "CREATE MODEL"),
    ("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId", "CREATE MODEL"),
    ("CREATE MODEL bq OPTIONS (model_type = 'matrix_factorization', user_col = 'userId', item_col = 'movieId', "
     "rating_col = 'rating') AS SELECT * FROM ratings", "CREATE MODEL"),
    ("DROP MODEL movie_rec", "DROP MODEL"),
    ("ALTER MODEL movie_rec SET VERSION 1", "ALTER MODEL"),
    ("RETRAIN movie_rec", "RETRAIN"),
    ("FINETUNE movie_rec FROM ratings", "FINETUNE"),
    ("EXPORT RECOMMENDATIONS movie_rec TO 'recs/' (FORMAT parquet)", "EXPORT RECOMMENDATIONS"),
    ("CREATE TABLE recs AS " + MODEL_QUERY, "CREATE"),
    ("INSERT INTO t " + MODEL_QUERY, "INSERT"),
    ("EVALUATE MODEL movie_rec FROM (SELECT * FROM ratings); DROP MODEL movie_rec", "DROP MODEL"),
    # a read's own query counts: the grammar takes a WITH here, DuckDB reads an INSERT
    ("EVALUATE MODEL movie_rec FROM (WITH x AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM x)", "INSERT"),
]


@pytest.mark.parametrize("sql", READS)
def test_reads(sql):
    assert statement_access(sql).access == READ


@pytest.mark.parametrize("sql", TRANSACTIONS)
def test_transaction_control(sql):
    assert statement_access(sql).access == TRANSACTION


@pytest.mark.parametrize("sql, what", WRITES)
def test_writes(sql, what):
    access = statement_access(sql)
    assert access.access == WRITE
    assert what in access.what


def test_a_statement_that_does_not_parse_raises_its_syntax_error():
    for sql in ("SELEC 1", "SELECT 1; SELEC 2", "SELECT 'unterminated"):
        with pytest.raises(errors.ProgrammingError, match="(?i)syntax error|unterminated") as info:
            statement_access(sql)
        assert type(info.value).__module__ == "sqlrec.errors"  # sqlrec's class, labelled: not DuckDB's own


def test_every_duckdb_statement_type_has_a_decision():
    # a duckdb upgrade that adds a type makes this fail, so the table says what it may do
    # (until then the type is refused: anything the table does not name is a write)
    names = {t.name for t in duckdb.StatementType.__members__.values()}
    assert names - set(DUCKDB_TYPES) == {"EXPLAIN"}  # EXPLAIN is as the statement it explains
    assert {DUCKDB_TYPES["SELECT"], DUCKDB_TYPES["TRANSACTION"]} == {READ, TRANSACTION}
    assert {access for name, access in DUCKDB_TYPES.items() if name not in ("SELECT", "TRANSACTION")} == {WRITE}


# --- a read-only connection -----------------------------------------------------------------------


def test_a_read_only_connection_refuses_model_writes_before_they_run(path, tmp_path):
    con = sqlrec.connect(str(path), read_only=True)
    try:
        before = con.execute("SELECT name, version FROM sqlrec.models").fetchall()
        for sql, word in [(f"CREATE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}", "CREATE"),
                          ("RETRAIN movie_rec", "RETRAIN"), ("DROP MODEL movie_rec", "DROP"),
                          (f"EXPORT RECOMMENDATIONS movie_rec TO '{tmp_path / 'recs'}'", "EXPORT")]:
            with pytest.raises(errors.ProgrammingError, match=f"^{word}: the database is open read-only"):
                con.execute(sql)
        assert not (tmp_path / "recs").exists()
        assert con.execute("SELECT name, version FROM sqlrec.models").fetchall() == before
        # model statements that read run
        assert [r[0] for r in con.execute("SHOW MODELS").fetchall()] == ["movie_rec"]
        assert len(con.execute(MODEL_QUERY).fetchall()) == 3
        # what only this connection sees stays the caller's choice (DuckDB refuses writes to the file)
        con.execute("SET threads = 1")
        con.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS a")
        with pytest.raises(sqlrec.Error, match="read-only"):
            con.execute("WITH x AS (SELECT 1 AS a) INSERT INTO ratings SELECT a, a, a, a FROM x")
    finally:
        con.close()
