"""The one door through which sqlrec's own SQL reaches DuckDB.

Every call names where it stands ("CREATE MODEL m: the training query") and every DuckDB error
comes out as the matching sqlrec error with that label first, so a user never sees a raw
``_duckdb`` exception and always sees which statement part, option or column was at fault.
Temporary tables and registered Arrow tables get unique names and are dropped on the way out,
whatever happens in between.

User statements that sqlrec passes through unchanged also run here (``run`` without a label),
so they keep DuckDB's own message; so do opening a database, cursors, transactions, interrupts
and reading a statement's result: nothing outside sqlrec.store calls DuckDB (tests/test_door.py).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import duckdb

from sqlrec.errors import Error, wrap_duckdb
from sqlrec.sql.quoting import quote_ident

if TYPE_CHECKING:  # in annotations only: plain SQL run through a session loads neither
    import numpy as np
    import pyarrow as pa

Params = Sequence[Any] | dict[str, Any] | None
# DuckDB's connection handle and relation (Connection.sql's result, as duckdb's), named here so
# that their users outside sqlrec.store need not import duckdb.
Handle = duckdb.DuckDBPyConnection
Relation = duckdb.DuckDBPyRelation

_names = itertools.count()

# Where DuckDB's built-in functions live. sqlrec's own SQL (its catalog, its views) names them
# with this prefix, `system.main.count_star()`: an unqualified name resolves to the database's
# main schema first, so a macro a database file carries (main.starts_with, a table macro
# main.duckdb_tables, even count(*), ->> and || through count_star, "->>" and "||") would run in
# their place. The three-part name cannot be redirected: a schema named "system" in the file
# makes the two-part `system.fn` ambiguous, never this.
SYSTEM = "system.main"

# The Python namespace (globals, locals) of the user's call into sqlrec.api.connection, while it runs.
# DuckDB reads a DataFrame or Arrow table named in SQL ("replacement scan") from the Python frame
# that calls it, and sqlrec's own frames stand between the user and DuckDB: calls are made from
# a frame that has the user's names (see _duck_call).
PYTHON_SCOPE: ContextVar[tuple[dict[str, Any], dict[str, Any]] | None] = ContextVar("sqlrec_python_scope",
                                                                                   default=None)
_CALL = compile("__sqlrec_call__(*__sqlrec_args__, **__sqlrec_kwargs__)", "<sqlrec: the caller's scope>", "eval")


def _duck_call(fn: Callable[..., Any], *args: Any, _objects: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """fn(*args, **kwargs), called from a frame whose locals and globals are the user's, so that
    DuckDB finds the user's Python objects by name exactly as when they call duckdb directly
    (its own lookup rules: current frame's locals, then globals). `_objects` (Arrow tables of
    sqlrec's) are visible by name too, beside the user's."""
    scope = PYTHON_SCOPE.get()
    if scope is None and not _objects:
        return fn(*args, **kwargs)
    user_globals, user_locals = scope if scope is not None else ({}, {})
    frame_locals = dict(user_locals)
    frame_locals.update(_objects or {})
    frame_locals.update(__sqlrec_call__=fn, __sqlrec_args__=args, __sqlrec_kwargs__=kwargs)
    return eval(_CALL, user_globals, frame_locals)  # noqa: S307 - fixed code, no user text


class Session:
    """sqlrec's SQL on one DuckDB connection handle (a connection or one of its cursors)."""

    def __init__(self, duck: Handle):
        self.duck = duck  # the handle; outside sqlrec.store only its identity is used (a cache key)

    @classmethod
    def open(cls, database: str, read_only: bool, config: dict[str, Any]) -> "Session":
        """A new DuckDB connection to `database` (a file or ':memory:')."""
        try:
            return cls(duckdb.connect(database, read_only=read_only, config=config))
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, f"cannot open database {database!r}") from exc

    def cursor(self) -> "Session":
        """A new handle on the same database, with its own transaction."""
        try:
            return Session(self.duck.cursor())
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, "opening a cursor") from exc

    def close(self) -> None:
        try:
            self.duck.close()
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, "closing the connection") from exc

    def interrupt(self) -> None:
        """Stop the statement running on this handle now (from another thread); none running: nothing."""
        try:
            self.duck.interrupt()
        except duckdb.Error:
            pass  # a handle closed meanwhile has nothing left to stop

    # --- transactions ---------------------------------------------------------------------

    def commit(self) -> None:
        """Commit the open transaction; none open (autocommit): nothing."""
        try:
            self.duck.commit()
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, "COMMIT") from exc

    def rollback(self) -> None:
        """Roll back the open transaction; none open (autocommit): nothing."""
        self.finish_pending()
        try:
            self.duck.rollback()
        except duckdb.TransactionException:
            pass  # no transaction open
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, "ROLLBACK") from exc

    @contextmanager
    def transaction(self, where: str) -> Iterator[bool]:
        """The body in one transaction: the user's when they have one open (yields True: their
        ROLLBACK undoes the work, their COMMIT keeps it, and it is not ended here), else one of our
        own (yields False), committed after the body or rolled back when the body fails."""
        if self.in_transaction(where):
            yield True
            return
        self.run("BEGIN TRANSACTION", where=where)
        try:
            yield False
        except BaseException:
            with suppress(Error):  # the body's error is the one to report
                self.rollback()
            raise
        self.run("COMMIT", where=where)

    # --- the pending result (what a DB-API cursor reads) -------------------------------------

    @property
    def description(self) -> list[tuple] | None:
        return self.duck.description

    def fetchone(self) -> tuple | None:
        return self._read(self.duck.fetchone)

    def fetchmany(self, size: int) -> list[tuple]:
        return self._read(self.duck.fetchmany, size)

    def fetchall(self) -> list[tuple]:
        return self._read(self.duck.fetchall)

    def fetchdf(self) -> Any:
        return self._read(self.duck.fetchdf)

    def fetchnumpy(self) -> dict[str, np.ndarray]:
        return self._read(self.duck.fetchnumpy)

    def to_arrow_table(self) -> pa.Table:
        return self._read(self.duck.to_arrow_table)

    def to_arrow_reader(self, batch_size: int) -> pa.RecordBatchReader:
        return self._read(self.duck.to_arrow_reader, batch_size)

    @staticmethod
    def _read(fetch: Callable[..., Any], *args: Any) -> Any:
        try:
            return fetch(*args)
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, "reading the result") from exc

    # --- statements ---------------------------------------------------------------------

    def run(self, sql: str, params: Params = None, *, where: str | None = None,
            objects: dict[str, Any] | None = None) -> None:
        """Run a statement, leaving its result (if any) pending on the handle. `objects`: Arrow
        tables the statement reads by name (DuckDB's replacement scan)."""
        try:
            if params is None:
                _duck_call(self.duck.execute, sql, _objects=objects)
            else:
                _duck_call(self.duck.execute, sql, params, _objects=objects)
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where) from exc

    def in_transaction(self, where: str) -> bool:
        """Whether the user has a transaction open on this handle. Probed without BEGIN: a BEGIN
        inside a transaction fails, and in DuckDB a failed statement aborts the open transaction
        (the user's uncommitted work would be lost at COMMIT). Two statements outside a
        transaction get two transaction ids; inside one, the same."""
        first = self.one(f"SELECT {SYSTEM}.txid_current()", where=where)
        return first == self.one(f"SELECT {SYSTEM}.txid_current()", where=where)

    def rows(self, sql: str, params: Params = None, *, where: str) -> list[tuple]:
        try:
            return _duck_call(self.duck.execute, sql, params).fetchall()
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where) from exc

    def one(self, sql: str, params: Params = None, *, where: str) -> tuple | None:
        try:
            return _duck_call(self.duck.execute, sql, params).fetchone()
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where) from exc

    def arrow(self, sql: str, params: Params = None, *, where: str) -> pa.Table:
        self.finish_pending()
        try:
            return _duck_call(self.duck.sql, sql, params=params).to_arrow_table()
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where) from exc

    def numpy(self, sql: str, params: Params = None, *, where: str) -> dict[str, np.ndarray]:
        try:
            return _duck_call(self.duck.execute, sql, params).fetchnumpy()
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where) from exc

    def many(self, sql: str, rows: Sequence[Sequence[Any]], *, where: str) -> None:
        try:
            self.duck.executemany(sql, rows)
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where) from exc

    def columns(self, sql: str, *, where: str, database: str | None = None) -> dict[str, str]:
        """Column name -> DuckDB type of a query, without running it."""
        with self.in_database(database, where):
            return {row[0]: row[1] for row in self.rows(f"DESCRIBE {sql}", where=where)}

    def relation(self, sql: str, params: Params = None, *, where: str | None = None) -> Relation:
        """DuckDB's own relation for a plain query (lazy, as duckdb.sql returns it)."""
        self.finish_pending()
        try:
            return _duck_call(self.duck.sql, sql, params=params)
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where) from exc

    def from_arrow(self, table: pa.Table) -> Relation:
        """A relation over rows sqlrec computed."""
        self.finish_pending()
        try:
            return self.duck.from_arrow(table)
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, "handing the result to DuckDB") from exc

    # DuckDB's relation constructors a user calls on a connection (Connection.table, read_csv...)
    READERS = frozenset({"table", "read_csv", "read_parquet", "from_df"})

    def reader(self, method: str, *args: Any, where: str, **kwargs: Any) -> Relation:
        """DuckDB's own relation from one of READERS, called as duckdb's connection method of that
        name (same arguments, same result); its errors are sqlrec's, labelled with `where`."""
        if method not in self.READERS:
            raise ValueError(f"not a DuckDB relation constructor sqlrec offers: {method!r}")
        self.finish_pending()
        try:
            return _duck_call(getattr(self.duck, method), *args, **kwargs)
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where) from exc

    def finish_pending(self) -> None:
        """Drop an unfinished result: DuckDB >= 2.0 refuses (un)register and new relations while
        one is pending."""
        if hasattr(self.duck, "abort"):
            try:
                self.duck.abort()
            except duckdb.Error:
                pass

    # --- scoped objects -------------------------------------------------------------------

    @staticmethod
    def unique_name(what: str) -> str:
        return f"__sqlrec_{what}_{uuid.uuid4().hex[:8]}_{next(_names)}"

    @contextmanager
    def temp_table(self, what: str, sql: str, params: Params = None, *, where: str,
                   database: str | None = None) -> Iterator[str]:
        """A temp table holding a query's rows (run in `database` when given), dropped on exit."""
        name = self.unique_name(what)
        try:
            with self.in_database(database, where):
                self.run(f"CREATE TEMP TABLE {name} AS {sql}", params, where=where)
            yield name
        finally:
            try:
                self.duck.execute(f"DROP TABLE IF EXISTS temp.main.{name}")
            except duckdb.Error:
                pass

    @contextmanager
    def registered(self, what: str, table: pa.Table) -> Iterator[str]:
        """An Arrow table visible to SQL under a unique name, unregistered on exit."""
        name = self.register(what, table)
        try:
            yield name
        finally:
            self.unregister(name)

    def register(self, what: str, table: Any, name: str | None = None, *, where: str | None = None) -> str:
        """`table` (Arrow, or a user's DataFrame) visible to SQL under a unique name, or under
        `name` (replacing what it named)."""
        name = name or self.unique_name(what)
        self.finish_pending()
        try:
            self.duck.register(name, table)
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where or f"handing the {what} relation to DuckDB") from exc
        return name

    def unregister(self, name: str) -> None:
        self.finish_pending()
        try:
            self.duck.unregister(name)
        except duckdb.Error:
            pass

    @contextmanager
    def in_database(self, database: str | None, where: str) -> Iterator[None]:
        """Run the body with `database` (an ATTACHed one) as the default catalog, then switch back."""
        if database is None:
            yield
            return
        catalog, schema = self.one(f"SELECT {SYSTEM}.current_database(), {SYSTEM}.current_schema()", where=where)
        self.run(f"USE {quote_ident(database)}", where=f"{where}: database {database!r} is not attached (ATTACH it first)")
        try:
            yield
        finally:
            self.run(f"USE {quote_ident(catalog)}.{quote_ident(schema)}", where=f"{where}: switching back to {catalog!r}")
