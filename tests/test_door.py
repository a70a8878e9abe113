"""sqlrec.store.session is the one door to DuckDB, and DuckDB's errors come out as sqlrec errors
of DuckDB's own classes.

Nothing outside sqlrec.store imports duckdb (errors.py excepted: sqlrec's error classes subclass
DuckDB's); what the side doors did (interrupt, rollback, register, the catalog's transactions)
still works through the Session; and callers choose by class, never by message text: a write
conflict is 409 over HTTP, a read-only refusal 403.
"""

from __future__ import annotations

import ast
import inspect
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import sqlrec
from sqlrec import errors
from sqlrec.serve.pgproto import sqlstate
from sqlrec.serve.service import status_for
from sqlrec.store.session import Session
from conftest import FAST

PACKAGE = Path(sqlrec.__file__).parent
# errors.py imports duckdb for one reason: its classes are bases of sqlrec's (`except duckdb.X` works).
MAY_IMPORT_DUCKDB = {"errors.py"}


def _duckdb_imports(path: Path) -> list[int]:
    """Lines of `path` importing duckdb, anywhere (function bodies and TYPE_CHECKING blocks too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(n == "duckdb" or n.startswith("duckdb.") or n == "_duckdb" for n in names):
            found.append(node.lineno)
    return found


def test_nothing_outside_the_store_imports_duckdb():
    offenders = {str(p.relative_to(PACKAGE)): lines for p in sorted(PACKAGE.rglob("*.py"))
                 if (lines := _duckdb_imports(p)) and p.parts[-2] != "store"
                 and str(p.relative_to(PACKAGE)) not in MAY_IMPORT_DUCKDB}
    assert offenders == {}
    assert _duckdb_imports(PACKAGE / "store" / "session.py")  # the check sees an import where there is one


# --- the side doors, closed: the same behaviour through the Session ---------------------------


def test_interrupt_still_cancels_a_running_duckdb_statement(con):
    cur = con.cursor()
    slow = "SELECT count(*) FROM range(3000000) a, range(3000000) b WHERE a.range + b.range = -1"
    stop = threading.Timer(0.5, cur.interrupt)
    backstop = threading.Timer(30, cur.connection.duckdb.interrupt)  # a broken interrupt fails, not hangs
    stop.start()
    backstop.start()
    started = time.monotonic()
    try:
        with pytest.raises(errors.Cancelled, match="statement cancelled") as info:
            cur.execute(slow)
    finally:
        stop.cancel()
        backstop.cancel()
    assert time.monotonic() - started < 20
    assert isinstance(info.value, errors.InterruptException) and isinstance(info.value, duckdb.InterruptException)
    assert cur.execute("SELECT 1").fetchone() == (1,)


def test_rollback_after_a_failed_model_statement_in_the_users_transaction(con):
    con.execute("BEGIN TRANSACTION")
    con.execute("DELETE FROM ratings WHERE userId < 10")
    with pytest.raises(errors.CatalogException, match="training query failed"):
        con.execute(f"CREATE MODEL m FROM (SELECT * FROM no_such_table) PREDICT movieId USING user_id = 'userId', {FAST}")
    con.rollback()
    assert con.execute("SELECT count(*) FROM ratings").fetchone() == (720,)
    con.rollback()  # none open now: nothing happens, as in duckdb
    assert not con.session.in_transaction("test")


def test_a_failed_save_is_rolled_back_and_leaves_no_transaction_open(trained):
    # Another cursor's open transaction holds the model's catalog row: the save's own transaction
    # meets a write-write conflict, is rolled back, and the connection goes on at version 1.
    holder = trained.cursor()
    holder.execute("BEGIN TRANSACTION")
    holder.execute("UPDATE sqlrec.models SET active = false WHERE key = 'movie_rec'")
    with pytest.raises(errors.TransactionException, match="the previous version is intact"):
        trained.execute(f"CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    assert not trained.session.in_transaction("test")
    holder.execute("ROLLBACK")
    assert trained.execute("SELECT version FROM sqlrec.models WHERE active").fetchall() == [(1,)]
    assert len(trained.execute("SELECT * FROM movie_rec WHERE userId = 1").fetchall()) == 10


def test_the_transaction_rule_joins_the_users_or_opens_its_own(con):
    session = con.session
    with pytest.raises(errors.BinderException):
        with session.transaction("test") as joined:
            assert joined is False and session.in_transaction("test")
            session.run("DELETE FROM ratings", where="test")
            session.run("SELECT nope FROM ratings", where="test")
    assert not session.in_transaction("test")  # ours: rolled back, closed
    assert con.execute("SELECT count(*) FROM ratings").fetchone() == (720,)
    with session.transaction("test") as joined:
        session.run("DELETE FROM ratings WHERE userId = 1", where="test")
    assert joined is False and con.execute("SELECT count(*) FROM ratings").fetchone() == (708,)  # committed
    con.execute("BEGIN TRANSACTION")
    with session.transaction("test") as joined:
        session.run("DELETE FROM ratings", where="test")
    assert joined is True and session.in_transaction("test")  # the user's: left open for them
    con.rollback()
    assert con.execute("SELECT count(*) FROM ratings").fetchone() == (708,)


def test_register_goes_through_the_session_and_names_the_call(con):
    frame = pd.DataFrame({"x": [1, 2]})
    con.execute("SELECT 1")  # a pending result: DuckDB refuses to register while one is open
    con.register("frame_view", frame)
    assert con.execute("SELECT sum(x) FROM frame_view").fetchone() == (3,)
    with pytest.raises(errors.Error, match="register 'bad'"):
        con.register("bad", object())
    con.unregister("frame_view")
    with pytest.raises(errors.CatalogException):
        con.execute("SELECT * FROM frame_view")


def test_the_front_ends_get_the_session_from_the_connection(con):
    assert isinstance(con.session, Session) and con.session.duck is con.duckdb
    assert con.session.rows("SELECT count(*) FROM ratings", where="test") == [(720,)]


# --- DuckDB's classes, as sqlrec errors -------------------------------------------------------

DUCKDB_CLASSES = sorted((c for _, c in inspect.getmembers(duckdb, inspect.isclass)
                         if issubclass(c, duckdb.Error) and c.__name__.endswith("Exception")), key=lambda c: c.__name__)
PEP249 = ("InterfaceError", "DatabaseError", "DataError", "OperationalError", "IntegrityError", "InternalError",
          "ProgrammingError", "NotSupportedError")


@pytest.mark.parametrize("duck_cls", DUCKDB_CLASSES, ids=lambda c: c.__name__)
def test_every_duckdb_class_has_a_sqlrec_twin_under_the_same_pep249_base(duck_cls):
    wrapped = errors.wrap_duckdb(duck_cls("some message"), "where")
    ours = getattr(errors, duck_cls.__name__)
    assert type(wrapped) is ours and isinstance(wrapped, duck_cls) and isinstance(wrapped, errors.Error)
    base = next(c.__name__ for c in duck_cls.__mro__ if c.__name__ in PEP249)
    assert isinstance(wrapped, getattr(errors, base))
    if duck_cls is not duckdb.InterruptException:
        assert str(wrapped) == "where: some message"


STATEMENTS = [
    ("SELECT nope FROM ratings", errors.BinderException, errors.ProgrammingError, 'column "nope" not found'),
    ("SELECT * FROM no_such_table", errors.CatalogException, errors.ProgrammingError, "no_such_table does not exist"),
    ("CREATE TABLE ratings (x INT)", errors.AlreadyExistsError, errors.ProgrammingError, "already exists"),
    ("SELEC 1", errors.ParserException, errors.ProgrammingError, "syntax error"),
    ("SELECT 'x'::INTEGER", errors.ConversionException, errors.DataError, "Could not convert string 'x'"),
    ("INSERT INTO keyed VALUES (1)", errors.ConstraintException, errors.IntegrityError, "Duplicate key"),
    ("COMMIT", errors.TransactionException, errors.OperationalError, "no transaction is active"),
    ("SELECT * FROM read_csv('/no/such/file.csv')", errors.IOException, errors.OperationalError, "No files found"),
]


@pytest.mark.parametrize("sql, cls, base, words", STATEMENTS, ids=[s[1].__name__ for s in STATEMENTS])
def test_a_duckdb_error_is_its_sqlrec_class_its_pep249_base_and_duckdbs_class(con, sql, cls, base, words):
    con.execute("CREATE TABLE keyed (k INTEGER PRIMARY KEY); INSERT INTO keyed VALUES (1)")
    with pytest.raises(cls, match=words) as info:
        con.execute(sql)
    duck_cls = next(c for c in cls.__mro__ if c.__module__ == duckdb.Error.__module__ and c.__name__.endswith("Exception"))
    assert isinstance(info.value, base) and isinstance(info.value, duck_cls)
    with pytest.raises(duck_cls):  # code written for duckdb catches it too
        con.execute(sql)


def test_a_read_only_refusal_and_a_forbidden_file_are_their_classes(tmp_path):
    path = str(tmp_path / "ro.duckdb")
    sqlrec.connect(path).execute("CREATE TABLE t (a INTEGER)").connection.close()
    with sqlrec.connect(path, read_only=True, safe=True) as con:
        with pytest.raises(errors.ReadOnlyError, match="read-only mode") as refused:
            con.execute("WITH s AS (SELECT 2 AS a) INSERT INTO t SELECT a FROM s")
        with pytest.raises(errors.PermissionException) as forbidden:
            con.execute("SELECT * FROM read_csv('/etc/passwd')")
    assert isinstance(refused.value, errors.InvalidInputException) and isinstance(refused.value, errors.ProgrammingError)
    assert (status_for(refused.value), status_for(forbidden.value)) == (403, 403)
    assert (sqlstate(refused.value), sqlstate(forbidden.value)) == ("25006", "25006")


# --- serve chooses by class -------------------------------------------------------------------

httpx = pytest.importorskip("httpx")


def _database(tmp_path) -> str:
    path = str(tmp_path / "served.duckdb")
    sqlrec.connect(path).execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER); "
                                 "INSERT INTO t VALUES (1, 10); CREATE SEQUENCE s").connection.close()
    return path


def test_a_write_conflict_is_409_over_http(tmp_path):
    pytest.importorskip("fastapi")
    from sqlrec.serve import Settings
    from sqlrec.serve.server import Server

    with Server(_database(tmp_path), port=0, settings=Settings(write=True)) as srv:
        holder = srv.service.con.cursor()  # another transaction holding the row
        holder.execute("BEGIN TRANSACTION")
        holder.execute("UPDATE t SET v = 11 WHERE k = 1")
        r = httpx.post(srv.url + "/sql", json={"sql": "UPDATE t SET v = 12 WHERE k = 1"}, timeout=30)
        assert r.status_code == 409, r.text
        assert r.json()["error"].startswith("TransactionContext Error")  # DuckDB's message as it was
        holder.execute("ROLLBACK")
        holder.close()
        assert httpx.post(srv.url + "/sql", json={"sql": "UPDATE t SET v = 12 WHERE k = 1"}, timeout=30).status_code == 200


def test_duckdbs_read_only_refusal_is_403_over_http(tmp_path):
    pytest.importorskip("fastapi")
    from sqlrec.serve.server import Server

    with Server(_database(tmp_path), port=0) as srv:
        # a query the server's read-only rule lets through (a SELECT) that writes all the same
        # (nextval advances a sequence): DuckDB's read-only file refuses it, and its class says 403
        r = httpx.post(srv.url + "/sql", json={"sql": "SELECT nextval('s')"}, timeout=30)
        assert r.status_code == 403, r.text
        assert "read-only mode" in r.json()["error"]
