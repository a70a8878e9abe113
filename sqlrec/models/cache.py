"""What a connection keeps between statements (sqlrec.models.catalog reads through it): loaded models,
and per cursor which versions are active, good while this process has written nothing.

Also the one check of sqlrec's catalog tables (`check_catalog`): a database file may be crafted, so
before sqlrec reads them they must be base tables of the shape sqlrec writes, and nothing in them
may compute (defaults, generated columns, CHECK constraints; DuckDB allows no side effects in an
index key): otherwise reading or
writing them would run SQL the file carries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlrec.errors import CorruptModelError
from sqlrec.store.session import SYSTEM

if TYPE_CHECKING:  # annotations only: the router keeps a cache before any model statement loads models
    from sqlrec.models.model import Model
    from sqlrec.store.session import Session

# The schema of sqlrec's tables in the database file (sqlrec.models.catalog keeps its models there).
SCHEMA = "sqlrec"
# The comment that marks a view over models (sqlrec.exec.views writes it and reads it back; the
# router's fast path reads it to tell such views from the user's own).
VIEW_MARK = "sqlrec view over models: "

# Saves and drops per database file, by every connection of this process: a connection's cached
# list of active versions is good while this count has not moved.
_WRITES: dict[str, int] = {}

# The columns of sqlrec's tables, in order, as duckdb_columns() types them. `uid` (a UUID per
# stored version) came later: files written before it lack it and keep working.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "models": (("key", "VARCHAR"), ("name", "VARCHAR"), ("version", "INTEGER"), ("active", "BOOLEAN"),
               ("engine", "VARCHAR"), ("created_at", "TIMESTAMP"), ("train_seconds", "DOUBLE"),
               ("options", "JSON"), ("params", "JSON"), ("info", "JSON"), ("metrics", "JSON"), ("uid", "UUID")),
    "arrays": (("key", "VARCHAR"), ("version", "INTEGER"), ("name", "VARCHAR"), ("dtype", "VARCHAR"),
               ("shape", "BIGINT[]"), ("data", "BLOB")),
    "ids": (("key", "VARCHAR"), ("version", "INTEGER"), ("kind", "VARCHAR"), ("idx", "INTEGER"), ("id", "VARCHAR")),
}
OPTIONAL = {("models", "uid")}  # may be missing (older files); only as the last column

# What DuckDB's catalog says about schema sqlrec of the current database, in one query that
# calls only system.main's functions (duckdb_tables() unqualified may be the file's macro).
_CATALOG_SQL = (  # duckdb_columns() lists views' columns too; duckdb_tables() would cost 3x the time
    f"SELECT 'view', view_name, NULL, NULL, NULL, NULL, NULL FROM {SYSTEM}.duckdb_views() "
    f"WHERE schema_name = $1 AND database_name = {SYSTEM}.current_database() "
    f"UNION ALL SELECT 'column', table_name, column_index, column_name, data_type, column_default, is_generated "
    f"FROM {SYSTEM}.duckdb_columns() WHERE schema_name = $1 AND database_name = {SYSTEM}.current_database()")
_CHECKS_SQL = (
    f"SELECT table_name FROM {SYSTEM}.duckdb_constraints() WHERE constraint_type = 'CHECK' AND schema_name = $1 "
    f"AND database_name = {SYSTEM}.current_database()")


def check_catalog(session: Session, where: str, writing: bool = False) -> set[str] | None:
    """The optional columns sqlrec.models has (None when the file has no sqlrec.models), after checking
    that each of sqlrec's tables the file holds is a base table of the expected shape. A planted
    view, a changed or extra column, a default, a generated column or (when `writing`)
    a CHECK constraint is a CorruptModelError naming it; nothing of it has run. Views in the
    schema other than these names (sqlrec.metrics) are only run when a user reads them."""
    # Sorted here, not by ORDER BY: a third of the query's time. Views first: a view is refused
    # as one, whatever its columns.
    rows = sorted(session.rows(_CATALOG_SQL, [SCHEMA], where=where), key=lambda r: (r[0] != "view", str(r[1]), r[2]))
    bad = f"{where}: the database file's {SCHEMA}.{{}} {{}}; sqlrec wrote no such thing and ran none of it (a damaged or crafted file)"
    columns: dict[str, list[tuple]] = {}
    for kind, table, _, column, type_, default, generated in ((r[0], str(r[1]).lower(), *r[2:]) for r in rows):
        if table not in TABLES:
            continue
        if kind == "view":
            raise CorruptModelError(bad.format(table, "is a view, not sqlrec's table"))
        columns.setdefault(table, []).append((str(column).lower(), str(type_), default, generated))
    if writing:  # a CHECK runs its expression on every insert; reading never runs it
        for (table,) in session.rows(_CHECKS_SQL, [SCHEMA], where=where):
            if str(table).lower() in TABLES:
                raise CorruptModelError(bad.format(str(table).lower(), "has a CHECK constraint"))
    optional: set[str] = set()
    for table, got in columns.items():
        for column, type_, default, generated in got:
            if generated:
                raise CorruptModelError(bad.format(table, f"has a generated column {column!r}"))
            if default is not None:
                raise CorruptModelError(bad.format(table, f"column {column!r} has a default"))
        expected = list(TABLES[table])
        shape = [(c, t) for c, t, _, _ in got]
        if shape == expected[:-1] and (table, expected[-1][0]) in OPTIONAL:
            expected = expected[:-1]
        elif (table, expected[-1][0]) in OPTIONAL:
            optional.add(expected[-1][0])
        if shape != expected:
            want = ", ".join(f"{c} {t}" for c, t in expected)
            have = ", ".join(f"{c} {t}" for c, t in shape)
            raise CorruptModelError(bad.format(table, f"has columns ({have}), not ({want})"))
    return optional if "models" in columns else None


def identity(key: str, version: int, created_at: Any, uid: Any) -> str:
    """What identifies one stored version for good: its uid, or in files written before uid
    existed a stable hash of key, version and created_at. Version numbers are reused (DROP and
    CREATE again, a rolled-back save, a RETRAIN on another connection); the microsecond time a
    save stamps is not, so either way a cached model of a version the file no longer holds is
    never taken for the one it holds now."""
    if uid is not None:
        return str(uid)
    return "h:" + hashlib.sha256(f"{key}\0{version}\0{created_at!r}".encode()).hexdigest()[:32]


@dataclass
class Versions:
    """One read of sqlrec.models: active versions and the identity of every version."""

    actives: dict[str, tuple[str, int]]
    ids: dict[tuple[str, int], str]
    columns: set[str]  # optional columns sqlrec.models has


@dataclass
class CatalogCache:
    """What a connection keeps between statements: loaded models (shared by its cursors), and,
    per cursor, which versions are active.

    A cursor's active versions are read from the file once and kept while no save, drop or
    other write has happened on any connection of this process to the same file (`_WRITES`);
    the router counts every statement that is not a read as a write. So a warm model query asks
    DuckDB nothing about models, and a cursor never sees versions another cursor's open
    transaction wrote: each cursor reads them in its own transaction.
    """

    database: str  # the file, or a key unique to one in-memory database
    # (key, version, identity): a version number alone is reused (see `identity`)
    models: dict[tuple[str, int, str], Model] = field(default_factory=dict)
    actives: dict[int, tuple[int, Versions]] = field(default_factory=dict)  # per handle: generation, versions
    views: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # sqlrec.exec.views, same rule

    def current(self, handle: int, store: dict | None = None) -> Any:
        seen, actives = (self.actives if store is None else store).get(handle, (-1, None))
        return actives if seen == _WRITES.get(self.database, 0) else None

    def remember(self, handle: int, actives: Any, store: dict | None = None) -> None:
        (self.actives if store is None else store)[handle] = (_WRITES.get(self.database, 0), actives)

    def versions(self, session: Session) -> Versions:
        """The stored versions as `session` sees them: read from the file once per generation,
        after check_catalog (the catalog and the router's fast path both ask here)."""
        handle = id(session.duck)
        found = self.current(handle)
        if found is None:
            where = "reading the model catalog"
            columns = check_catalog(session, where)
            found = Versions({}, {}, columns or set())
            if columns is not None:
                uid = "uid" if "uid" in columns else "NULL"
                for key, name, version, active, created_at, uid_ in session.rows(
                        f"SELECT key, name, version, active, created_at, {uid} FROM {SCHEMA}.models", where=where):
                    found.ids[(key, version)] = identity(key, version, created_at, uid_)
                    if active:
                        found.actives[key] = (name, version)
            self.remember(handle, found)
        return found

    def active_versions(self, session: Session) -> dict[str, tuple[str, int]]:
        """Model key -> (stored name, active version), as `session` sees them."""
        return self.versions(session).actives

    def identity(self, session: Session, key: str, version: int) -> str | None:
        """The identity of a stored version `session` sees (None: the file does not hold it)."""
        return self.versions(session).ids.get((key, version))

    def generation(self) -> int:
        """How many writes this process has made to the database: what was read before holds
        while it has not moved."""
        return _WRITES.get(self.database, 0)

    def wrote(self) -> None:
        _WRITES[self.database] = _WRITES.get(self.database, 0) + 1
        self.actives.clear()
        self.views.clear()
