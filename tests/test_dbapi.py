"""PEP 249 surface: module globals, connection and cursor methods, exceptions, conveniences."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

import sqlrec
from sqlrec import errors


def test_module_globals():
    assert sqlrec.apilevel == "2.0" and sqlrec.paramstyle == "qmark" and sqlrec.threadsafety in (0, 1, 2, 3)
    for name in ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
                 "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError"):
        assert issubclass(getattr(sqlrec, name), Exception)
    assert issubclass(errors.DataError, errors.DatabaseError) and issubclass(errors.DatabaseError, errors.Error)
    assert issubclass(errors.OptionError, errors.ProgrammingError)
    assert issubclass(errors.TrainingDataError, errors.DataError)
    assert issubclass(errors.ModelNotFoundError, errors.ProgrammingError)


def test_cursor_methods_and_description(trained):
    cur = trained.cursor()
    cur.execute("SELECT * FROM movie_rec WHERE userId = ?", [1])
    assert [d[0] for d in cur.description] == ["userId", "movieId", "score", "rank"]
    assert cur.rowcount == -1
    first = cur.fetchone()
    two = cur.fetchmany(2)
    rest = cur.fetchall()
    assert first[3] == 1 and len(two) == 2 and len(rest) == 7
    assert cur.fetchone() is None
    cur.executemany("INSERT INTO ratings VALUES (?, ?, ?, ?)", [(900, 100, 5.0, 0), (901, 101, 4.0, 0)])
    assert trained.execute("SELECT count(*) FROM ratings WHERE userId >= 900").fetchone() == (2,)
    cur.close()
    with pytest.raises(errors.InterfaceError):
        cur.execute("SELECT 1")


def test_df_and_arrow(trained):
    df = trained.execute("SELECT * FROM movie_rec WHERE userId = 3").df()
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["userId", "movieId", "score", "rank"]
    tbl = trained.execute("SELECT * FROM movie_rec WHERE userId = 3").arrow()
    assert isinstance(tbl, pa.Table) and tbl.num_rows == 10


def test_duckdb_errors_map_to_pep249(con):
    with pytest.raises(errors.ProgrammingError):
        con.execute("SELECT * FROM does_not_exist")
    with pytest.raises(sqlrec.Error):
        con.execute("SELECT CAST('x' AS INTEGER)")


def test_commit_rollback_and_close(con):
    con.execute("BEGIN TRANSACTION")
    con.execute("DELETE FROM ratings")
    con.rollback()
    assert con.execute("SELECT count(*) FROM ratings").fetchone()[0] == 720
    con.commit()  # nothing open: no error
    con.close()
    with pytest.raises(errors.InterfaceError):
        con.execute("SELECT 1")


def test_no_result_fetch_is_an_error(con):
    cur = con.cursor()
    with pytest.raises(errors.ProgrammingError):
        cur.fetchall()


def test_context_manager(tmp_path):
    with sqlrec.connect(str(tmp_path / "x.duckdb")) as c:
        assert c.execute("SELECT 42").fetchone() == (42,)


def test_connect_none_is_an_error_not_a_file_named_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(sqlrec.InterfaceError, match="database must be a file path or ':memory:', got None"):
        sqlrec.connect(None)
    assert list(tmp_path.iterdir()) == []
