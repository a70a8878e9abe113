"""The statement router: sends each statement to its command, or to DuckDB.

Non-model statements run in DuckDB as written (parameters bound by DuckDB). Model statements
go to the command of their class in ``COMMANDS``; a command returns its result as an Arrow
table, which the router hands to DuckDB once, so that every result, model statements
included, is read from the DuckDB connection handle the same way. Queries over models
(sqlrec.exec.queries) leave DuckDB's own result there.

Each running statement has its own cancel flag: ``interrupt()`` sets the flags of the
statements running at that moment (training stops at the next epoch, scoring at the next
chunk) and a statement started later is not affected.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from sqlglot import exp

from sqlrec.exec import commands, export, finetune, lifecycle, queries, rewrite, training, views
from sqlrec.exec.compat import translate
from sqlrec.models.cache import CatalogCache
from sqlrec.models.catalog import Catalog
from sqlrec.errors import ProgrammingError, ReadOnlyError
from sqlrec.models.model import Model
from sqlrec.exec.plans import Plans
from sqlrec.store.session import Session
from sqlrec.store.statements import DuckDBParser
from sqlrec.sql import (
    OPTIONS_ARG, READ_ONLY, AlterModel, CreateModel, Describe, DropModel, EvaluateModel, ExportRecommendations, Finetune,
    Query, Retrain, ShowModels,
    Statement, parse_script,
)
from sqlrec.sql.classify import MODEL_STATEMENTS, WRITE, statement_access
from sqlrec.sql.compat.foreign import BigQueryCreateModel, CreateMLEngine, PredictUsing, ShowMLEngines


@dataclass
class Context:
    """What a command works with: the handle's session, the catalog, the statement's cancel flag,
    and the relations registered for the statement (released before the next one)."""

    session: Session
    catalog: Catalog
    cancel: threading.Event
    registered: list[str] = field(default_factory=list)
    scored: list[int] = field(default_factory=list)  # keys scored per model reference (Router.scored)

    def cancelled(self) -> bool:
        return self.cancel.is_set()


Command = Callable[[Context, Any, Any], "pa.Table | None"]


def _create(ctx: Context, st: CreateModel, params: Any) -> pa.Table:
    if isinstance(st, BigQueryCreateModel):
        with translate.bigquery_names(st):
            return _create(ctx, translate.bigquery_create(st), params)
    st = translate.native_create(ctx.session, st)  # MindsDB's and ThanoSQL's habits
    model, status = training.create(ctx.session, ctx.catalog, st, ctx.cancelled)
    return commands.status_table(model, status)


def _retrain(ctx: Context, st: Retrain, params: Any) -> pa.Table:
    model, _ = lifecycle.retrain(ctx.session, ctx.catalog, st, ctx.cancelled)
    return commands.status_table(model, "retrained")


def _finetune(ctx: Context, st: Finetune, params: Any) -> pa.Table:
    model, status = finetune.finetune(ctx.session, ctx.catalog, st, ctx.cancelled)
    return commands.status_table(model, status)


def _query(ctx: Context, st: Query, params: Any) -> None:
    queries.run(ctx.session, ctx.catalog, st, params, ctx.registered, ctx.cancelled, scored=ctx.scored)


def _plain(command: Callable[[Session, Catalog, Any], pa.Table]) -> Command:
    return lambda ctx, st, params: command(ctx.session, ctx.catalog, st)


# Statement class -> command. Which of them write is sqlrec.sql.classify's MODEL_STATEMENTS.
COMMANDS: dict[type[Statement], Command] = {
    CreateModel: _create,
    DropModel: _plain(commands.drop),
    AlterModel: _plain(commands.alter),
    ShowModels: _plain(commands.show),
    Describe: _plain(commands.describe),
    EvaluateModel: _plain(commands.evaluate),
    Retrain: _retrain,
    Finetune: _finetune,
    ExportRecommendations: _plain(export.export),
    Query: _query,
    BigQueryCreateModel: _create,
    CreateMLEngine: _plain(translate.create_ml_engine),
    ShowMLEngines: _plain(translate.show_ml_engines),
    PredictUsing: _plain(translate.predict_using),
}


class Router:
    def __init__(self, session: Session, read_only: bool = False, trust_stored_sql: bool = False,
                 database: str | None = None):
        self.session = session  # the connection's own handle
        self.read_only = read_only
        self.trust_stored_sql = trust_stored_sql
        in_memory = database is None or database == ":memory:" or database.startswith(":memory:")
        self._cache = CatalogCache(f"memory:{id(session.duck)}" if in_memory else os.path.realpath(database))
        self._lock = threading.Lock()
        # Per DuckDB handle: the running statement's cancel flag, and the relations registered
        # for its last statement (released when the next one starts).
        self._running: dict[int, tuple[Session, threading.Event]] = {}
        self._registered: dict[int, tuple[Session, list[str]]] = {}
        # Per DuckDB handle: Arrow tables its last statement reads by replacement scan (sqlrec.exec.plans).
        self._kept: dict[int, list] = {}
        # Per DuckDB handle: the keys its last statement's model references scored (see scored).
        self._scored: dict[int, list[int]] = {}
        self._plans = Plans()

    def catalog(self, session: Session | None = None) -> Catalog:
        """The model catalog as `session` (default: the connection's own handle) sees it."""
        return Catalog(session or self.session, self._cache, self.trust_stored_sql)

    def model(self, name: str, session: Session | None = None) -> Model:
        """The active version of a model, loaded (and cached) for scoring."""
        return self.catalog(session).load(name, "loading a model")

    def scored(self, session: Session | None = None) -> int:
        """Keys the last statement run on `session` (the connection's own by default) scored,
        over its model references: known keys and cold keys with vectors, not the fallback's.
        What pushdown saves shows here (a filter on the key scores its keys, not every key); a
        streamed result counts its batches as they are read."""
        return sum(self._scored.get(id((session or self.session).duck), ()))

    def interrupt(self, session: Session | None = None) -> None:
        """Cancel the statements running now: on `session` only, or on every cursor of the connection."""
        with self._lock:
            running = [r for r in self._running.values() if session is None or r[0].duck is session.duck]
        for running_on, cancel in running:
            cancel.set()
            running_on.interrupt()

    def execute(self, session: Session, sql: str, params: Any = None) -> None:
        """Run a statement or a script on `session`; the last statement's result stays on it."""
        self.release(session)
        if self._planned(session, sql, params):
            return
        statements = parse_script(sql)
        if not statements:
            raise ProgrammingError("empty statement: nothing to run")
        if params is not None and len(statements) > 1 and (not isinstance(params, (list, tuple, dict)) or params):
            raise ProgrammingError("parameters can only be bound to a single statement, not a script")
        with self._cancel_flag(session) as cancel:
            for st in statements:
                self.release(session)
                self.run(Context(session, Catalog(session, self._cache, self.trust_stored_sql), cancel), st, params)

    @contextmanager
    def _cancel_flag(self, session: Session) -> Iterator[threading.Event]:
        """The running statement's cancel flag, set by interrupt() while the block runs."""
        cancel = threading.Event()
        with self._lock:
            self._running[id(session.duck)] = (session, cancel)
        try:
            yield cancel
        finally:
            with self._lock:
                self._running.pop(id(session.duck), None)

    def _planned(self, session: Session, sql: str, params: Any) -> bool:
        """Run `sql` by its plan (sqlrec.exec.plans) when it has a valid one; False when it has none."""
        catalog = Catalog(session, self._cache, self.trust_stored_sql)
        plan = self._plans.find(sql, catalog, params)
        if plan is None:
            return False
        registered: list[str] = []
        keep: list = []
        self._registered[id(session.duck)] = (session, registered)
        self._kept[id(session.duck)] = keep
        scored: list[int] = []
        self._scored[id(session.duck)] = scored
        with self._cancel_flag(session) as cancel:
            return plan.run(session, catalog, params, registered, keep, cancel.is_set, scored)

    @contextmanager
    def statement(self, session: Session) -> Iterator[Context]:
        """A Context for one statement on `session` that comes as Python values, not SQL text (the
        recommend API, sqlrec.exec.recommend): the previous statement's relations are released,
        interrupt() reaches it, and the relations it registers live until the next statement."""
        self.release(session)
        with self._cancel_flag(session) as cancel:
            ctx = Context(session, Catalog(session, self._cache, self.trust_stored_sql), cancel)
            self._registered[id(session.duck)] = (session, ctx.registered)
            yield ctx

    def duckdb_statement(self, session: Session, sql: str) -> str | None:
        """'query' when `sql` is one read-only query that reads no model and has no USING,
        'other' for one other statement of DuckDB's own (CREATE TABLE, INSERT ...), None when
        sqlrec has a part in it (a model statement, a query over a model, a script)."""
        statements = parse_script(sql)
        if len(statements) != 1 or (type(statements[0]) in COMMANDS and type(statements[0]) is not Query):
            return None
        st = statements[0]
        if type(st) is not Query:
            return "other"
        if any(node.args.get(OPTIONS_ARG) for node in st.tree.find_all(exp.Expression)):
            return None
        catalog = self.catalog(session)
        if rewrite.find_model_refs(st.tree, catalog.exists) or views.reads_views(catalog.session, catalog, st.tree):
            return None
        return "query" if isinstance(st.tree, READ_ONLY) else "other"

    def forget_catalog(self) -> None:
        """Read the active model versions from the file again (after a commit or rollback)."""
        self._cache.wrote()

    def run(self, ctx: Context, st: Statement, params: Any = None) -> None:
        command = COMMANDS.get(type(st))
        if command is None or (isinstance(st, Query) and not isinstance(st.tree, READ_ONLY)):
            # DuckDB's own statements (DROP SCHEMA, COMMIT, ROLLBACK, INSERT ...) may change the
            # catalog or which versions a transaction sees
            self._cache.wrote()
        if isinstance(st, Describe) and not (st.explicit or ctx.catalog.exists(st.name)):
            command = None  # DESCRIBE t of a table is DuckDB's
        self._registered[id(ctx.session.duck)] = (ctx.session, ctx.registered)
        self._scored[id(ctx.session.duck)] = ctx.scored
        if command is None:
            return queries.passthrough(ctx.session, ctx.catalog, st, params, ctx.registered, ctx.cancelled, ctx.scored)
        # Read-only: a model statement that writes is refused before its command trains or
        # writes files. DuckDB's own statements meet the file's read-only mode in DuckDB, and
        # what only this process sees (SET, CREATE TEMP, ATTACH) stays the caller's choice; a
        # read-only server refuses those too (sqlrec.serve asks the same rule, sqlrec.sql.classify).
        if self.read_only and type(st) in MODEL_STATEMENTS and statement_access(st, DuckDBParser()).access == WRITE:
            raise ReadOnlyError(f"{st.text.split()[0].upper()}: the database is open read-only")
        table = command(ctx, st, params)
        if table is not None:
            ctx.registered.append(ctx.session.register("rel", table))
            ctx.session.run(f'SELECT * FROM "{ctx.registered[-1]}"')

    def release(self, session: Session) -> None:
        """Drop the relations registered for the previous statement on this handle."""
        self._kept.pop(id(session.duck), None)
        self._scored.pop(id(session.duck), None)
        owner, names = self._registered.pop(id(session.duck), (session, []))
        for name in names:
            owner.unregister(name)
