"""PEP 249 Connection and Cursor over the statement router, with duckdb-style conveniences.

Each Cursor owns a DuckDB connection handle: the Connection's own cursor (used by
``Connection.execute``) shares the main DuckDB connection, so temp tables, ATTACHed databases
and settings persist across ``con.execute`` calls exactly as in duckdb's Python API; extra
cursors from ``Connection.cursor()`` are duckdb cursors (same database, own transaction).
Every result, model statements included, is a DuckDB result, so fetch*, description, .df()
and .arrow() behave the same for all statements.
"""

from __future__ import annotations

import os

import sys
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlrec import errors
from sqlrec.exec.router import Router
from sqlrec.sql.quoting import quote_ident
from sqlrec.store.session import PYTHON_SCOPE, Handle, Relation, Session

if TYPE_CHECKING:
    from sqlrec.api.recommend import Recommendations
    from sqlrec.exec.context import Context
    from sqlrec.models.catalog import ModelSummary


def _caller_scope() -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(globals, locals) of the code that called into this module, for DuckDB's lookup of
    Python objects by name; None when sqlrec itself is the caller (serve, the shell): no user
    namespace there, and internals must never be read as tables."""
    frame = sys._getframe(1)
    # "sqlrec" itself: the module-level sqlrec.sql() / sqlrec.execute() forward their caller's call
    while frame is not None and frame.f_globals.get("__name__") in (__name__, "contextlib", "sqlrec"):
        frame = frame.f_back
    if frame is None or str(frame.f_globals.get("__name__", "")).partition(".")[0] == "sqlrec":
        return None
    return frame.f_globals, frame.f_locals


@contextmanager
def _python_scope() -> Iterator[None]:
    """The caller's names are readable by DuckDB for the statement's duration (kept no longer)."""
    if PYTHON_SCOPE.get() is not None:
        yield
        return
    token = PYTHON_SCOPE.set(_caller_scope())
    try:
        yield
    finally:
        PYTHON_SCOPE.reset(token)


def _operation(operation: Any) -> str:
    """The statement text, or a ProgrammingError saying what was passed instead (as sqlite3 does)."""
    if isinstance(operation, str):
        return operation
    kind = "bytes (decode them first)" if isinstance(operation, (bytes, bytearray)) else type(operation).__name__
    raise errors.ProgrammingError(f"execute: the statement must be a str of SQL, got {kind}")


def _parameters(parameters: Any) -> Sequence[Any] | Mapping[str, Any] | None:
    """Query parameters as DuckDB takes them: a list or tuple (for ?, $1), a dict (for $name), or
    None. Anything else is a ProgrammingError here, not a TypeError from deep inside: a generator
    or iterator (read once, of unknown length), a set (no order) and a str (a sequence of its
    characters, never what was meant)."""
    if parameters is None or isinstance(parameters, (list, tuple)):
        return parameters
    if isinstance(parameters, Mapping):
        if not all(isinstance(k, str) for k in parameters):
            raise errors.ProgrammingError("execute: named parameters need str names (the $name in the SQL)")
        return dict(parameters)
    if isinstance(parameters, Sequence) and not isinstance(parameters, (str, bytes, bytearray)):
        return list(parameters)
    raise errors.ProgrammingError(f"execute: parameters must be a list or tuple (for ? and $1) or a dict "
                                  f"(for $name), got {type(parameters).__name__}")


def _polars() -> Any:
    """polars, or an ImportError saying how to get it (as duckdb's .pl(): ModuleNotFoundError)."""
    try:
        import polars
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(".pl() gives a polars DataFrame and needs polars: pip install polars",
                                  name="polars") from exc
    return polars


def _flag(name: str, value: Any) -> bool:
    """A connect() switch: True / False (or 1 / 0). read_only = "no" is truthy, so guessing would
    open a file writable that was meant read-only, or the other way round."""
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise errors.InterfaceError(f"connect: {name} must be True or False, got {value!r}")


class Cursor:
    arraysize: int = 1

    def __init__(self, connection: "Connection", session: Session):
        self.connection = connection
        self._session = session  # its DuckDB handle (the connection's own, or a cursor of it)
        self._has_result = False
        self._closed = False
        # threadsafety 1: a cursor serves one thread at a time, and a result is read by the
        # thread whose statement made it (another thread would silently get someone else's rows).
        self._busy = threading.Lock()
        self._owner: int | None = None

    @contextmanager
    def _use(self, fetching: bool) -> Iterator[None]:
        if not self._busy.acquire(blocking=False):
            raise errors.ProgrammingError(
                "this cursor is in use by another thread: sqlrec connections are not shared between threads "
                "(threadsafety 1); give each thread its own cursor: con.cursor()")
        try:
            if fetching and self._owner != threading.get_ident():
                raise errors.ProgrammingError(
                    "the result on this cursor belongs to a statement another thread ran; give each thread "
                    "its own cursor: con.cursor()")
            yield
        finally:
            self._busy.release()

    # --- PEP 249 -------------------------------------------------------------------------

    @property
    def description(self) -> list[tuple] | None:
        return self._session.description if self._has_result else None

    @property
    def rowcount(self) -> int:
        return -1  # DuckDB does not report it either

    def execute(self, operation: str, parameters: Sequence[Any] | dict | None = None) -> "Cursor":
        self._check_open()
        operation, parameters = _operation(operation), _parameters(parameters)
        with self._use(fetching=False), _python_scope():
            self._has_result = False
            self._owner = threading.get_ident()
            self.connection._router.execute(self._session, operation, parameters)
            self._has_result = self._session.description is not None
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Sequence[Any]]) -> "Cursor":
        operation = _operation(operation)
        if isinstance(seq_of_parameters, (str, bytes, bytearray, Mapping)) or not isinstance(seq_of_parameters, Iterable):
            raise errors.ProgrammingError(f"executemany: the parameters must be a sequence of parameter lists or "
                                          f"dicts, got {type(seq_of_parameters).__name__}")
        for parameters in seq_of_parameters:
            self.execute(operation, parameters)
        return self

    def fetchone(self) -> tuple | None:
        with self._result():
            return self._session.fetchone()

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        size = self.arraysize if size is None else size
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise errors.ProgrammingError(f"fetchmany: size must be a whole number of rows >= 0, got {size!r}")
        with self._result():
            return self._session.fetchmany(size)

    def fetchall(self) -> list[tuple]:
        with self._result():
            return self._session.fetchall()

    def close(self) -> None:
        if not self._closed and self._session is not self.connection._session:
            # the relations registered for its last statement go with it (the router would keep them)
            self.connection._router.release(self._session)
            self._session.close()
        self._closed = True

    def interrupt(self) -> None:
        """Cancel the statement running on this cursor (call it from another thread): DuckDB's
        part at once, training at the next epoch, scoring at the next chunk."""
        self.connection._router.interrupt(self._session)

    def setinputsizes(self, sizes: Any) -> None:
        pass

    def setoutputsize(self, size: Any, column: int | None = None) -> None:
        pass

    def __iter__(self) -> Iterator[tuple]:
        while (row := self.fetchone()) is not None:
            yield row

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- conveniences like duckdb's --------------------------------------------------------

    def df(self):
        """The remaining rows as a pandas DataFrame."""
        with self._result():
            return self._session.fetchdf()

    fetchdf = df

    def arrow(self):
        """The remaining rows as a pyarrow Table."""
        with self._result(), warnings.catch_warnings():
            # duckdb warns that a DB-API result copies once into Arrow; that copy is the point here
            warnings.simplefilter("ignore", UserWarning)
            return self._session.to_arrow_table()

    # duckdb 2.x's names on a connection's result (its relations' .arrow() is a RecordBatchReader;
    # here .arrow() stays a Table: see README "Python (DB-API 2.0)").
    fetch_arrow_table = to_arrow_table = arrow

    def to_arrow_reader(self, batch_size: int = 1_000_000):
        """The remaining rows as a pyarrow.RecordBatchReader (streamed, as duckdb's)."""
        with self._result(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # as in arrow()
            return self._session.to_arrow_reader(batch_size)

    def fetchnumpy(self) -> dict:
        with self._result():
            return self._session.fetchnumpy()

    def pl(self) -> Any:
        """The remaining rows as a polars DataFrame (polars is not a dependency of sqlrec)."""
        polars = _polars()
        return polars.from_arrow(self.arrow())

    # --- the recommend API (sqlrec.api.recommend) --------------------------------------------

    def recommend(self, model: str, *, users: Sequence[Any] | None = None, items: Sequence[Any] | None = None,
                  kind: str | None = None, k: int | None = None, exclude_seen: bool | None = None,
                  candidates: Sequence[Any] | None = None, liked: Sequence[Any] | None = None,
                  new_user: Any = None, version: int | None = None, approximate: bool | None = None,
                  nprobe: int | None = None, max_scored: int | None = None) -> Recommendations:
        """Recommendations of `model`, the rows of ``SELECT * FROM model WHERE <key> IN (...) USING ...``
        without writing that query; they are left on this cursor (see Recommendations).

        users / items: the ids asked about (lists); kind: recommender_type (default user_item, or
        item_item when only items are given; 'rating' scores the users x items pairs); with both
        users and items, the other side's ids are the targets scored. k: n_recommendations.
        candidates: the item ids the ranking may return. liked: the items a new user liked (its
        vector is folded in), scored as new_user (default: an id no trained user has). version,
        approximate, nprobe, max_scored: as the USING options of that name.
        """
        from sqlrec.api import recommend as _recommend  # numpy and the query path: loaded on first use

        return _recommend.recommend(self, model, users=users, items=items, kind=kind, k=k,
                                    exclude_seen=exclude_seen, candidates=candidates, liked=liked,
                                    new_user=new_user, version=version, approximate=approximate, nprobe=nprobe,
                                    max_scored=max_scored)

    def training_items(self, model: str, user: Any) -> list[Any]:
        """The items `user` had in the model's training data (what exclude_seen excludes), in the
        model's item order; none for a user the model does not know."""
        from sqlrec.api import recommend as _recommend

        return _recommend.training_items(self, model, user)

    def item_counts(self, model: str):
        """A pyarrow Table (item id, users): each item of the model with the number of users who
        had it in the training data."""
        from sqlrec.api import recommend as _recommend

        return _recommend.item_counts(self, model)

    # --- internals ---------------------------------------------------------------------------

    @contextmanager
    def _statement(self, result: bool) -> Iterator[Context]:
        """A recommend API call as one statement on this cursor: it replaces the cursor's result (by
        its rows when `result`, else by none), interrupt() reaches it, and it runs in the cursor's
        transaction."""
        self._check_open()
        with self._use(fetching=False):
            self._has_result = False
            self._owner = threading.get_ident()
            with self.connection._router.statement(self._session) as ctx:
                yield ctx
            self._has_result = result and self._session.description is not None

    def _check_open(self) -> None:
        if self._closed or self.connection._closed:
            raise errors.InterfaceError("cursor is closed")

    @contextmanager
    def _result(self) -> Iterator[None]:
        self._check_open()
        with self._use(fetching=True):
            if not self._has_result:
                raise errors.ProgrammingError("no result to fetch: the last statement returned no rows")
            yield


class Connection:
    """A sqlrec connection: one DuckDB database (file or in-memory) plus its models."""

    Error = errors.Error
    Warning = errors.Warning
    InterfaceError = errors.InterfaceError
    DatabaseError = errors.DatabaseError
    DataError = errors.DataError
    OperationalError = errors.OperationalError
    IntegrityError = errors.IntegrityError
    InternalError = errors.InternalError
    ProgrammingError = errors.ProgrammingError
    NotSupportedError = errors.NotSupportedError

    def __init__(self, database: str = ":memory:", read_only: bool = False, config: dict | None = None,
                 safe: bool = False, trust_stored_sql: bool = False):
        if not isinstance(database, (str, os.PathLike)):  # str(None) would open a file named 'None'
            raise errors.InterfaceError(f"connect: database must be a file path or ':memory:', got {database!r}")
        read_only, safe, trust_stored_sql = (_flag(n, v) for n, v in (("read_only", read_only), ("safe", safe),
                                                                       ("trust_stored_sql", trust_stored_sql)))
        if config is not None and not (isinstance(config, Mapping) and all(isinstance(k, str) for k in config)):
            raise errors.InterfaceError(f"connect: config must be a dict of DuckDB setting names to values, "
                                        f"e.g. {{'threads': 4}}, got {str(config)[:60]!r}")
        config = dict(config or {})
        if safe:  # DuckDB refuses to turn it back on while the database is open
            config["enable_external_access"] = False
        self._session = Session.open(str(database), read_only, config)
        self.database = str(database)
        self.read_only = read_only
        self.safe = safe
        self.trust_stored_sql = trust_stored_sql
        self._closed = False
        self._router = Router(self._session, read_only=read_only, trust_stored_sql=trust_stored_sql,
                              database=str(database))
        self._cursor = Cursor(self, self._session)

    @property
    def router(self) -> Router:
        return self._router

    @property
    def duckdb(self) -> Handle:
        """The underlying DuckDB connection (for DuckDB-only features; its errors are DuckDB's)."""
        return self._session.duck

    @property
    def session(self) -> Session:
        """sqlrec's door to this connection's DuckDB handle: labelled statements whose errors are
        sqlrec errors (for sqlrec's front-ends: the shell's completion, the notebook magic)."""
        return self._session

    def cursor(self) -> Cursor:
        self._check_open()
        return Cursor(self, self._session.cursor())

    def execute(self, operation: str, parameters: Sequence[Any] | dict | None = None) -> Cursor:
        """Run one statement or a script; returns the connection's cursor holding the last result."""
        self._check_open()
        return self._cursor.execute(operation, parameters)

    def sql(self, operation: str, parameters: Sequence[Any] | dict | None = None) -> Relation | None:
        """The result as a duckdb.DuckDBPyRelation, as duckdb's Connection.sql returns it. A
        plain query gets DuckDB's own lazy relation; DuckDB's other statements run now and give
        None (as in duckdb); a model statement or a query reading a model runs now, and the
        relation holds its rows."""
        self._check_open()
        operation, parameters = _operation(operation), _parameters(parameters)
        with _python_scope():
            kind = self._router.duckdb_statement(self._session, operation)
            if kind == "query":
                return self._session.relation(operation, parameters)
            cur = self.execute(operation, parameters)
            if kind == "other":
                return None
            return self._session.from_arrow(cur.arrow()) if cur.description is not None else None

    def executemany(self, operation: str, parameters: Sequence[Sequence[Any]]) -> Cursor:
        """Run one statement once per parameter list; the connection's cursor holds the last result."""
        self._check_open()
        return self._cursor.executemany(operation, parameters)

    # --- the result of con.execute(), read from the connection as duckdb's is -----------------

    @property
    def description(self) -> list[tuple] | None:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone()

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        return self._cursor.fetchmany(size)

    def fetchall(self) -> list[tuple]:
        return self._cursor.fetchall()

    def df(self) -> Any:
        """The remaining rows as a pandas DataFrame."""
        return self._cursor.df()

    fetchdf = fetch_df = df

    def arrow(self) -> Any:
        """The remaining rows as a pyarrow Table."""
        return self._cursor.arrow()

    fetch_arrow_table = to_arrow_table = arrow

    def to_arrow_reader(self, batch_size: int = 1_000_000) -> Any:
        return self._cursor.to_arrow_reader(batch_size)

    def fetchnumpy(self) -> dict:
        return self._cursor.fetchnumpy()

    def pl(self) -> Any:
        """The remaining rows as a polars DataFrame (needs polars: pip install polars)."""
        return self._cursor.pl()

    # --- relations, as duckdb's connection makes them ----------------------------------------

    def table(self, name: str) -> Relation:
        """A duckdb.DuckDBPyRelation over a table or view, as duckdb's Connection.table. A model's
        name gives its rows (``SELECT * FROM model``: every user's recommendations), computed now:
        a model is read where a table is, and its rows cannot be computed lazily by DuckDB."""
        self._check_open()
        if isinstance(name, str) and self._router.catalog(self._session).exists(name):
            return self.sql(f"SELECT * FROM {quote_ident(name)}")
        return self._session.reader("table", name, where=f"table {name!r}")

    def read_csv(self, path_or_buffer: Any, **options: Any) -> Relation:
        """A relation over CSV file(s), as duckdb's Connection.read_csv (same options)."""
        self._check_open()
        return self._session.reader("read_csv", path_or_buffer, where=f"read_csv {path_or_buffer!r}", **options)

    def read_parquet(self, path_or_buffer: Any, **options: Any) -> Relation:
        """A relation over Parquet file(s), as duckdb's Connection.read_parquet (same options)."""
        self._check_open()
        return self._session.reader("read_parquet", path_or_buffer, where=f"read_parquet {path_or_buffer!r}",
                                    **options)

    def from_df(self, df: Any) -> Relation:
        """A relation over a pandas DataFrame, as duckdb's Connection.from_df."""
        self._check_open()
        return self._session.reader("from_df", df, where="from_df")

    def commit(self) -> None:
        self._check_open()
        self._router.forget_catalog()
        self._session.commit()

    def rollback(self) -> None:
        self._check_open()
        self._router.forget_catalog()  # a model saved in the transaction may be gone
        self._session.rollback()

    def interrupt(self) -> None:
        """Cancel the running statement (training stops at the next epoch; nothing is saved)."""
        self._router.interrupt()

    def recommend(self, model: str, **arguments: Any) -> Recommendations:
        """Recommendations of `model` on the connection's cursor (arguments: Cursor.recommend)."""
        self._check_open()
        return self._cursor.recommend(model, **arguments)

    def training_items(self, model: str, user: Any) -> list[Any]:
        """See Cursor.training_items."""
        self._check_open()
        return self._cursor.training_items(model, user)

    def item_counts(self, model: str):
        """See Cursor.item_counts."""
        self._check_open()
        return self._cursor.item_counts(model)

    def models(self) -> list["ModelSummary"]:
        """The active models (name, engine, version, id columns, sizes, metrics), by name."""
        self._check_open()
        return self._router.catalog(self._session).summaries()

    def register(self, name: str, obj: Any) -> None:
        """Make a pandas DataFrame / Arrow table visible as a view, as duckdb.register does."""
        self._check_open()
        self._session.register("object", obj, name, where=f"register {name!r}")

    def unregister(self, name: str) -> None:
        """Remove a view made by register (nothing happens when there is none)."""
        self._check_open()
        self._session.unregister(name)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._session.close()
            self._closed = True

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise errors.InterfaceError("connection is closed")
