"""What the server does, without the web framework: one connection, one cursor per request.

The HTTP app (sqlrec.serve.http) and the PostgreSQL front (sqlrec.serve.pgwire) both call a
``Service``. It owns the one sqlrec connection of the process (so the one DuckDB file and the
one model cache); every request runs on its own cursor, under a time limit (the statement is
interrupted on its cursor and the request fails with 408, the server goes on) and a row limit
(at most ``max_rows`` rows are fetched). Read-only unless started with ``write=True``: the
database is opened read-only, and only statements sqlrec's read-only rule (sqlrec.api
.statement_access) calls reads or transaction control run: no writes, no SET / PRAGMA / ATTACH /
LOAD / CALL (settings and extensions are every client's), no CREATE TEMP.
"""

from __future__ import annotations

import math
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlrec import errors
from sqlrec.api import TRANSACTION, WRITE, Access, Cursor, connect, statement_access
from sqlrec.api.vocabulary import key_side, recommendation_kinds
from sqlrec.sql import quote_ident

_LEADING = re.compile(r"^(\s+|--[^\n]*\n?|/\*.*?\*/|\()*", re.S)


class ServeError(Exception):
    """A request the server refuses, with its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def status_for(exc: BaseException) -> int:
    """The HTTP status of an error raised while serving a request."""
    if isinstance(exc, ServeError):
        return exc.status
    if isinstance(exc, (errors.ModelNotFoundError, errors.UnknownIdError)):
        return 404
    if isinstance(exc, errors.ModelExistsError):
        return 409
    if isinstance(exc, errors.Cancelled):
        return 408
    if isinstance(exc, (errors.ReadOnlyError, errors.PermissionException)):
        return 403  # a write to the read-only database, a file the server's configuration forbids
    if isinstance(exc, errors.OperationalError):
        # TransactionException (a write-write conflict with another transaction), IOException (the
        # file locked by another process) ...: the request may succeed later, as it is
        return 409
    if isinstance(exc, errors.InternalError):
        return 500
    if isinstance(exc, errors.Error):
        return 400
    return 500


@dataclass
class Settings:
    write: bool = False
    external_access: bool = False
    max_rows: int = 10_000
    timeout: float = 30.0


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple]
    truncated: bool = False
    types: list[str] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, (jsonable(v) for v in row))) for row in self.rows]


def jsonable(value: Any) -> Any:
    """A DuckDB value as JSON can hold it (NaN and infinities become null)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def first_word(sql: str) -> str:
    """A statement's first word, for pgwire's command tags and for telling BEGIN from COMMIT among
    statements the read-only rule calls transaction control; never itself a policy."""
    rest = _LEADING.sub("", sql, count=1)
    return rest.split(None, 1)[0].upper() if rest.strip() else ""


