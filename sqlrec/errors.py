"""PEP 249 exception hierarchy plus sqlrec's own errors.

Every error a user can cause is one of these, with a message that names the statement part,
option or column at fault. DuckDB's own errors are re-raised as the matching PEP 249 class so
that ``except sqlrec.Error`` catches everything.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def wrap_duckdb(exc: Exception, context: str | None = None) -> Error:
    """The PEP 249 class matching a DuckDB exception, with an optional 'where' prefix."""
    import duckdb

    message = str(exc)
    if context:
        message = f"{context}: {message}"
    pairs = [
        (duckdb.InterruptException, Cancelled),
        (duckdb.ProgrammingError, ProgrammingError),
        (duckdb.DataError, DataError),
        (duckdb.IntegrityError, IntegrityError),
        (duckdb.NotSupportedError, NotSupportedError),
        (duckdb.InternalError, InternalError),
        (duckdb.OperationalError, OperationalError),
        (duckdb.DatabaseError, DatabaseError),
    ]
    for duck_cls, our_cls in pairs:
        if isinstance(exc, duck_cls):
            if our_cls is Cancelled:
                return Cancelled("statement cancelled" + (f" ({context})" if context else ""))
            return our_cls(message)
    return DatabaseError(message)
