"""sqlrec: recommendations in plain SQL, on DuckDB and LightFM.

    import sqlrec
    con = sqlrec.connect("shop.duckdb")
    con.execute("CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id='userId'")
    con.execute("SELECT * FROM movie_rec WHERE userId = 100").df()
"""

from __future__ import annotations

from typing import Any

from sqlrec.api.connection import Connection, Cursor
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

__version__ = "0.1.0"

# PEP 249 module globals
apilevel = "2.0"
threadsafety = 1  # threads may share the module, not connections (as duckdb)
paramstyle = "qmark"


def connect(database: str = ":memory:", read_only: bool = False, config: dict[str, Any] | None = None, *,
            safe: bool = False, trust_stored_sql: bool = False) -> Connection:
    """Open a DuckDB database file (created if missing) or an in-memory database.

    safe: no file or network access from SQL (DuckDB's enable_external_access = false): read_csv,
    COPY ... TO, ATTACH and extension installs fail; the database file itself works as usual.
    trust_stored_sql: let models read from the file re-run the feature-source SQL stored in them
    (cold_start = 'features' for unknown ids); without it only models this connection trained do.
    """
    return Connection(database, read_only=read_only, config=config, safe=safe, trust_stored_sql=trust_stored_sql)


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
