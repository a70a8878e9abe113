"""The one door through which sqlrec's own SQL reaches DuckDB.

Every call names where it stands ("CREATE MODEL m: the training query") and every DuckDB error
comes out as the matching sqlrec error with that label first, so a user never sees a raw
``_duckdb`` exception and always sees which statement part, option or column was at fault.
Temporary tables and registered Arrow tables get unique names and are dropped on the way out,
whatever happens in between.

User statements that sqlrec passes through unchanged also run here (``run`` without a label),
so they keep DuckDB's own message.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from .errors import wrap_duckdb
from .sql.quoting import quote_ident

Params = Sequence[Any] | dict[str, Any] | None

_names = itertools.count()


class Session:
    """sqlrec's SQL on one DuckDB connection handle (a connection or one of its cursors)."""

    def __init__(self, duck: duckdb.DuckDBPyConnection):
        self.duck = duck

    # --- statements ---------------------------------------------------------------------

    def run(self, sql: str, params: Params = None, *, where: str | None = None) -> None:
        """Run a statement, leaving its result (if any) pending on the handle."""
        try:
            if params is None:
                self.duck.execute(sql)
            else:
                self.duck.execute(sql, params)
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where) from exc

    def in_transaction(self, where: str) -> bool:
        """Whether the user has a transaction open on this handle. Probed without BEGIN: a BEGIN
        inside a transaction fails, and in DuckDB a failed statement aborts the open transaction
        (the user's uncommitted work would be lost at COMMIT). Two statements outside a
        transaction get two transaction ids; inside one, the same."""
        first = self.one("SELECT txid_current()", where=where)
        return first == self.one("SELECT txid_current()", where=where)

    def rows(self, sql: str, params: Params = None, *, where: str) -> list[tuple]:
        try:
            return self.duck.execute(sql, params).fetchall()
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where) from exc

    def one(self, sql: str, params: Params = None, *, where: str) -> tuple | None:
        try:
            return self.duck.execute(sql, params).fetchone()
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where) from exc

    def arrow(self, sql: str, params: Params = None, *, where: str) -> pa.Table:
        self.finish_pending()
        try:
            return self.duck.sql(sql, params=params).to_arrow_table()
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where) from exc

    def numpy(self, sql: str, params: Params = None, *, where: str) -> dict[str, np.ndarray]:
        try:
            return self.duck.execute(sql, params).fetchnumpy()
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

    def register(self, what: str, table: pa.Table) -> str:
        name = self.unique_name(what)
        self.finish_pending()
        try:
            self.duck.register(name, table)
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, f"handing the {what} relation to DuckDB") from exc
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
        catalog, schema = self.one("SELECT current_database(), current_schema()", where=where)
        self.run(f"USE {quote_ident(database)}", where=f"{where}: database {database!r} is not attached (ATTACH it first)")
        try:
            yield
        finally:
            self.run(f"USE {quote_ident(catalog)}.{quote_ident(schema)}", where=f"{where}: switching back to {catalog!r}")
