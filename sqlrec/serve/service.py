"""What the server does, without the web framework: one connection, one cursor per request.

The HTTP app (sqlrec.serve.http) and the PostgreSQL front (sqlrec.serve.pgwire) both call a
``Service``. It owns the one sqlrec connection of the process (so the one DuckDB file and the
one model cache); every request runs on its own cursor, under a time limit (the statement is
interrupted on its cursor and the request fails with 408, the server goes on) and a row limit
(at most ``max_rows`` rows are fetched). Bounded so that one client cannot take the process down:
statement text over ``max_statement_bytes`` is refused (413) before anything parses it, and
DuckDB works within ``memory_limit`` (a query past it fails with its out-of-memory error; the
next one runs). Read-only unless started with ``write=True``: the
database is opened read-only, and only statements sqlrec's read-only rule (sqlrec.api
.statement_access) calls reads or transaction control run: no writes, no SET / PRAGMA / ATTACH /
LOAD / CALL (settings and extensions are every client's), no CREATE TEMP.
"""

from __future__ import annotations

import math
import os
import re
import time as clock
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
    if isinstance(exc, errors.OutOfMemoryException):
        return 503  # past the server's memory limit: this request, not the server; others go on
    if isinstance(exc, errors.OperationalError):
        # TransactionException (a write-write conflict with another transaction), IOException (the
        # file locked by another process) ...: the request may succeed later, as it is
        return 409
    if isinstance(exc, errors.InternalError):
        return 500
    if isinstance(exc, errors.Error):
        return 400
    return 500


class ConfigError(ValueError):
    """A server setting that cannot be used; `option` names its command-line flag."""

    def __init__(self, message: str, option: str):
        super().__init__(message)
        self.option = option


# Statement text a server parses, at most. Real statements are small (a CREATE MODEL with its
# options, a query with a few hundred literal ids: under 10 KB); parsing costs time and memory in
# proportion to the text (a 64 KB IN list takes sqlglot about 0.6 s and DuckDB 0.2 s here, 400 KB
# 1.9 s), and cannot be interrupted, so a bound on the text is the bound on parsing. Longer lists
# of values go as bound parameters or through /models/NAME/recommend, which parse nothing.
MAX_STATEMENT_BYTES = 64 << 10
MEMORY_SHARE = 0.5  # of physical memory (or the cgroup's limit), for DuckDB by default
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?\s*$", re.I)
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}


def memory_bytes(text: str) -> int:
    """A memory size as DuckDB's memory_limit takes it ('4GB', '512MiB', a bare number of bytes)."""
    found = _SIZE.match(str(text))
    if not found:
        raise ConfigError(f"memory limit {text!r}: give a size such as 4GB or 512MiB", "--memory-limit")
    size = int(float(found.group(1)) * _UNITS[(found.group(2) or "B").upper()])
    if size < 64 << 20:
        raise ConfigError(f"memory limit {text!r}: at least 64MiB (DuckDB needs room to run a query)",
                          "--memory-limit")
    return size


def physical_memory() -> int:
    """The memory this process may use: the machine's, or its cgroup's limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def default_memory_limit() -> str:
    """MEMORY_SHARE of physical memory, in MiB: DuckDB's own default (80%) leaves too little for
    the server's Python side (parsing, results on their way out) and the rest of the machine."""
    return f"{int(physical_memory() * MEMORY_SHARE) >> 20}MiB"


@dataclass
class Settings:
    write: bool = False
    external_access: bool = False
    max_rows: int = 10_000
    timeout: float = 30.0
    memory_limit: str | None = None  # DuckDB's memory_limit; None: default_memory_limit()
    max_statement_bytes: int = MAX_STATEMENT_BYTES
    # pgwire, per connection: named prepared statements and portals a client may keep (psycopg
    # keeps up to 100 prepared statements by default), and the bytes they may hold together
    max_prepared: int = 256
    max_prepared_bytes: int = 8 << 20

    def __post_init__(self) -> None:
        if self.memory_limit is None:
            self.memory_limit = default_memory_limit()
        memory_bytes(self.memory_limit)
        if self.max_statement_bytes < 1:
            raise ConfigError(f"max statement bytes {self.max_statement_bytes}: at least 1", "--max-statement-bytes")


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


class Watchdog:
    """One thread that interrupts the cursors whose deadline has passed, for every request.

    A thread per request (started, then joined) cost about 0.5 ms of CPU each, a third of a
    recommend's own; this one sleeps until the earliest deadline. Past it, a cursor is
    interrupted again every 50 ms until its block ends (parsing and planning in Python cannot be
    stopped, so DuckDB's part is stopped as soon as it starts)."""

    REPEAT = 0.05

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watched: dict[int, tuple[float, Cursor]] = {}
        self._next = 0
        self._thread: threading.Thread | None = None
        self._until = math.inf  # when the thread wakes next, unless notified
        self._stopped = False

    def watch(self, cur: Cursor, deadline: float) -> int:
        with self._cond:
            self._next += 1
            self._watched[self._next] = (deadline, cur)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="sqlrec-time-limit")
                self._thread.start()
            elif deadline < self._until:
                # only a deadline earlier than the one the thread sleeps to wakes it: requests
                # under one time limit come in deadline order, so they leave it asleep
                self._cond.notify()
            return self._next

    def forget(self, watch: int) -> None:
        """Under the lock the interrupts are sent under: none reaches the cursor after this."""
        with self._cond:
            self._watched.pop(watch, None)

    def stop(self) -> None:
        """End the thread (the server closes): nothing is watched any more."""
        with self._cond:
            self._stopped = True
            self._watched.clear()
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                now = clock.monotonic()
                late = [cur for deadline, cur in self._watched.values() if deadline <= now]
                for cur in late:
                    cur.interrupt()
                if late:
                    wait = self.REPEAT
                elif self._watched:
                    wait = min(d for d, _ in self._watched.values()) - now
                else:
                    wait = None
                self._until = math.inf if wait is None else now + wait
                self._cond.wait(wait)


