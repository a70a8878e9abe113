"""sqlrec: recommendations in plain SQL, on DuckDB and LightFM.

    import sqlrec
    con = sqlrec.connect("shop.duckdb")
    con.execute("CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id='userId'")
    con.execute("SELECT * FROM movie_rec WHERE userId = 100").df()
"""

from __future__ import annotations

import sys
import threading
import types
from typing import TYPE_CHECKING, Any

from sqlrec.errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)

if TYPE_CHECKING:
    from sqlrec.api import Connection, Cursor, connect
    from sqlrec.store.session import Relation

__version__ = "0.1.0"

# connect, Connection and Cursor are loaded on first use (PEP 562): they pull in DuckDB, sqlglot,
# numpy, scipy and every engine, which `import sqlrec` for the errors or __version__ (the
# `sqlrec --version` command, a DB-API tool probing paramstyle) should not pay for.
_API = ("connect", "Connection", "Cursor")


def __getattr__(name: str) -> Any:
    if name == "sql":  # the subpackage, callable as duckdb.sql is (see _SQLPackage); light to load
        import importlib

        return importlib.import_module("sqlrec.sql")
    if name in _API:
        from sqlrec import api

        value = getattr(api, name)
        globals()[name] = value  # found directly from now on
        return value
    raise AttributeError(f"module 'sqlrec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API) | {"sql"})

# --- duckdb's module-level habits: sqlrec.sql(...), sqlrec.execute(...) on a default connection ---

_default: "Connection | None" = None
_default_lock = threading.Lock()


def default_connection() -> "Connection":
    """The in-memory connection that module-level sqlrec.sql() and sqlrec.execute() use, created
    on first use (as duckdb.default_connection())."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            from sqlrec.api import connect as _connect

            _default = _connect()
        return _default


def execute(query: str, parameters: Any = None, *, connection: "Connection | None" = None) -> "Cursor":
    """Run a statement or script on `connection` (default: default_connection()), as
    duckdb.execute: the cursor it returns holds the last result (fetchall, df...)."""
    return (connection or default_connection()).execute(query, parameters)


def _sql(query: str, parameters: Any = None, *, connection: "Connection | None" = None) -> "Relation | None":
    """`sqlrec.sql(query)`: Connection.sql on `connection` (default: default_connection()), as duckdb.sql."""
    return (connection or default_connection()).sql(query, parameters)


class _SQLPackage(types.ModuleType):
    """The sqlrec.sql subpackage (the grammar), callable as duckdb.sql is: `sqlrec.sql("SELECT 1")`.
    The name is taken by the subpackage, which sqlrec loads on every start, so a function of that
    name here would be replaced by the module as soon as it loads; the module answers the call."""

    def __call__(self, query: str, parameters: Any = None, *,
                 connection: "Connection | None" = None) -> "Relation | None":
        return _sql(query, parameters, connection=connection)


class _Package(types.ModuleType):
    """This package: whenever the import system binds the sqlrec.sql subpackage here, it becomes
    an _SQLPackage (its contents untouched)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "sql" and type(value) is types.ModuleType:
            value.__class__ = _SQLPackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
if "sqlrec.sql" in sys.modules:  # already loaded (not by `import sqlrec`, but a reload may see it)
    sys.modules["sqlrec.sql"].__class__ = _SQLPackage

# PEP 249 module globals
apilevel = "2.0"
threadsafety = 1  # threads may share the module, not connections (as duckdb)
paramstyle = "qmark"


def load_ipython_extension(ipython: Any) -> None:
    from sqlrec.frontend.magic import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from sqlrec.frontend.magic import unload_ipython_extension as _unload

    _unload(ipython)


__all__ = [
    "connect", "Connection", "Cursor", "sql", "execute", "default_connection", "apilevel", "threadsafety", "paramstyle",
    "Error", "Warning", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
    "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError",
]
