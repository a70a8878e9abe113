"""`sqlrec serve --pg-port`: the PostgreSQL wire protocol (v3) over the same Service as HTTP.

psql, psycopg and other libpq clients connect to the process that owns the DuckDB file: one
thread and one DuckDB cursor per client connection (so the shared model cache, the read-only
rule, the row and time limits are the HTTP API's). Written here on socketserver rather than
taken from buenavista 0.5, whose DuckDB backend calls a method duckdb 2.0 removed and which sends
no SQLSTATE and runs a query to describe it: the protocol subset a server needs (startup,
SSLRequest refused with 'N', SCRAM-SHA-256 password, simple and extended query, CancelRequest) is
small and has no other dependency. Results are sent in text format.

Bounded per connection: statement text over the service's max_statement_bytes is refused
(SQLSTATE 54000) before it is split or parsed; prepared statements and portals are capped in
number and in bytes (Settings.max_prepared, max_prepared_bytes), so a client cannot park memory
in the server; failed password checks from one client address are spaced out by a delay that
doubles with each failure (sqlrec.serve.pgauth.LoginThrottle).
"""

from __future__ import annotations

import re
import secrets
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlrec import errors
from sqlrec.api import TRANSACTION
from sqlrec.sql import split_script
from sqlrec.serve import pgproto as pg
from sqlrec.serve.pgauth import LoginThrottle, Scram
from sqlrec.serve.service import Result, ServeError, Service, first_word

MAX_MESSAGE = 16 << 20  # one query or Bind; bigger ones are refused before they are read
# Session settings clients send or ask for on connect (psycopg, psql, JDBC, SQLAlchemy): kept
# per connection and answered here, since DuckDB has no such settings.
CLIENT_SETTINGS = {
    "server_version": "16.0 (sqlrec)", "server_encoding": "UTF8", "client_encoding": "UTF8",
    "datestyle": "ISO, MDY", "timezone": "UTC", "intervalstyle": "postgres", "integer_datetimes": "on",
    "standard_conforming_strings": "on", "application_name": "", "extra_float_digits": "1",
    "transaction_isolation": "serializable", "default_transaction_isolation": "serializable",
    "search_path": "main", "statement_timeout": "0", "lock_timeout": "0", "is_superuser": "off",
    "lc_messages": "C", "bytea_output": "hex",
}
_SET = re.compile(r"^\s*SET\s+(?:SESSION\s+|LOCAL\s+)?(\w+)\s*(?:=|\s+TO\s+)\s*(.+?)\s*;?\s*$", re.I | re.S)
_SHOW = re.compile(r"^\s*SHOW\s+(\w+)\s*;?\s*$", re.I)


class Disconnect(Exception):
    """The client went away (or sent Terminate)."""


@dataclass
class Portal:
    sql: str
    params: list[Any]
    result: Result | None = None
    sent: int = 0
    size: int = 0  # bytes of its parameters, for the connection's cap