class Service:
    def __init__(self, database: str, settings: Settings | None = None):
        self.settings = settings or Settings()
        config: dict[str, Any] = {"memory_limit": self.settings.memory_limit}
        if not self.settings.external_access:
            config["enable_external_access"] = False
        self.database = database
        self.con = connect(database, read_only=not self.settings.write and database != ":memory:",
                                  config=config)
        self._lock = threading.Lock()  # the connection's own handle (models(), cursor()) is shared
        self._watchdog = Watchdog()
        self._idle: list[Cursor] = []  # warm cursors for recommend requests (see warm_cursor)

    def close(self) -> None:
        with self._lock:
            self._watchdog.stop()
            for cur in self._idle:
                cur.close()
            self._idle.clear()
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

    # Cursors kept for recommend requests, at most: one per concurrent request of the thread pool
    # is plenty; the rest are closed as usual.
    MAX_IDLE = 64

    @contextmanager
    def warm_cursor(self) -> Iterator[Cursor]:
        """A cursor that served an earlier recommend request, or a new one; kept afterwards.

        Only for the recommend API, which leaves nothing on its cursor (no transaction, no
        settings, no temporary objects): a fresh cursor per request cost about 0.15 ms of CPU
        more. A request that failed (cancelled, out of memory, a bad id) closes its cursor, so
        that an interrupt or an aborted state never reaches the next one; so does one that ran
        to the time limit (an interrupt may have been sent as it finished)."""
        started = clock.monotonic()
        with self._lock:
            cur = self._idle.pop() if self._idle else self.con.cursor()
        ok = False
        try:
            yield cur
            ok = clock.monotonic() - started < self.settings.timeout
        finally:
            with self._lock:
                if ok and len(self._idle) < self.MAX_IDLE and not self.con.closed:
                    self._idle.append(cur)
                    cur = None
            if cur is not None:
                cur.close()

    def check_size(self, sql: str) -> None:
        """413 for statement text longer than max_statement_bytes, before anything parses it."""
        most = self.settings.max_statement_bytes
        # len() counts characters: a text within `most` characters may still be longer in UTF-8
        if len(sql) > most or len(sql.encode()) > most:
            raise ServeError(413, f"statement of {len(sql.encode())} bytes refused: the server parses at most "
                                  f"{most} bytes (--max-statement-bytes); send long lists of values as "
                                  "bound parameters")

    def check_allowed(self, sql: str) -> Access:
        """What `sql` may do (sqlrec's read-only rule); 403 for a write when the server is
        read-only. With --write everything runs, and text the rule cannot read is left to fail
        when it runs, with its own error. Text over the size cap is refused first (413)."""
        self.check_size(sql)
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
    def time_limit(self, cur: Cursor, started: float | None = None) -> Iterator[None]:
        """What runs in the block on `cur` is interrupted past the time limit (408), counted from
        `started` (a time.monotonic(); default now) so that checking and parsing count too.

        A cursor's interrupt stops what is running on it then; parsing and planning in Python run
        before DuckDB starts and cannot be stopped, so past the deadline the interrupt is repeated
        until the block ends: DuckDB's part is stopped as soon as it starts. A block whose
        deadline has passed before it starts (a long check) does not run at all. What finishes
        all the same is answered: a write that committed is not reported as cancelled."""
        deadline = (clock.monotonic() if started is None else started) + self.settings.timeout
        if clock.monotonic() > deadline:
            raise ServeError(408, f"cancelled: the statement ran past the server's time limit "
                                  f"({self.settings.timeout:g} s) while it was checked and parsed")
        watch = self._watchdog.watch(cur, deadline)
        try:
            yield
        except errors.Cancelled as exc:
            raise ServeError(408, f"cancelled: the statement ran past the server's time limit "
                                  f"({self.settings.timeout:g} s, parsing and planning included)") from exc
        finally:
            # no interrupt reaches the cursor once this returns: it must not stop the next
            # statement on it (pgwire runs a connection's statements on one cursor)
            self._watchdog.forget(watch)

    @contextmanager
    def memory_limit(self) -> Iterator[None]:
        """DuckDB's out-of-memory error, saying that it is the server's limit and its flag."""
        try:
            yield
        except errors.OutOfMemoryException as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
            raise errors.OutOfMemoryException(
                f"{first} (the server's memory limit, --memory-limit {self.settings.memory_limit}, "
                "is shared by all requests: ask for less, or try again later)") from exc

    def run(self, cur: Cursor, sql: str, params: Any = None, started: float | None = None) -> Result:
        """Run `sql` on `cur` under the time limit (from `started`); fetch at most max_rows rows."""
        limit = self.settings.max_rows
        self.check_size(sql)
        with self.time_limit(cur, started), self.memory_limit():
            cur.execute(sql, params)
            if cur.description is None:
                return Result([], [])
            rows = cur.fetchmany(limit + 1)
        return Result([d[0] for d in cur.description], rows[:limit], len(rows) > limit,
                      [str(d[1]) for d in cur.description])

    def sql(self, sql: str, params: Any = None) -> Result:
        started = clock.monotonic()
        if not isinstance(sql, str) or not sql.strip():
            raise ServeError(400, "no SQL given")
        self.check_allowed(sql)
        with self.cursor() as cur:
            return self.run(cur, sql, params, started)

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
        with self.warm_cursor() as cur, self.time_limit(cur), self.memory_limit():
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
