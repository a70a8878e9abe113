"""The engine: routes each statement to its command, or to DuckDB.

Non-model statements run in DuckDB as written (parameters bound by DuckDB). Model statements
go to the command of their class in ``COMMANDS``; a command returns its result as an Arrow
table, which the engine hands to DuckDB once, so that every result, model statements
included, is read from the DuckDB connection handle the same way. Queries over models
(sqlrec.queries) leave DuckDB's own result there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa

from . import commands, queries, training
from .catalog import Catalog
from .errors import NotSupportedError, ProgrammingError
from .model import Model
from .session import Session
from .sql import (
    CreateModel, Describe, DropModel, EvaluateModel, Finetune, Query, Retrain, ShowModels, Statement, parse_script,
)

Command = Callable[["Engine", Session, Catalog, Any, Any], "pa.Table | None"]


def _create(engine: "Engine", session: Session, catalog: Catalog, st: CreateModel, params: Any) -> pa.Table:
    model, status = training.create(session, catalog, st, engine.cancelled)
    return commands.status_table(model, status)


def _not_yet(engine: "Engine", session: Session, catalog: Catalog, st: Retrain | Finetune, params: Any) -> None:
    catalog.require(st.name, st.word)
    raise NotSupportedError(f"{st.word} is not available yet in this version of sqlrec")


def _query(engine: "Engine", session: Session, catalog: Catalog, st: Query, params: Any) -> None:
    queries.run(session, catalog, st, params, engine.registered(session))


def _plain(command: Callable[[Session, Catalog, Any], pa.Table]) -> Command:
    return lambda engine, session, catalog, st, params: command(session, catalog, st)


# Statement class -> (command, writes to the database).
COMMANDS: dict[type[Statement], tuple[Command, bool]] = {
    CreateModel: (_create, True),
    DropModel: (_plain(commands.drop), True),
    ShowModels: (_plain(commands.show), False),
    Describe: (_plain(commands.describe), False),
    EvaluateModel: (_plain(commands.evaluate), False),
    Retrain: (_not_yet, True),
    Finetune: (_not_yet, True),
    Query: (_query, False),
}


class Engine:
    def __init__(self, duck: duckdb.DuckDBPyConnection, read_only: bool = False):
        self.duck = duck
        self.read_only = read_only
        self._cache: dict = {}
        self._cancel = False
        # Relations registered for the last statement on each handle, released before the next.
        self._registered: dict[int, tuple[Session, list[str]]] = {}

    def catalog(self, duck: duckdb.DuckDBPyConnection) -> Catalog:
        return Catalog(Session(duck), self._cache)

    def model(self, name: str, duck: duckdb.DuckDBPyConnection | None = None) -> Model:
        """The active version of a model, loaded (and cached) for scoring."""
        return self.catalog(duck or self.duck).load(name, "loading a model")

    def cancelled(self) -> bool:
        return self._cancel

    def interrupt(self) -> None:
        self._cancel = True
        try:
            self.duck.interrupt()
        except duckdb.Error:
            pass

    def execute(self, duck: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> None:
        """Run a statement or a script on `duck`; the last statement's result stays on it."""
        self._cancel = False
        session = Session(duck)
        self.release(session)
        statements = parse_script(sql)
        if not statements:
            raise ProgrammingError("empty statement: nothing to run")
        if params is not None and len(statements) > 1 and (not isinstance(params, (list, tuple, dict)) or params):
            raise ProgrammingError("parameters can only be bound to a single statement, not a script")
        for st in statements:
            self.release(session)
            self.run(session, st, params)

    def run(self, session: Session, st: Statement, params: Any = None) -> None:
        catalog = Catalog(session, self._cache)
        entry = COMMANDS.get(type(st))
        if isinstance(st, Describe) and not (st.explicit or catalog.exists(st.name)):
            entry = None  # DESCRIBE t of a table is DuckDB's
        if entry is None:
            return session.run(st.text, params)
        command, writes = entry
        if writes and self.read_only:
            raise ProgrammingError(f"{st.text.split()[0].upper()}: the database is open read-only")
        table = command(self, session, catalog, st, params)
        if table is not None:
            names = self.registered(session)
            names.append(session.register("rel", table))
            session.run(f'SELECT * FROM "{names[-1]}"')

    def registered(self, session: Session) -> list[str]:
        """The list of relations registered for the current statement on this handle."""
        return self._registered.setdefault(id(session.duck), (session, []))[1]

    def release(self, session: Session) -> None:
        """Drop the relations registered for the previous statement on this handle."""
        owner, names = self._registered.pop(id(session.duck), (session, []))
        for name in names:
            owner.unregister(name)