@dataclass
class Connection:
    """One client connection: its socket, cursor, prepared statements, portals and settings."""

    service: Service
    sock: socket.socket
    scram: Scram | None
    sessions: dict[int, "Connection"]
    throttle: LoginThrottle | None = None
    address: str = ""
    pid: int = field(default_factory=lambda: secrets.randbelow(2**31 - 1) + 1)
    secret: int = field(default_factory=lambda: secrets.randbelow(2**31 - 1) + 1)
    settings: dict[str, str] = field(default_factory=lambda: dict(CLIENT_SETTINGS))
    statements: dict[str, tuple[str, list[int]]] = field(default_factory=dict)
    portals: dict[str, Portal] = field(default_factory=dict)
    out: list[bytes] = field(default_factory=list)
    status: bytes = b"I"
    cur: Any = None
    cancelled: bool = False

    # --- bytes in and out ---------------------------------------------------------------------

    def read(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(min(n - len(data), 1 << 16))
            if not chunk:
                raise Disconnect
            data += chunk
        return bytes(data)

    def read_length(self, most: int) -> int:
        """A message's length word; a length past `most` ends the connection (like the HTTP body cap)."""
        (length,) = struct.unpack("!i", self.read(4))
        if not 4 <= length <= most:
            self.sock.sendall(pg.notice(b"E", "FATAL", "54000", f"message of {length} bytes refused "
                                        f"(at most {most} bytes)"))
            raise Disconnect
        return length - 4

    def read_message(self) -> tuple[bytes, bytes]:
        kind = self.read(1)
        return kind, self.read(self.read_length(MAX_MESSAGE))

    def send(self, *messages: bytes) -> None:
        self.out.extend(messages)

    def flush(self) -> None:
        if self.out:
            self.sock.sendall(b"".join(self.out))
            self.out = []

    # --- startup ------------------------------------------------------------------------------

    def startup(self) -> bool:
        """Answer SSL/GSS requests, a CancelRequest or the startup message; check the password."""
        while True:
            body = self.read(self.read_length(10_000))
            (code,) = struct.unpack("!i", body[:4])
            if code in (pg.SSL_REQUEST, pg.GSS_REQUEST):
                self.sock.sendall(b"N")  # no TLS here: the client goes on in plain text or gives up
                continue
            if code == pg.CANCEL_REQUEST:
                self._cancel_other(*struct.unpack("!ii", body[4:12]))
                return False
            if code != pg.PROTOCOL_3:
                self.sock.sendall(pg.notice(b"E", "FATAL", "0A000", f"unsupported protocol {code >> 16}.{code & 0xFFFF}"))
                return False
            parts = body[4:].split(b"\x00")
            params = dict(zip(parts[0::2], parts[1::2]))
            user = params.get(b"user", b"").decode(errors="replace")
            return self._authenticate(user)

    def _authenticate(self, user: str) -> bool:
        if self.scram is not None and not self._password_ok():
            self.sock.sendall(pg.notice(b"E", "FATAL", "28P01", f"password authentication failed for user "
                                        f"{user!r}: the password is the server's --token"))
            return False
        self.send(pg.message(b"R", struct.pack("!i", 0)))
        for name in ("server_version", "server_encoding", "client_encoding", "DateStyle", "TimeZone",
                     "IntervalStyle", "integer_datetimes", "standard_conforming_strings", "is_superuser"):
            self.send(pg.message(b"S", pg.cstr(name) + pg.cstr(self.settings[name.lower()])))
        self.send(pg.message(b"S", pg.cstr("session_authorization") + pg.cstr(user)))
        self.send(pg.message(b"K", struct.pack("!ii", self.pid, self.secret)), pg.ready(b"I"))
        self.flush()
        return True

    def _password_ok(self) -> bool:
        """The SCRAM exchange, in the turn the login throttle gives this client's address."""
        if self.throttle is not None:
            self.throttle.wait(self.address)
        ok = self.scram is not None and self.scram.run(self._send_auth, self._password_message)
        if self.throttle is not None:
            (self.throttle.succeeded if ok else self.throttle.failed)(self.address)
        return ok

    def _send_auth(self, code: int, data: bytes) -> None:
        self.sock.sendall(pg.message(b"R", struct.pack("!i", code) + data))

    def _password_message(self) -> bytes:
        kind, body = self.read_message()
        if kind != b"p":
            raise Disconnect
        return body

    def _cancel_other(self, pid: int, secret: int) -> None:
        other = self.sessions.get(pid)
        if other is not None and other.secret == secret and other.cur is not None:
            other.cancelled = True
            other.cur.interrupt()

    # --- the message loop ---------------------------------------------------------------------

    def serve(self) -> None:
        with self.service.cursor() as cur:
            self.cur = cur
            self.sessions[self.pid] = self
            try:
                self._loop()
            finally:
                self.sessions.pop(self.pid, None)
                self.cur = None

    def _loop(self) -> None:
        failed = False  # an extended-query error: skip everything until Sync
        while True:
            kind, body = self.read_message()
            if kind == b"X":
                return
            if kind == b"Q":
                self.simple_query(body.rstrip(b"\x00").decode())
            elif kind == b"S":
                failed = False
                self.portals.pop("", None)  # the unnamed portal's rows are not needed after Sync
                self.send(pg.ready(self.status))
            elif kind == b"H":
                pass
            elif not failed:
                try:
                    self.extended(kind, body)
                except Exception as exc:  # noqa: BLE001 - any failure is the client's ErrorResponse
                    self._failed(exc)
                    failed = True
            if kind in (b"Q", b"S", b"H"):
                self.flush()

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, ServeError) and exc.status == 408 and self.cancelled:
            exc = ServeError(408, "cancelled: the client cancelled the statement (CancelRequest)")
        self.cancelled = False
        if self.status == b"T":
            self.status = b"E"
        self.send(pg.error_response(exc))

    def simple_query(self, text: str) -> None:
        started = time.monotonic()
        try:
            self.service.check_size(text)  # before split_script parses it
        except ServeError as exc:
            self._failed(exc)
            self.send(pg.ready(self.status))
            return
        try:
            pieces = [piece for piece, _, _ in split_script(text)] if text.strip() else []
        except Exception:  # noqa: BLE001 - text sqlglot cannot split: one statement, DuckDB's error
            pieces = [text]
        if not pieces:
            self.send(pg.message(b"I"))
        for sql in pieces:
            try:
                result = self.execute(sql, None, started)
                self.send_result(sql, result, describe=True)
            except Exception as exc:  # noqa: BLE001 - reported, the connection goes on
                self._failed(exc)
                break
        self.send(pg.ready(self.status))

    # --- running one statement ----------------------------------------------------------------

    def execute(self, sql: str, params: list[Any] | None, started: float | None = None) -> Result:
        """Run one statement under the service's rules; client settings are answered here. The
        time limit counts from `started` (when the statement's message came), default now."""
        started = time.monotonic() if started is None else started
        if self.status == b"E" and self.service.transaction(sql) != "end":
            raise pg.PgError("25P02", "current transaction is aborted (an earlier statement failed): ROLLBACK to go on")
        if (found := _SET.match(sql)) and found.group(1).lower() in CLIENT_SETTINGS:
            return self._set(found.group(1).lower(), found.group(2))
        if (found := _SHOW.match(sql)) and found.group(1).lower() in CLIENT_SETTINGS:
            name = found.group(1).lower()
            return Result([name], [(self.settings[name],)], types=["VARCHAR"])
        # 403 for a write on a read-only server; BEGIN / COMMIT pass (psycopg sends BEGIN itself)
        transaction = self.service.check_allowed(sql).access == TRANSACTION
        if transaction and self.status == b"E":
            self.cur.execute("ROLLBACK")
            self.status = b"I"
            return Result([], [])
        self.cancelled = False
        try:
            result = self.service.run(self.cur, sql, params or None, started)
        except errors.Error as exc:
            if "pg_catalog." in sql.lower() and isinstance(exc, errors.CatalogException):
                raise pg.CatalogQueryError(exc) from exc
            raise
        if transaction:
            self.status = b"T" if first_word(sql) in ("BEGIN", "START") else b"I"
        return result

    def _set(self, name: str, value: str) -> Result:
        value = value.strip().strip("'\"")
        if name == "client_encoding" and value.upper().replace("-", "") not in ("UTF8", "UNICODE"):
            raise pg.PgError("22023", f"SET client_encoding: only UTF8 is supported, got {value!r}")
        self.settings[name] = value
        return Result([], [])

    def send_result(self, sql: str, result: Result, describe: bool, limit: int = 0,
                    portal: Portal | None = None) -> None:
        """RowDescription (when asked), DataRows, then CommandComplete or PortalSuspended."""
        word = first_word(sql) or "SELECT"
        counted = word in ("INSERT", "UPDATE", "DELETE") and result.columns == ["Count"]
        if not result.columns or counted:
            count = result.rows[0][0] if counted and result.rows else 0
            tag = f"INSERT 0 {count}" if word == "INSERT" else f"{word} {count}" if counted else word
            self.send(pg.message(b"C", pg.cstr(tag)))
            return
        if describe:
            self.send(pg.row_description(result.columns, result.types))
        start = portal.sent if portal else 0
        stop = len(result.rows) if not limit else min(len(result.rows), start + limit)
        self.send(*(pg.data_row(row) for row in result.rows[start:stop]))
        if portal is not None and stop < len(result.rows):
            portal.sent = stop
            self.send(pg.message(b"s"))
            return
        if result.truncated:
            self.send(pg.notice(b"N", "WARNING", "01000", f"result truncated to {len(result.rows)} rows "
                                f"(the server's --max-rows)"))
        self.send(pg.message(b"C", pg.cstr(f"SELECT {len(result.rows)}")))

    # --- extended query -----------------------------------------------------------------------

    def extended(self, kind: bytes, body: bytes) -> None:
        if kind == b"P":
            self._parse(body)
        elif kind == b"B":
            self._bind(body)
        elif kind == b"D":
            self._describe(body)
        elif kind == b"E":
            name, rest = pg.cstring(body)
            (limit,) = struct.unpack("!i", rest[:4])
            portal = self._portal(name)
            if portal.result is None:
                portal.result = self.execute(portal.sql, portal.params)
            self.send_result(portal.sql, portal.result, describe=False, limit=limit, portal=portal)
        elif kind == b"C":
            which, name = body[:1], pg.cstring(body[1:])[0]
            (self.statements if which == b"S" else self.portals).pop(name, None)
            self.send(pg.message(b"3"))
        else:
            raise pg.PgError("08P01", f"unsupported protocol message {kind!r}")

    def _parse(self, body: bytes) -> None:
        name, rest = pg.cstring(body)
        sql, rest = pg.cstring(rest)
        (count,) = struct.unpack("!h", rest[:2])
        oids = list(struct.unpack(f"!{count}i", rest[2:2 + 4 * count]))
        self.service.check_size(sql)
        self.statements.pop(name, None)  # a Parse of a name already in use replaces it
        if name:  # the unnamed statement is one slot, replaced by each Parse: no cap needed
            self._check_room("prepared statement", self.statements, len(sql.encode()))
        self.statements[name] = (sql, oids)
        self.send(pg.message(b"1"))

    def _check_room(self, what: str, held: dict, size: int) -> None:
        """Refuse (54000) one more prepared statement or portal past the connection's caps."""
        settings = self.service.settings
        if sum(1 for name in held if name) >= settings.max_prepared:
            raise pg.PgError("54000", f"{what} refused: this connection already holds {settings.max_prepared} "
                                      f"(at most {settings.max_prepared}); close some (DEALLOCATE, Close)")
        used = sum(len(sql.encode()) for sql, _ in self.statements.values()) + \
            sum(p.size for p in self.portals.values())
        if used + size > settings.max_prepared_bytes:
            raise pg.PgError("54000", f"{what} of {size} bytes refused: this connection's prepared statements "
                                      f"and portals would hold {used + size} bytes (at most "
                                      f"{settings.max_prepared_bytes}); close some (DEALLOCATE, Close)")

    def _bind(self, body: bytes) -> None:
        portal, rest = pg.cstring(body)
        name, rest = pg.cstring(rest)
        if name not in self.statements:
            raise pg.PgError("26000", f"unknown prepared statement {name!r}")
        sql, oids = self.statements[name]
        (nformats,) = struct.unpack("!h", rest[:2])
        formats = struct.unpack(f"!{nformats}h", rest[2:2 + 2 * nformats])
        pos = 2 + 2 * nformats
        (nparams,) = struct.unpack("!h", rest[pos:pos + 2])
        pos += 2
        params = []
        for i in range(nparams):
            (size,) = struct.unpack("!i", rest[pos:pos + 4])
            pos += 4
            data = None if size < 0 else rest[pos:pos + size]
            pos += max(size, 0)
            binary = (formats[i] if nformats > 1 else formats[0] if nformats else 0) == 1
            params.append(pg.param_value(data, oids[i] if i < len(oids) else 0, binary, i + 1))
        (nresult,) = struct.unpack("!h", rest[pos:pos + 2])
        if any(struct.unpack(f"!{nresult}h", rest[pos + 2:pos + 2 + 2 * nresult])):
            raise pg.PgError("0A000", "binary result format is not supported: ask for text results")
        self.portals.pop(portal, None)  # a Bind to a portal name in use replaces it
        if portal:  # the unnamed portal, like the unnamed statement, is one slot
            self._check_room("portal", self.portals, len(rest))
        self.portals[portal] = Portal(sql, params, size=len(rest))
        self.send(pg.message(b"2"))

    def _describe(self, body: bytes) -> None:
        which, name = body[:1], pg.cstring(body[1:])[0]
        if which == b"S":
            if name not in self.statements:
                raise pg.PgError("26000", f"unknown prepared statement {name!r}")
            sql, oids = self.statements[name]
            count = max([int(n) for n in re.findall(r"\$(\d+)", sql)] + [len(oids)])
            types = [(oids[i] if i < len(oids) and oids[i] else 25) for i in range(count)]
            # the row shape is known only once the statement runs: the portal's Describe gives it
            self.send(pg.message(b"t", struct.pack(f"!h{count}i", count, *types)), pg.message(b"n"))
            return
        portal = self._portal(name)
        if portal.result is None:  # run now: Execute, which follows, sends the rows
            portal.result = self.execute(portal.sql, portal.params)
        counted = first_word(portal.sql) in ("INSERT", "UPDATE", "DELETE") and portal.result.columns == ["Count"]
        if portal.result.columns and not counted:
            self.send(pg.row_description(portal.result.columns, portal.result.types))
        else:
            self.send(pg.message(b"n"))

    def _portal(self, name: str) -> Portal:
        if name not in self.portals:
            raise pg.PgError("34000", f"unknown portal {name!r}")
        return self.portals[name]


class _Handler(socketserver.BaseRequestHandler):
    server: "_TCPServer"

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        owner = self.server.owner
        conn = Connection(owner.service, self.request, owner.scram, owner.sessions, owner.throttle,
                          str(self.client_address[0]))
        try:
            if conn.startup():
                conn.serve()
        except (Disconnect, OSError, struct.error, ValueError):
            pass  # the client went away, or sent bytes that are not the protocol: drop it


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "PgServer"


class PgServer:
    """The PostgreSQL protocol server of `sqlrec serve`, on its own threads."""

    def __init__(self, service: Service, host: str, port: int, token: str | None):
        self.service = service
        self.scram = Scram(token) if token else None
        self.throttle = LoginThrottle()
        self.sessions: dict[int, Connection] = {}
        _TCPServer.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._tcp = _TCPServer((host, port), _Handler)
        self._tcp.owner = self
        self.port: int = self._tcp.server_address[1]
        self._running = threading.Event()

    def serve_forever(self) -> None:
        self._running.set()
        self._tcp.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        if self._running.is_set():
            self._tcp.shutdown()
        self._tcp.server_close()
