"""What the shell's completion knows: the database (tables, their columns, models, functions),
refreshed after every statement, and sqlrec's fixed vocabulary (USING options, engines,
model attributes), read from its public home, sqlrec.api.vocabulary, and nowhere else.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlrec.api.vocabulary import (  # noqa: F401 - completion reads these from here
    SYSTEM, create_options, database_rows, engine_names, model_attributes, query_options, recommendation_kinds,
)
from sqlrec.errors import Error

# Catalog tables and sqlrec's scratch relations are not the user's tables. DuckDB's functions by
# their full name (SYSTEM; LIKE too is a function name): a file's macros may carry the short ones.
_TABLE_COLUMNS = (
    f"SELECT database_name, schema_name, table_name, column_name FROM {SYSTEM}.duckdb_columns() "
    "WHERE NOT internal AND schema_name NOT IN ('sqlrec', 'information_schema', 'pg_catalog') "
    f"AND NOT {SYSTEM}.starts_with(table_name, '__sqlrec') "
    "ORDER BY database_name, schema_name, table_name, column_index")
_FUNCTIONS = (
    f"SELECT DISTINCT function_name, function_type = 'table' FROM {SYSTEM}.duckdb_functions() "
    "WHERE function_type IN ('scalar', 'aggregate', 'table') "
    f"AND NOT {SYSTEM}.contains(function_name, '__') "
    f"AND {SYSTEM}.regexp_full_match(function_name, '^[a-z_][a-z0-9_]*$')")


# --- the fixed vocabulary ----------------------------------------------------------------------


def model_columns(summary: Any) -> list[str]:
    """Every column a query of the model may return, whatever its recommender_type."""
    columns: list[str] = []
    for kind in recommendation_kinds():
        columns.extend(c for c in summary.columns(kind) if c not in columns)
    return columns


# --- the database ------------------------------------------------------------------------------


class Relation(NamedTuple):
    name: str  # as it is written in SQL from the current database and schema
    columns: list[str]


class Metadata:
    """What completion knows about the database: tables, their columns, models, functions."""

    def __init__(self) -> None:
        self.tables: dict[str, Relation] = {}  # lower name -> relation
        self.models: dict[str, Relation] = {}  # lower name -> (name, result columns)
        self.functions: list[str] = []
        self.table_functions: list[str] = []  # the ones that may stand after FROM / JOIN

    def refresh(self, con: Any) -> None:
        """Re-read tables and models; a failure (e.g. an aborted transaction) keeps what we had."""
        tables = _read_tables(con)
        if tables is not None:
            self.tables = tables
        models = _read_models(con)
        if models is not None:
            self.models = models
        if not self.functions:  # DuckDB's functions change only with an extension: read once
            self._read_functions(con)

    def forget_functions(self) -> None:
        """Another database may have other extensions loaded: read its functions again."""
        self.functions, self.table_functions = [], []

    def columns_of(self, name: str) -> list[str]:
        key = name.strip('"').lower()
        if key in self.tables:
            return self.tables[key].columns
        if key in self.models:
            return self.models[key].columns
        return []

    def _read_functions(self, con: Any) -> None:
        try:
            rows = database_rows(con, _FUNCTIONS, where="listing functions for completion")
        except Error:
            return
        self.functions = sorted({name for name, _ in rows})
        self.table_functions = sorted({name for name, table in rows if table})


def _read_tables(con: Any) -> dict[str, Relation] | None:
    where = "listing tables for completion"
    try:
        rows = database_rows(con, _TABLE_COLUMNS, where=where)
        current = tuple(database_rows(con, f"SELECT {SYSTEM}.current_database(), {SYSTEM}.current_schema()",
                                     where=where)[0])
    except Error:  # e.g. an aborted transaction: the caller keeps what it had
        return None
    tables: dict[str, Relation] = {}
    for db, schema, table, column in rows:
        name = _table_name(db, schema, table, current)
        tables.setdefault(name.lower(), Relation(name, []))[1].append(column)
    return tables


def _table_name(db: str, schema: str, table: str, current: tuple[str, str]) -> str:
    """The shortest name that reaches the table from the current database and schema."""
    if (db, schema) == current or schema == "temp" or db == "temp":
        return table
    if db == current[0]:
        return f"{schema}.{table}"
    return f"{db}.{table}" if schema == "main" else f"{db}.{schema}.{table}"


def _read_models(con: Any) -> dict[str, Relation] | None:
    try:
        summaries = con.models()
    except Exception:
        return None
    return {s.name.lower(): Relation(s.name, model_columns(s)) for s in summaries}
