"""The Python surface: PEP 249 Connection and Cursor, and the recommend API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlrec.api.connection import Connection, Cursor

if TYPE_CHECKING:
    from sqlrec.api.recommend import Recommendations
    from sqlrec.sql.classify import READ, TRANSACTION, WRITE, Access

# Loaded on first use (PEP 562): the recommend API needs numpy and the query path, the read-only
# rule sqlrec's grammar (sqlglot); connect() and plain SQL need neither.
_LAZY = {"Recommendations": "sqlrec.api.recommend", "READ": "sqlrec.sql.classify", "TRANSACTION": "sqlrec.sql.classify",
         "WRITE": "sqlrec.sql.classify", "Access": "sqlrec.sql.classify"}


def __getattr__(name: str) -> Any:
    if name == "Recommendations":
        from sqlrec.api.recommend import Recommendations as value
    elif name in _LAZY:
        from sqlrec.sql import classify

        value = getattr(classify, name)
    else:
        raise AttributeError(f"module 'sqlrec.api' has no attribute {name!r}")
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def connect(database: str = ":memory:", read_only: bool = False, config: dict[str, Any] | None = None, *,
            safe: bool = False, trust_stored_sql: bool = False) -> Connection:
    """Open a DuckDB database file (created if missing) or an in-memory database.

    safe: no file or network access from SQL (DuckDB's enable_external_access = false): read_csv,
    COPY ... TO, ATTACH and extension installs fail; the database file itself works as usual.
    trust_stored_sql: let models read from the file re-run the feature-source SQL stored in them
    (cold_start = 'features' for unknown ids); without it only models this connection trained do.
    """
    return Connection(database, read_only=read_only, config=config, safe=safe, trust_stored_sql=trust_stored_sql)


def statement_access(sql: str) -> Access:
    """What running `sql` (a statement or a script) may do, by sqlrec's one read-only rule
    (sqlrec.sql.classify): ``.access`` is 'read', 'transaction' (BEGIN / COMMIT / ROLLBACK only)
    or 'write' (anything else: changes, settings, ATTACH / LOAD, unknown statements), ``.what``
    names the statement that decides it. Nothing runs; text that cannot parse raises its error."""
    from sqlrec.sql.classify import script_access
    from sqlrec.store.statements import DuckDBParser

    return script_access(sql, DuckDBParser())


__all__ = ["Access", "Connection", "Cursor", "READ", "Recommendations", "TRANSACTION", "WRITE", "connect",
           "statement_access"]
