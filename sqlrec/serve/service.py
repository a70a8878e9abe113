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
from sqlrec.sql import quote_ident

KEY_SIDE = {"user_item": "user", "user_user": "user", "item_item": "item", "item_user": "item"}
_LEADING = re.compile(r"^(\s+|--[^\n]*\n?|/\*.*?\*/|\()*", re.S)
_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_ ,()]*$")


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
    text = str(exc)
    if "read-only" in text or "Permission Error" in text:
        return 403
    if isinstance(exc, errors.Error) and (isinstance(exc, errors.OperationalError) or "conflict" in text.lower()
                                          or "could not set lock" in text.lower()):
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
        self._types: dict[tuple[str, int], dict[str, str]] = {}

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

    def run(self, cur: Cursor, sql: str, params: Any = None) -> Result:
        """Run `sql` on `cur` under the time limit; fetch at most max_rows rows."""
        timer = threading.Timer(self.settings.timeout, cur.interrupt)
        timer.daemon = True
        timer.start()
        try:
            cur.execute(sql, params)
            if cur.description is None:
                return Result([], [])
            limit = self.settings.max_rows
            rows = cur.fetchmany(limit + 1)
        except errors.Cancelled as exc:
            raise ServeError(408, f"cancelled: the statement ran past the server's time limit "
                                  f"({self.settings.timeout:g} s)") from exc
        finally:
            timer.cancel()
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

    def model(self, name: str) -> Any:
        """The loaded active version of a model (from the shared cache): its id maps and seen matrix."""
        s = self.summary(name)
        with self._lock:
            return self.con.router.model(s.name)

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
        the items `liked` (fold-in). Every value given reaches DuckDB as a bound parameter."""
        s = self.summary(name)
        if kind not in KEY_SIDE:
            raise ServeError(400, f"kind must be one of {', '.join(KEY_SIDE)}, got {kind!r}")
        if k is not None and not 1 <= k <= self.settings.max_rows:
            raise ServeError(400, f"k must be between 1 and {self.settings.max_rows}, got {k}")
        options = [f"recommender_type = '{kind}'"]
        if k is not None:
            options.append(f"n_recommendations = {int(k)}")
        if exclude_seen is not None:
            options.append(f"exclude_seen = {'true' if exclude_seen else 'false'}")
        with self.cursor() as cur:
            types = self._id_types(cur, s)
            side = KEY_SIDE[kind]
            col = s.user_col if side == "user" else s.item_col
            params: list[Any] = []
            where = ""
            if liked is not None:
                if side != "user":
                    raise ServeError(400, "liked items give a new user: use kind user_item or user_user")
                table, new_id = self._liked_table(cur, s, types, liked, new_id)
                options.append(f"interactions = '{table}'")
            else:
                keys = [coerce(v, types.get(f"{side}_id_type", "VARCHAR"), side) for v in keys or []]
                if not keys:
                    raise ServeError(400, f"no {side} given")
                where = f" WHERE {quote_ident(col)} IN ({', '.join('?' * len(keys))})"
                params = keys
            sql = f"SELECT * FROM {quote_ident(s.name)}{where} USING {', '.join(options)}"
            result = self.run(cur, sql, params or None)
        out = {"model": s.name, "version": s.version, "kind": kind, "columns": result.columns,
               "recommendations": result.records(), "truncated": result.truncated}
        if liked is not None:
            out["user"] = jsonable(new_id)
        return out

    def _id_types(self, cur: Cursor, s: Any) -> dict[str, str]:
        """The model's user_id_type and item_id_type (kept per model and version: they never change)."""
        key = (s.name, s.version)
        if key not in self._types:
            self._types[key] = dict(self.run(cur, f"SELECT property, value FROM {quote_ident(s.name)}.info "
                                                  "WHERE property IN ('user_id_type', 'item_id_type')").rows)
        return self._types[key]

    def _liked_table(self, cur: Cursor, s: Any, types: dict[str, str], liked: list[Any],
                     new_id: Any) -> tuple[str, Any]:
        """A temp table (this cursor's own) of (new user, liked item) rows, from bound values."""
        if not isinstance(liked, list) or not liked:
            raise ServeError(400, "liked must be a non-empty list of item ids")
        user_type, item_type = types.get("user_id_type", "VARCHAR"), types.get("item_id_type", "VARCHAR")
        for t in (user_type, item_type):
            if not _TYPE_NAME.match(t):
                raise ServeError(500, f"unexpected id type {t!r} in the model's info")
        if new_id is None:
            new_id = _new_id(user_type)
        new_id = coerce(new_id, user_type, "user")
        items = [coerce(v, item_type, "item") for v in liked]
        table = f"__sqlrec_serve_liked_{uuid.uuid4().hex[:12]}"
        values = ", ".join(f"(CAST(? AS {user_type}), CAST(? AS {item_type}))" for _ in items)
        sql = (f"CREATE TEMP TABLE {table} AS SELECT * FROM (VALUES {values}) "
               f"AS t({quote_ident(s.user_col)}, {quote_ident(s.item_col)})")
        self.run(cur, sql, [v for item in items for v in (new_id, item)])
        return table, new_id


def _new_id(type_name: str) -> Any:
    """An id no trained user has, for a new user given only by liked items."""
    upper = type_name.upper()
    if upper.startswith("U") and "INT" in upper:
        return 2**31 - 1 if upper != "UTINYINT" and upper != "USMALLINT" else 65535
    if "INT" in upper:
        return -(2**31) + 1 if upper not in ("TINYINT", "SMALLINT") else -32767
    if upper == "UUID":
        return "00000000-0000-0000-0000-000000000000"
    return "__new_user__"


def coerce(value: Any, type_name: str, what: str) -> Any:
    """A user or item id from a request (often text, from a URL) as the model's id type."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise ServeError(400, f"bad {what} id {value!r}")
    if "INT" in type_name.upper():
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ServeError(400, f"{what} id {value!r} is not an integer (the model's "
                                  f"{what} ids are {type_name})") from None
    return str(value)

