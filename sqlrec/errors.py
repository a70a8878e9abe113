"""PEP 249 exception hierarchy plus sqlrec's own errors.

Every error a user can cause is one of these, with a message that names the statement part,
option or column at fault, so that ``except sqlrec.Error`` catches everything.

DuckDB's errors (sqlrec.store.session turns each into one of these, with wrap_duckdb) keep
DuckDB's class, by name and by type: ``duckdb.BinderException`` becomes
``sqlrec.errors.BinderException``, a subclass of both ``sqlrec.errors.ProgrammingError`` (the
PEP 249 base DuckDB itself gives it) and ``duckdb.BinderException``. So callers choose by class,
never by message text, and code written for duckdb (``except duckdb.BinderException``) keeps
working through sqlrec. DuckDB's names are kept as they are, "Exception" and all: they are the
names duckdb users know and see in tracebacks (an "Error" suffix would also make IOError and
PermissionError, which shadow Python's own). That is why this module imports duckdb, the one
module outside sqlrec.store that does.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import duckdb


class Warning(Exception):  # noqa: A001 - the name is fixed by PEP 249
    pass


class Error(Exception):
    pass


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


# --- sqlrec's own errors -------------------------------------------------------------------


class SqlRecError(Error):
    """Base mixin of the errors sqlrec itself raises (as opposed to DuckDB's)."""

    # Set by unlabelled(): the error still waits for its statement label, which the innermost
    # enclosing context() puts before the message with this separator. None: labelled already
    # (the message names its statement itself, the usual case) or never to be labelled.
    awaiting_label: str | None = None


class ParseError(SqlRecError, ProgrammingError):
    """Malformed model statement or unsplittable script; carries line and column (1-based)."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None):
        self.line = line
        self.col = col
        if line is not None:
            message = f"{message} (line {line}, column {col})"
        super().__init__(message)


class ModelNotFoundError(SqlRecError, ProgrammingError):
    pass


class ModelExistsError(SqlRecError, ProgrammingError):
    pass


class OptionError(SqlRecError, ProgrammingError):
    """Unknown option, wrong type or value out of range."""


class ColumnError(SqlRecError, ProgrammingError):
    """A column named by an option is missing from a query."""


class TrainingDataError(SqlRecError, DataError):
    """Training data that cannot make a model: empty, NULL ids, nothing above threshold."""


class UnknownIdError(SqlRecError, DataError):
    """Query for users or items the model does not know, with cold_start = 'error'."""


class QueryError(SqlRecError, ProgrammingError):
    """A query over a model that sqlrec cannot answer (bad recommender_type, bad filter...)."""


class CorruptModelError(SqlRecError, DatabaseError):
    """A stored model whose metadata or arrays are not what sqlrec writes (a damaged or crafted file)."""


class TrainingError(SqlRecError, DataError):
    """Training itself failed (the fit diverged): the options, not the data layout, are at fault."""


class Cancelled(SqlRecError, OperationalError):
    """A statement interrupted by the user (Ctrl-C); nothing it started was saved."""


class SparkError(SqlRecError, OperationalError):
    """A Spark job (engine = 'spark_als', EXPORT RECOMMENDATIONS) failed on the cluster or could not start."""


_E = TypeVar("_E", bound=SqlRecError)


def unlabelled(exc: _E, separator: str = ": ") -> _E:
    """`exc`, to be labelled by the caller's context() (code that knows what failed but not which
    statement asked: sqlrec.numeric). The message is the part after the label; `separator` joins
    them (' ' where the message goes on naming a part of the statement, as in 'SELECT FROM m USING')."""
    exc.awaiting_label = separator
    return exc


@contextmanager
def context(label: str) -> Iterator[None]:
    """Put `label` (the statement part, e.g. 'SELECT FROM m') before the message of an unlabelled()
    sqlrec error raised inside. Once: the innermost context labels it, and an outer one finds it
    labelled and leaves it as it is. Other errors pass through untouched. Errors raised by a
    generator after the block was left (a lazily consumed ranking) are outside it: such code
    keeps its label as an argument."""
    try:
        yield
    except SqlRecError as exc:
        if exc.awaiting_label is not None:
            exc.args = (f"{label}{exc.awaiting_label}{exc.args[0] if exc.args else ''}", *exc.args[1:])
            exc.awaiting_label = None
        raise


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- DuckDB's errors, as sqlrec errors (see the module docstring) -----------------------------
# Each is the sqlrec PEP 249 base DuckDB gives its class, then DuckDB's class itself.


class BinderException(ProgrammingError, duckdb.BinderException):
    """A name or type that does not bind: a column not found, a function on the wrong types."""


class CatalogException(ProgrammingError, duckdb.CatalogException):
    """A table, view, schema or function that does not exist (or already does)."""


class AlreadyExistsError(CatalogException):
    """A CatalogException for an entry that already exists (CREATE TABLE of an existing table)."""


class ParserException(ProgrammingError, duckdb.ParserException):
    """SQL that DuckDB cannot parse (sqlrec's own statements raise ParseError)."""


class SyntaxException(ProgrammingError, duckdb.SyntaxException):
    pass


class InvalidInputException(ProgrammingError, duckdb.InvalidInputException):
    pass


class ReadOnlyError(InvalidInputException):
    """A write to a database opened read-only: DuckDB's refusal, or sqlrec's before a model statement runs."""


class InvalidTypeException(ProgrammingError, duckdb.InvalidTypeException):
    pass


class ConversionException(DataError, duckdb.ConversionException):
    """A value that does not convert to the asked-for type."""


class OutOfRangeException(DataError, duckdb.OutOfRangeException):
    pass


class TypeMismatchException(DataError, duckdb.TypeMismatchException):
    pass


class ConstraintException(IntegrityError, duckdb.ConstraintException):
    """A row that breaks a PRIMARY KEY, UNIQUE, NOT NULL, CHECK or FOREIGN KEY constraint."""


class TransactionException(OperationalError, duckdb.TransactionException):
    """A transaction that cannot go on: a write-write conflict with another transaction, COMMIT with none open."""


class IOException(OperationalError, duckdb.IOException):
    """A file that cannot be read or written, or a database file locked by another process."""


class HTTPException(IOException, duckdb.HTTPException):
    pass


class OutOfMemoryException(OperationalError, duckdb.OutOfMemoryException):
    pass


class ConnectionException(OperationalError, duckdb.ConnectionException):
    pass


class SerializationException(OperationalError, duckdb.SerializationException):
    pass


class InternalException(InternalError, duckdb.InternalException):
    pass


class NotImplementedException(NotSupportedError, duckdb.NotImplementedException):
    pass


class PermissionException(DatabaseError, duckdb.PermissionException):
    """What the database's configuration forbids (file access with enable_external_access = false)."""


class DependencyException(DatabaseError, duckdb.DependencyException):
    pass


class SequenceException(DatabaseError, duckdb.SequenceException):
    pass


class FatalException(DatabaseError, duckdb.FatalException):
    pass


class ResourceInUseException(OperationalError, duckdb.ResourceInUseException):
    pass


class InterruptException(Cancelled, duckdb.InterruptException):
    """A DuckDB statement interrupted (Ctrl-C, Cursor.interrupt, serve's time limit): a Cancelled."""


# DuckDB's PEP 249 bases, raised bare (rarely: by its Python API rather than its engine): no
# DuckDB twin, the sqlrec base. Their subclasses come first, so a subclass finds its own twin.
_BASES = {duckdb.ProgrammingError: ProgrammingError, duckdb.DataError: DataError,
          duckdb.IntegrityError: IntegrityError, duckdb.NotSupportedError: NotSupportedError,
          duckdb.InternalError: InternalError, duckdb.OperationalError: OperationalError,
          duckdb.DatabaseError: DatabaseError}

# Where DuckDB's class is coarser than callers need (serve's HTTP status and SQLSTATE), the
# finer sqlrec class, found from DuckDB's message: the one place that reads it.
_FINER = ((duckdb.InvalidInputException, "read-only mode", ReadOnlyError),
          (duckdb.CatalogException, "already exists", AlreadyExistsError))


def wrap_duckdb(exc: Exception, context: str | None = None) -> Error:
    """The sqlrec error for a DuckDB exception (its twin class above), with an optional 'where'
    prefix. A sqlrec error (already labelled) comes back as it is."""
    if isinstance(exc, Error):
        return exc
    message = str(exc)
    if isinstance(exc, duckdb.InterruptException):
        return InterruptException("statement cancelled" + (f" ({context})" if context else ""))
    if context:
        message = f"{context}: {message}"
    for duck_cls, phrase, finer in _FINER:
        if isinstance(exc, duck_cls) and phrase in str(exc):
            return finer(message)
    for cls in type(exc).__mro__:
        ours = _TWINS.get(cls) or _BASES.get(cls)
        if ours is not None:
            return ours(message)
    return DatabaseError(message)


# DuckDB's class -> ours, for every class of this module with a DuckDB base.
_TWINS: dict[type, type[Error]] = {
    base: cls for cls in list(globals().values()) if isinstance(cls, type) and issubclass(cls, Error)
    for base in cls.__bases__ if base.__module__ == duckdb.Error.__module__}