class Service:
    def __init__(self, database: str, settings: Settings | None = None):
        self.settings = settings or Settings()
        config = {} if self.settings.external_access else {"enable_external_access": False}
        self.database = database
        self.con = connect(database, read_only=not self.settings.write and database != ":memory:",
                                  config=config)
        self._lock = threading.Lock()  # the connection's own handle (models(), cursor()) is shared

    def close(self) -> None:
        with self._lock:
            self.con.close()

    # --- running statements -----------------------------------------------------------------

    @contextmanager
    def cursor(self) -> Iterator[Cursor]:
        with self._lock:
            cur = self.con.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def check_allowed(self, sql: str) -> Access:
        """What `sql` may do (sqlrec's read-only rule); 403 for a write when the server is
        read-only. With --write everything runs, and text the rule cannot read is left to fail
        when it runs, with its own error."""
        if self.settings.write:
            try:
                return statement_access(sql)
            except errors.Error:
                return Access(WRITE, "")
        access = statement_access(sql)
        if access.access == WRITE:
            raise ServeError(403, f"{access.what or 'statement'}: the server is read-only "
                                  "(start it with --write to change the database)")
        return access

    def transaction(self, sql: str) -> str | None:
        """'begin' (BEGIN, START TRANSACTION) or 'end' (COMMIT, END, ROLLBACK, ABORT) for what the
        read-only rule calls transaction control; None for anything else, refused or unreadable
        text included. For pgwire's transaction states: a failed transaction takes only its end."""
        try:
            if self.check_allowed(sql).access != TRANSACTION:
                return None
        except (errors.Error, ServeError):
            return None
        return "begin" if first_word(sql) in ("BEGIN", "START") else "end"

    @contextmanager
    def time_limit(self, cur: Cursor) -> Iterator[None]:
        """What runs in the block on `cur` is interrupted past the time limit (408)."""
        timer = threading.Timer(self.settings.timeout, cur.interrupt)
        timer.daemon = True
        timer.start()
        try:
            yield
        except errors.Cancelled as exc:
            raise ServeError(408, f"cancelled: the statement ran past the server's time limit "
                                  f"({self.settings.timeout:g} s)") from exc
        finally:
            timer.cancel()

    def run(self, cur: Cursor, sql: str, params: Any = None) -> Result:
        """Run `sql` on `cur` under the time limit; fetch at most max_rows rows."""
        limit = self.settings.max_rows
        with self.time_limit(cur):
            cur.execute(sql, params)
            if cur.description is None:
                return Result([], [])
            rows = cur.fetchmany(limit + 1)
        return Result([d[0] for d in cur.description], rows[:limit], len(rows) > limit,
                      [str(d[1]) for d in cur.description])

    def sql(self, sql: str, params: Any = None) -> Result:
        if not isinstance(sql, str) or not sql.strip():
            raise ServeError(400, "no SQL given")
        self.check_allowed(sql)
        with self.cursor() as cur:
            return self.run(cur, sql, params)

    # --- models -----------------------------------------------------------------------------

    def summaries(self) -> list:
        with self._lock:
            return self.con.models()

    def summary(self, name: str):
        for s in self.summaries():
            if s.name.lower() == name.lower():
                return s
        known = [s.name for s in self.summaries()]
        raise errors.ModelNotFoundError(f"no model named {name!r}{errors.did_you_mean(name, known)}")

    def describe(self, name: str) -> dict[str, Any]:
        s = self.summary(name)
        with self.cursor() as cur:
            info = dict(self.run(cur, f"SELECT property, value FROM {quote_ident(s.name)}.info").rows)
            metrics = self.run(cur, f"SELECT * FROM {quote_ident(s.name)}.metrics").records()
        return {"name": s.name, "engine": s.engine, "version": s.version, "user_id": s.user_col,
                "item_id": s.item_col, "n_users": s.n_users, "n_items": s.n_items,
                "created_at": jsonable(s.created_at), "train_seconds": s.train_seconds,
                "info": info, "metrics": metrics}

    def recommend(self, name: str, kind: str, keys: list[Any] | None, k: int | None = None,
                  exclude_seen: bool | None = None, liked: list[Any] | None = None,
                  new_id: Any = None) -> dict[str, Any]:
        """Recommendations of `kind` for `keys` (users or items), or for one new user who liked
        the items `liked` (fold-in), through the recommend API: request values are values, never
        SQL text."""
        side = key_side(kind)
        if side is None:
            raise ServeError(400, f"kind must be one of {', '.join(recommendation_kinds())}, got {kind!r}")
        if k is not None and not 1 <= k <= self.settings.max_rows:
            raise ServeError(400, f"k must be between 1 and {self.settings.max_rows}, got {k}")
        if liked is not None:
            if side != "user":
                raise ServeError(400, "liked items give a new user: use kind user_item or user_user")
            if not isinstance(liked, list) or not liked:
                raise ServeError(400, "liked must be a non-empty list of item ids")
            for v in liked:
                check_id(v, "item")
            if new_id is not None:
                check_id(new_id, "user")
            asked: dict[str, Any] = {"liked": liked, "new_user": new_id}
        else:
            keys = [check_id(v, side) for v in keys or []]
            if not keys:
                raise ServeError(400, f"no {side} given")
            asked = {"users" if side == "user" else "items": keys}
        with self.cursor() as cur, self.time_limit(cur):
            recs = cur.recommend(name, kind=kind, k=k, exclude_seen=exclude_seen, **asked)
            rows = recs.fetchmany(self.settings.max_rows + 1)
        result = Result(recs.columns, rows[:self.settings.max_rows], len(rows) > self.settings.max_rows)
        out = {"model": recs.model, "version": recs.version, "kind": kind, "columns": result.columns,
               "recommendations": result.records(), "truncated": result.truncated}
        if liked is not None:
            out["user"] = jsonable(recs.new_user)
        return out


def check_id(value: Any, what: str) -> Any:
    """A user or item id from a request: one value (the model checks its type)."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise ServeError(400, f"bad {what} id {value!r}")
    return value
