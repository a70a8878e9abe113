"""duckdb's Python habits work on a sqlrec connection as they do on duckdb's own.

Each test runs the same call on a plain duckdb connection and on a sqlrec connection over the
same data (real DuckDB, real files, a real trained model) and compares: the rows, the result's
type (a duckdb.DuckDBPyRelation where duckdb returns one) and the error class, which for sqlrec
is the sqlrec error twin of DuckDB's (so `except duckdb.CatalogException` catches both).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import sqlrec
from sqlrec import errors

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pair(ratings):
    """(duckdb connection, sqlrec connection), each with the same `t` table."""
    duck, ours = duckdb.connect(), sqlrec.connect()
    for c in (duck, ours):
        c.execute("CREATE TABLE t (a INTEGER, b VARCHAR)")
        c.execute("INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z')")
    yield duck, ours
    duck.close()
    ours.close()


def test_fetch_from_the_connection_after_execute(pair):
    for_both = [(c.execute("SELECT * FROM t ORDER BY a"), c) for c in pair]
    for _, c in for_both:
        assert c.description[0][0] == "a"
    (_, duck), (_, ours) = for_both
    assert ours.fetchone() == duck.fetchone() == (1, "x")
    assert ours.fetchmany(1) == duck.fetchmany(1) == [(2, "y")]
    assert ours.fetchall() == duck.fetchall() == [(3, "z")]
    for c in pair:
        c.execute("SELECT * FROM t ORDER BY a")
    pd.testing.assert_frame_equal(pair[1].df(), pair[0].df())
    for c in pair:
        c.execute("SELECT * FROM t ORDER BY a")
    assert pair[1].to_arrow_table().equals(pair[0].to_arrow_table())
    for c in pair:
        c.execute("SELECT a FROM t ORDER BY a")
    assert list(pair[1].fetchnumpy()["a"]) == list(pair[0].fetchnumpy()["a"])


def test_executemany_keeps_the_last_result(pair):
    got = [c.executemany("SELECT a * ? FROM t WHERE a = ?", [[10, 1], [10, 2]]).fetchall() for c in pair]
    assert got[0] == got[1] == [(20,)]
    for c in pair:
        c.executemany("INSERT INTO t VALUES (?, ?)", [(4, "w"), (5, "v")])
    assert [c.execute("SELECT count(*) FROM t").fetchall() for c in pair] == [[(5,)], [(5,)]]
    with pytest.raises(errors.ProgrammingError, match="sequence of parameter lists"):
        pair[1].executemany("SELECT ?", "abc")


def test_table_is_a_relation_as_in_duckdb(pair):
    duck, ours = pair
    rel = ours.table("t")
    assert isinstance(rel, duckdb.DuckDBPyRelation)
    assert rel.order("a").fetchall() == duck.table("t").order("a").fetchall()
    assert rel.columns == duck.table("t").columns
    with pytest.raises(duckdb.CatalogException):
        duck.table("nope")
    with pytest.raises(errors.CatalogException, match="table 'nope'.*nope does not exist"):
        ours.table("nope")


def test_a_model_reads_as_a_table(trained):
    rel = trained.table("movie_rec")
    assert isinstance(rel, duckdb.DuckDBPyRelation)
    # the same rows as the query a table's name stands for
    assert sorted(rel.fetchall()) == sorted(trained.execute("SELECT * FROM movie_rec").fetchall())
    assert rel.columns == [d[0] for d in trained.execute("SELECT * FROM movie_rec LIMIT 0").description]
    # a relation like any other: DuckDB filters it
    assert {r[0] for r in rel.filter("userId = 3").fetchall()} == {3}


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_read_files_as_duckdb_does(pair, tmp_path, kind):
    duck, ours = pair
    file = tmp_path / f"t.{kind}"
    duck.execute(f"COPY t TO '{file}'" + (" (FORMAT parquet)" if kind == "parquet" else " (HEADER)"))
    read = f"read_{kind}"
    rel = getattr(ours, read)(str(file))
    assert isinstance(rel, duckdb.DuckDBPyRelation)
    assert rel.order("a").fetchall() == getattr(duck, read)(str(file)).order("a").fetchall()
    if kind == "csv":  # duckdb's options go through as they are
        assert (ours.read_csv(str(file), header=False).fetchall()
                == duck.read_csv(str(file), header=False).fetchall())
    missing = str(tmp_path / f"missing.{kind}")
    with pytest.raises(duckdb.IOException):
        getattr(duck, read)(missing)
    with pytest.raises(errors.IOException, match=f"{read} .*missing"):
        getattr(ours, read)(missing)


def test_safe_connections_read_no_files(tmp_path):
    file = tmp_path / "t.csv"
    file.write_text("a\n1\n")
    with sqlrec.connect(safe=True) as con, pytest.raises(errors.Error, match="read_csv"):
        con.read_csv(str(file)).fetchall()


def test_from_df(pair):
    df = pd.DataFrame({"a": [3, 1], "b": ["p", "q"]})
    duck, ours = pair
    rel = ours.from_df(df)
    assert isinstance(rel, duckdb.DuckDBPyRelation)
    assert rel.fetchall() == duck.from_df(df).fetchall() == [(3, "p"), (1, "q")]
    # a relation of the connection: it joins its tables
    assert rel.join(ours.table("t"), "a").order("a").fetchall() == [(1, "q", "x"), (3, "p", "z")]


def test_pl_needs_polars_and_says_how_to_get_it(pair):
    # polars is not installed here (it is no dependency of sqlrec): duckdb's relations raise
    # ModuleNotFoundError, and so do sqlrec's results, naming the command that fixes it
    duck, ours = pair
    with pytest.raises(ModuleNotFoundError):
        duck.sql("SELECT 1").pl()
    with pytest.raises(ModuleNotFoundError, match="pip install polars"):
        ours.execute("SELECT 1").pl()
    with pytest.raises(ModuleNotFoundError, match="pip install polars"):
        ours.pl()
    with pytest.raises(ModuleNotFoundError):
        ours.sql("SELECT 1").pl()  # DuckDB's own relation


def test_module_level_sql_and_execute_use_one_default_connection():
    assert isinstance(sqlrec.sql("SELECT 1"), duckdb.DuckDBPyRelation)
    assert sqlrec.sql("SELECT 1 AS one").fetchall() == duckdb.sql("SELECT 1 AS one").fetchall()
    assert sqlrec.execute("SELECT ?::INTEGER + 1", [41]).fetchall() == duckdb.execute("SELECT ?::INTEGER + 1", [41]).fetchall()
    sqlrec.execute("CREATE OR REPLACE TABLE habits_default AS SELECT 7 AS n")
    assert sqlrec.sql("SELECT n FROM habits_default").fetchall() == [(7,)]  # the same connection
    assert sqlrec.default_connection() is sqlrec.default_connection()
    assert sqlrec.default_connection().database == ":memory:"
    # the caller's DataFrames by name, as duckdb.sql finds them
    frame = pd.DataFrame({"v": [1, 2, 3]})  # noqa: F841 - read by name in the SQL
    assert sqlrec.sql("SELECT sum(v) FROM frame").fetchall() == duckdb.sql("SELECT sum(v) FROM frame").fetchall()
    # connection= as duckdb's
    with sqlrec.connect() as other:
        other.execute("CREATE TABLE only_here AS SELECT 1 AS x")
        assert sqlrec.sql("SELECT x FROM only_here", connection=other).fetchall() == [(1,)]
    with pytest.raises(errors.CatalogException):
        sqlrec.sql("SELECT x FROM only_here")
    # the subpackage stays a package: its names are reachable as before
    from sqlrec.sql import quote_ident
    assert sqlrec.sql.quote_ident is quote_ident


def test_module_level_sql_loads_nothing_on_import():
    # sqlrec.sql() works in a fresh interpreter, and `import sqlrec` alone creates no connection
    code = ("import sys, sqlrec; assert 'sqlrec.api' not in sys.modules and sqlrec._default is None; "
            "print(sqlrec.sql('SELECT 40 + 2').fetchall())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[(42,)]"
