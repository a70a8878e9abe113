"""sqlrec: recommendations in plain SQL, on DuckDB and LightFM.

    import sqlrec
    con = sqlrec.connect("shop.duckdb")
    con.execute("CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id='userId'")
    con.execute("SELECT * FROM movie_rec WHERE userId = 100").df()
"""

from __future__ import annotations

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

__version__ = "0.1.0"

# connect, Connection and Cursor are loaded on first use (PEP 562): they pull in DuckDB, sqlglot,
# numpy, scipy and every engine, which `import sqlrec` for the errors or __version__ (the
# `sqlrec --version` command, a DB-API tool probing paramstyle) should not pay for.
_API = ("connect", "Connection", "Cursor")


def __getattr__(name: str) -> Any:
    if name in _API:
        from sqlrec import api

        value = getattr(api, name)
        globals()[name] = value  # found directly from now on
        return value
    raise AttributeError(f"module 'sqlrec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))

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
    "connect", "Connection", "Cursor", "apilevel", "threadsafety", "paramstyle",
    "Error", "Warning", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
    "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError",
]
