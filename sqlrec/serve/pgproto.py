"""PostgreSQL v3 protocol pieces for sqlrec.serve.pgwire: framing, type OIDs, values as text, SQLSTATEs.

Only what the server side of the frontend/backend protocol needs (postgresql.org/docs/current/
protocol-message-formats.html): results go out in text format, parameters come in as text or as
the binary forms of the scalar types psycopg sends (ints, floats, bool, text, bytea).
"""

from __future__ import annotations

import math
import re
import struct
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlrec import errors
from sqlrec.serve.service import ServeError

SSL_REQUEST, GSS_REQUEST, CANCEL_REQUEST, PROTOCOL_3 = 80877103, 80877104, 80877102, 196608

# DuckDB type name (its first word) -> PostgreSQL type OID. Anything else (lists, structs, maps,
# intervals, unsigned 64-bit and wider ints) goes out as text (25) or numeric (1700).
OIDS = {
    "BOOLEAN": 16, "TINYINT": 21, "SMALLINT": 21, "UTINYINT": 21, "INTEGER": 23, "USMALLINT": 23,
    "BIGINT": 20, "UINTEGER": 20, "UBIGINT": 1700, "HUGEINT": 1700, "UHUGEINT": 1700, "DECIMAL": 1700,
    "FLOAT": 700, "DOUBLE": 701, "VARCHAR": 25, "DATE": 1082, "TIME": 1083, "TIMESTAMP": 1114,
    "TIMESTAMP_S": 1114, "TIMESTAMP_MS": 1114, "TIMESTAMP_NS": 1114, "TIMESTAMP WITH TIME ZONE": 1184,
    "UUID": 2950, "BLOB": 17, "JSON": 114,
}
_SIZES = {16: 1, 21: 2, 23: 4, 20: 8, 700: 4, 701: 8, 1082: 4, 1083: 8, 1114: 8, 1184: 8, 2950: 16}


def type_oid(duck_type: str) -> int:
    name = duck_type.upper()
    if name.endswith("]") or name.startswith(("STRUCT", "MAP", "UNION")):
        return 25
    if name.startswith("TIMESTAMP WITH TIME ZONE"):
        return 1184
    return OIDS.get(re.split(r"[ (]", name, maxsplit=1)[0], 25)


