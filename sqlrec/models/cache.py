"""What a connection keeps between statements (sqlrec.models.catalog reads through it): loaded models,
and per cursor which versions are active, good while this process has written nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the router keeps a cache before any model statement loads models
    from sqlrec.models.model import Model
    from sqlrec.store.session import Session

# The schema of sqlrec's tables in the database file (sqlrec.models.catalog keeps its models there).
SCHEMA = "sqlrec"

# Saves and drops per database file, by every connection of this process: a connection's cached
# list of active versions is good while this count has not moved.
_WRITES: dict[str, int] = {}


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
    models: dict[tuple[str, int], Model] = field(default_factory=dict)
    actives: dict[int, tuple[int, dict[str, tuple[str, int]]]] = field(default_factory=dict)
    views: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # sqlrec.exec.views, same rule

    def current(self, handle: int, store: dict | None = None) -> dict[str, Any] | None:
        seen, actives = (self.actives if store is None else store).get(handle, (-1, None))
        return actives if seen == _WRITES.get(self.database, 0) else None

    def remember(self, handle: int, actives: dict[str, Any], store: dict | None = None) -> None:
        (self.actives if store is None else store)[handle] = (_WRITES.get(self.database, 0), actives)

    def active_versions(self, session: Session) -> dict[str, tuple[str, int]]:
        """Model key -> (stored name, active version), as `session` sees them: read from the file
        once per generation (the catalog and the router's fast path both ask here)."""
        handle = id(session.duck)
        actives = self.current(handle)
        if actives is None:
            has_catalog = session.one(
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = 'models' "
                "AND database_name = current_database()", [SCHEMA], where="reading the model catalog")[0]
            actives = {} if not has_catalog else {
                key: (name, version) for key, name, version in session.rows(
                    f"SELECT key, name, version FROM {SCHEMA}.models WHERE active", where="reading the model catalog")}
            self.remember(handle, actives)
        return actives

    def generation(self) -> int:
        """How many writes this process has made to the database: what was read before holds
        while it has not moved."""
        return _WRITES.get(self.database, 0)

    def wrote(self) -> None:
        _WRITES[self.database] = _WRITES.get(self.database, 0) + 1
        self.actives.clear()
        self.views.clear()
