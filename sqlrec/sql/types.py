"""DuckDB type names: one classifier for every place that asks "is this a number, text, a list?",
and the allow-list that a type name must pass before sqlrec writes it into SQL.

A model stores the DuckDB types of its id columns and casts its ids back to them when it is
loaded. A database file can be crafted, so a stored type name is SQL text from outside: it
reaches SQL only when ``check_type`` accepts it (a known scalar type, DECIMAL(p, s), an ENUM of
plain string literals, or a list/array of those), never as given.
"""

from __future__ import annotations

import re

INTEGERS = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                      "UINTEGER", "UBIGINT", "UHUGEINT", "INT1", "INT2", "INT4", "INT8", "INT", "INT16",
                      "INT32", "INT64", "INT128", "LONG", "SHORT", "SIGNED"})
FLOATS = frozenset({"FLOAT", "DOUBLE", "REAL", "DECIMAL", "NUMERIC", "FLOAT4", "FLOAT8"})
TEXTS = frozenset({"VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "ENUM", "UUID"})
BOOLS = frozenset({"BOOLEAN", "BOOL", "LOGICAL"})
TEMPORALS = frozenset({"DATE", "TIME", "TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE",
                       "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATETIME", "INTERVAL",
                       "TIME WITH TIME ZONE", "TIMETZ"})
# BIT is left out on purpose: Arrow carries it as raw bytes that do not cast back (ids would be lost).
OTHERS = frozenset({"BLOB", "BYTEA", "VARINT", "BIGNUM"})
_SCALARS = INTEGERS | FLOATS | TEXTS | BOOLS | TEMPORALS | OTHERS

_LIST_SUFFIX = re.compile(r"\[\d*\]$")
_DECIMAL = re.compile(r"(DECIMAL|NUMERIC)\s*\(\s*\d{1,2}\s*(,\s*\d{1,2}\s*)?\)")
_VARCHAR_LEN = re.compile(r"(VARCHAR|CHAR|BPCHAR)\s*\(\s*\d{1,9}\s*\)")
_ENUM = re.compile(r"ENUM\s*\(\s*'(?:[^']|'')*'(?:\s*,\s*'(?:[^']|'')*')*\s*\)")


def _base(type_name: str) -> str:
    return re.split(r"[(\s]", type_name.strip().upper(), maxsplit=1)[0]


def type_class(type_name: str) -> str | None:
    """'int', 'float', 'text', 'bool', 'list', 'time' or None (anything else) for a type name."""
    t = type_name.strip().upper()
    if _LIST_SUFFIX.search(t):
        return "list"
    base = _base(t)
    if base in INTEGERS:
        return "int"
    if base in FLOATS:
        return "float"
    if base in TEXTS:
        return "text"
    if base in BOOLS:
        return "bool"
    if base in ("DATE", "TIMESTAMP", "TIMESTAMPTZ", "DATETIME") or base.startswith("TIMESTAMP_"):
        return "time"
    return None


def is_numeric(type_name: str) -> bool:
    return type_class(type_name) in ("int", "float")


def element_type(type_name: str) -> str:
    """The element type of a list / array type name (the name itself otherwise)."""
    return _LIST_SUFFIX.sub("", type_name.strip())


def check_type(type_name: object) -> str | None:
    """The type name when it is on the allow-list, else None."""
    if not isinstance(type_name, str) or not type_name.strip() or len(type_name) > 10_000:
        return None
    t = type_name.strip()
    while _LIST_SUFFIX.search(t):
        t = _LIST_SUFFIX.sub("", t).strip()
    upper = t.upper()
    if upper in _SCALARS or _DECIMAL.fullmatch(upper) or _VARCHAR_LEN.fullmatch(upper):
        return type_name.strip()
    if _ENUM.fullmatch(t):
        return type_name.strip()
    return None
