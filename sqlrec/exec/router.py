"""The statement router: sends each statement to its command, or to DuckDB.

Two paths. Plain SQL that sqlrec has no part in (no model, model attribute, view over a model,
ML.* function or sqlrec statement in it) runs in DuckDB as written, decided by DuckDB's own
parser and tokenizer (sqlrec.store.statements), which are loaded anyway: the fast path. Anything
else, and anything doubtful, takes the full path (sqlrec.exec.dispatch): sqlrec's grammar
parses it, a plan (sqlrec.exec.plans) or its command runs it. The full path's modules (sqlglot,
numpy, pyarrow, the commands) are imported when a statement first takes it, not at connect, so
`sqlrec -c "SELECT 1"` starts without them. Both paths run a plain statement the same way:
the same text (from its first token to its last), parameters bound by DuckDB, the same errors,
transactions and read-only behaviour (tests/test_fastpath.py compares them).

Each running statement has its own cancel flag: ``interrupt()`` sets the flags of the
statements running at that moment (training stops at the next epoch, scoring at the next
chunk) and a statement started later is not affected.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlrec.errors import CatalogException, Error, ProgrammingError
from sqlrec.exec.context import Context
from sqlrec.models.cache import VIEW_MARK, CatalogCache
from sqlrec.store.session import SYSTEM, Session
from sqlrec.store.statements import DuckDBParser, Parsed

if TYPE_CHECKING:
    from sqlrec.exec.plans import Plans
    from sqlrec.models.catalog import Catalog
    from sqlrec.models.model import Model
    from sqlrec.sql import Statement

__all__ = ["Context", "Router", "SQLREC_WORDS"]

# Words that make a text sqlrec's even where DuckDB's parser reads it: SHOW MODELS and SHOW
# ML_ENGINES parse as DuckDB's SHOW, mindsdb.m as a table, ML.f(...) as a function; the other
# model statements' words (CREATE MODEL, RETRAIN, EXPORT RECOMMENDATIONS, PREDICT USING ...)
# fail in DuckDB's parser today and are named so that they still would not slip past sqlrec.
# tests/test_fastpath.py checks every statement of sqlrec's grammar against this list.
SQLREC_WORDS = frozenset({"model", "models", "ml", "ml_engine", "ml_engines", "mindsdb", "predict", "retrain",
                          "finetune", "recommendations"})
# Texts whose DuckDB reading is remembered: an application runs a handful of statement shapes.
MAX_SCRIPTS = 512
# DuckDB's missing-table error and its own suggestion (a table or view, never a model).
_MISSING_TABLE = re.compile(r"Table with name (\S+) does not exist!")
_DUCKDB_SUGGESTION = re.compile(r'\nDid you mean "([^"]+)"\?')

_full: ModuleType | None = None


def _full_path() -> ModuleType:
    """sqlrec.exec.dispatch, imported on first use (sqlglot, numpy, pyarrow, every command)."""
    global _full
    if _full is None:
        from sqlrec.exec import dispatch

        _full = dispatch
    return _full


class Router:
    # False: every statement takes the full path, as before the fast path existed (a reference
    # for tests/test_fastpath.py and the benchmarks; the results are the same either way).
    fast_path = True

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
        self._plans: Plans | None = None  # made with the full path's first statement
        # The fast path: each text's DuckDB reading (None: the full path's), and per DuckDB handle
        # the names sqlrec answers for (models, views over models), kept like the active models.
        self._scripts: dict[str, tuple[tuple[Parsed, ...], frozenset[str]] | None] = {}
        self._names: dict[int, tuple[int, frozenset[str]]] = {}

    def catalog(self, session: Session | None = None) -> Catalog:
        """The model catalog as `session` (default: the connection's own handle) sees it."""
        from sqlrec.models.catalog import Catalog

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
        try:
            self._execute(session, sql, params)
        except CatalogException as exc:
            hinted = self._model_hint(session, exc)
            if hinted is None:
                raise
            raise hinted from exc

    def _model_hint(self, session: Session, exc: CatalogException) -> CatalogException | None:
        """DuckDB's missing-table error naming a model close to the missing name (a misspelt
        model reads as a missing table, and DuckDB suggests only tables); None when none is close."""
        text = str(exc)
        missing = _MISSING_TABLE.search(text)
        if missing is None:
            return None
        try:
            models = self.catalog(session).names()
        except Error:
            return None  # the catalog cannot be read now (an aborted transaction): DuckDB's words stand
        name = missing.group(1).strip('"').lower()
        close = difflib.get_close_matches(name, [m.lower() for m in models], n=1, cutoff=0.6)
        if not close:
            return None
        model = next(m for m in models if m.lower() == close[0])
        hint = f'Did you mean the model "{model}"?'
        duckdb_says = _DUCKDB_SUGGESTION.search(text)
        if duckdb_says is None:
            text = text[:missing.end()] + "\n" + hint + text[missing.end():]
        elif _likeness(name, duckdb_says.group(1)) > _likeness(name, model):
            text = text[:duckdb_says.end()] + f' Or the model "{model}"?' + text[duckdb_says.end():]
        else:
            text = text[:duckdb_says.start()] + "\n" + hint + text[duckdb_says.end():]
        return type(exc)(text)

    def _execute(self, session: Session, sql: str, params: Any) -> None:
        self.release(session)
        if self._plain(session, sql, params):
            return
        full = _full_path()
        if self._planned(session, sql, params):
            return
        statements = full.parse_script(sql)
        if not statements:
            raise ProgrammingError("empty statement: nothing to run")
        if params is not None and len(statements) > 1 and (not isinstance(params, (list, tuple, dict)) or params):
            raise ProgrammingError("parameters can only be bound to a single statement, not a script")
        with self._cancel_flag(session) as cancel:
            for st in statements:
                self.release(session)
                self.run(Context(session, self.catalog(session), cancel), st, params)

    # --- the fast path ------------------------------------------------------------------------

    def is_plain(self, sql: str, params: Any = None, session: Session | None = None) -> bool:
        """Whether `sql` would run on the fast path now: DuckDB runs it as written, sqlrec has no
        part in it (on `session`, the connection's own handle by default)."""
        return self._plain_statements(session or self.session, sql, params) is not None

    def _plain_statements(self, session: Session, sql: str, params: Any) -> tuple[Parsed, ...] | None:
        """The statements of `sql` when it is plain SQL on `session`; None when it takes the full path."""
        script = self._script(session, sql) if self.fast_path else None
        if script is None:
            return None
        statements, words = script
        if params is not None and len(statements) > 1:
            return None  # the full path says whether the parameters fit a script
        if any(st.type != "TRANSACTION" for st in statements):  # BEGIN / COMMIT name nothing
            names = self._sqlrec_names(session)
            if names is None or not names.isdisjoint(words):
                return None
        return statements

    def _plain(self, session: Session, sql: str, params: Any) -> bool:
        """Run `sql` in DuckDB as written when sqlrec has no part in it; False (nothing run) when
        it takes the full path. Run statement by statement, as the full path runs a script."""
        statements = self._plain_statements(session, sql, params)
        if statements is None:
            return False
        with self._cancel_flag(session):
            for st in statements:
                self.release(session)
                if st.type != "SELECT":
                    self._cache.wrote()  # it may change the catalog or the versions a transaction sees
                session.run(st.text, params)
        return True

    def _script(self, session: Session, sql: str) -> tuple[tuple[Parsed, ...], frozenset[str]] | None:
        """`sql`'s statements and words by DuckDB's parser, remembered per text; None when it is
        not plain SQL whatever the database holds (DuckDB cannot read it, a sqlrec word, USING k = v)."""
        try:
            return self._scripts[sql]
        except KeyError:
            pass
        found = DuckDBParser(session).script(sql)
        script = None
        if found is not None and not _sqlrec_syntax(found.words):
            script = found.statements, frozenset(found.words)
        with self._lock:  # cursors on other threads remember texts too
            if len(self._scripts) >= MAX_SCRIPTS:
                self._scripts.pop(next(iter(self._scripts)))  # the oldest: texts with inlined values come and go
            self._scripts[sql] = script
        return script

    def _sqlrec_names(self, session: Session) -> frozenset[str] | None:
        """The lower-cased names of the models and of the views over models `session` sees, read
        once per catalog generation; None when they cannot be read. The active models read here
        are the catalog's own cache (sqlrec.models.catalog.Catalog.actives, the same query), so
        a model query asks DuckDB about models no more often than before the fast path."""
        handle = id(session.duck)
        names = self._cache.current(handle, self._names)
        if names is None:
            try:
                # DuckDB's own functions (SYSTEM): the file's macros may carry these names
                views = [r[0] for r in session.rows(
                    f"SELECT view_name FROM {SYSTEM}.duckdb_views() WHERE {SYSTEM}.starts_with(comment, ?)",
                    [VIEW_MARK], where="reading the model catalog")]
                actives = self._cache.active_versions(session)
            except Error:
                return None  # the full path reports what is wrong (an aborted transaction ...)
            names = frozenset([*(str(v).lower() for v in views), *(str(key).lower() for key in actives)])
            self._cache.remember(handle, names, self._names)
        return names

    # --- the full path ------------------------------------------------------------------------

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
        if self._plans is None:
            self._plans = _full_path().Plans()
        catalog = self.catalog(session)
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
            ctx = Context(session, self.catalog(session), cancel)
            self._registered[id(session.duck)] = (session, ctx.registered)
            yield ctx

    def duckdb_statement(self, session: Session, sql: str) -> str | None:
        """'query' when `sql` is one read-only query that reads no model and has no USING,
        'other' for one other statement of DuckDB's own (CREATE TABLE, INSERT ...), None when
        sqlrec has a part in it (a model statement, a query over a model, a script)."""
        return _full_path().duckdb_statement(self.catalog(session), sql)

    def forget_catalog(self) -> None:
        """Read the active model versions from the file again (after a commit or rollback)."""
        self._cache.wrote()

    def run(self, ctx: Context, st: Statement, params: Any = None) -> None:
        full = _full_path()
        if full.changes_catalog(st):
            self._cache.wrote()
        self._registered[id(ctx.session.duck)] = (ctx.session, ctx.registered)
        self._scored[id(ctx.session.duck)] = ctx.scored
        full.run(ctx, st, params, self.read_only)

    def release(self, session: Session) -> None:
        """Drop the relations registered for the previous statement on this handle."""
        self._kept.pop(id(session.duck), None)
        self._scored.pop(id(session.duck), None)
        owner, names = self._registered.pop(id(session.duck), (session, []))
        for name in names:
            owner.unregister(name)


def _likeness(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio()


def _sqlrec_syntax(words: tuple[str, ...]) -> bool:
    """A sqlrec word, or query options (``USING name = value``, as sqlrec's grammar takes them)."""
    if not SQLREC_WORDS.isdisjoint(words):
        return True
    return any(word == "using" and i + 2 < len(words) and words[i + 2] == "=" for i, word in enumerate(words))