def text_value(value: Any) -> bytes | None:
    """A DuckDB value in PostgreSQL's text format (None stays NULL)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, float):
        if math.isnan(value):
            return b"NaN"
        if math.isinf(value):
            return b"Infinity" if value > 0 else b"-Infinity"
        return repr(value).encode()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ").encode()
    if isinstance(value, (date, time, Decimal, uuid.UUID, int)):
        return str(value).encode()
    if isinstance(value, timedelta):
        return f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds".encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b"\\x" + bytes(value).hex().encode()
    return str(value).encode()


_BINARY = {16: lambda b: b != b"\x00", 21: lambda b: struct.unpack("!h", b)[0],
           23: lambda b: struct.unpack("!i", b)[0], 20: lambda b: struct.unpack("!q", b)[0],
           700: lambda b: struct.unpack("!f", b)[0], 701: lambda b: struct.unpack("!d", b)[0],
           25: lambda b: b.decode(), 1043: lambda b: b.decode(), 0: lambda b: b.decode(), 17: bytes}
_TEXT = {16: lambda s: s.lower() in ("t", "true", "1", "on", "yes"), 21: int, 23: int, 20: int,
         700: float, 701: float, 1700: Decimal}


def param_value(data: bytes | None, oid: int, binary: bool, position: int) -> Any:
    """A bound parameter from Bind as a Python value for DuckDB."""
    if data is None:
        return None
    try:
        if binary:
            if oid not in _BINARY:
                raise ServeError(400, f"parameter ${position}: binary format of type OID {oid} "
                                      "is not supported (send it as text)")
            return _BINARY[oid](data)
        text = data.decode()
        return _TEXT[oid](text) if oid in _TEXT else text
    except (ValueError, struct.error, ArithmeticError, UnicodeDecodeError) as exc:
        raise ServeError(400, f"parameter ${position}: cannot read it as type OID {oid} ({exc})") from None


# --- messages -------------------------------------------------------------------------------

def message(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(payload) + 4) + payload


def cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


def cstring(data: bytes) -> tuple[str, bytes]:
    """A NUL-terminated string at the start of `data`, and the bytes after it."""
    end = data.index(b"\x00")
    return data[:end].decode(), data[end + 1:]


def row_description(columns: list[str], types: list[str]) -> bytes:
    parts = [struct.pack("!h", len(columns))]
    for name, duck_type in zip(columns, types):
        oid = type_oid(duck_type)
        parts.append(cstr(name) + struct.pack("!ihihih", 0, 0, oid, _SIZES.get(oid, -1), -1, 0))
    return message(b"T", b"".join(parts))


def data_row(row: tuple) -> bytes:
    parts = [struct.pack("!h", len(row))]
    for value in row:
        data = text_value(value)
        parts.append(struct.pack("!i", -1) if data is None else struct.pack("!i", len(data)) + data)
    return message(b"D", b"".join(parts))


def notice(kind: bytes, severity: str, code: str, text: str) -> bytes:
    fields = b"S" + cstr(severity) + b"V" + cstr(severity) + b"C" + cstr(code) + b"M" + cstr(text)
    return message(kind, fields + b"\x00")


def error_response(exc: BaseException) -> bytes:
    return notice(b"E", "ERROR", sqlstate(exc), message_of(exc))


def ready(status: bytes) -> bytes:
    return message(b"Z", status)


def message_of(exc: BaseException) -> str:
    if isinstance(exc, ServeError):
        return exc.message
    return str(exc) or type(exc).__name__


class PgError(ServeError):
    """An error of the protocol layer itself, with its own SQLSTATE."""

    def __init__(self, code: str, text: str):
        super().__init__(400, text)
        self.sqlstate = code


class CatalogQueryError(PgError):
    """A PostgreSQL catalog query (psql's \\d, \\l) that DuckDB's pg_catalog cannot answer."""

    def __init__(self, cause: BaseException):
        super().__init__("0A000", "PostgreSQL catalog queries (psql's \\d, \\dt, \\l) are not supported by "
                                  "sqlrec serve: use SHOW TABLES, DESCRIBE table, SHOW MODELS or DESCRIBE model "
                                  f"(DuckDB said: {str(cause).splitlines()[0]})")


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE a PostgreSQL client would expect for an error raised while serving (by its class)."""
    if isinstance(exc, PgError):
        return exc.sqlstate
    if isinstance(exc, ServeError):
        return {401: "28P01", 403: "25006", 408: "57014", 413: "54000"}.get(exc.status, "22023" if exc.status == 400 else "XX000")
    if isinstance(exc, errors.Cancelled):
        return "57014"
    if isinstance(exc, errors.OutOfMemoryException):
        return "53200"
    if isinstance(exc, (errors.ModelExistsError, errors.AlreadyExistsError)):
        return "42P07"
    # "unknown model" is sqlrec's own hint on a QueryError (SELECT ... USING over a misspelt model)
    if isinstance(exc, (errors.ModelNotFoundError, errors.CatalogException)) or \
            isinstance(exc, errors.QueryError) and "unknown model" in message_of(exc):
        return "42P01"
    if isinstance(exc, (errors.ParseError, errors.ParserException, errors.SyntaxException)):
        return "42601"
    if isinstance(exc, (errors.OptionError, errors.UnknownIdError)):
        return "22023"
    if isinstance(exc, (errors.ColumnError, errors.BinderException)):
        return "42703"
    if isinstance(exc, (errors.ReadOnlyError, errors.PermissionException)):
        return "25006"
    if isinstance(exc, errors.DataError):
        return "22000"
    if isinstance(exc, errors.Error):
        return "42000" if isinstance(exc, errors.ProgrammingError) else "58000"
    return "XX000"
