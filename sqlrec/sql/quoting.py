"""The one way sqlrec writes names and strings into SQL text.

``quote_ident`` always quotes (sqlrec's own generated SQL: a user's column named ``order`` or
``a"b`` must stay a column); ``quote_name`` quotes only where it must (statements printed back
to the user read as they were written); ``quote_literal`` is a string constant.
"""

from __future__ import annotations

import re

_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words the model grammar itself gives a meaning to; a name spelled like one must be quoted.
_GRAMMAR_WORDS = frozenset(
    {"FROM", "PREDICT", "USING", "OPTIONS", "AS", "MODEL", "MODELS", "IF", "OR", "REPLACE",
     "SELECT", "WITH", "TRUE", "FALSE", "NULL", "ARRAY", "TABLE", "VALUES", "DESC", "DESCRIBE"}
)


def quote_ident(name: str) -> str:
    """A double-quoted identifier, whatever characters the name holds."""
    return '"' + name.replace('"', '""') + '"'


def quote_name(name: str) -> str:
    """A model, column or database name as SQL text, quoted only where it must be."""
    if _SAFE_NAME.fullmatch(name) and name.upper() not in _GRAMMAR_WORDS:
        return name
    return quote_ident(name)


def quote_literal(text: str) -> str:
    """A single-quoted SQL string constant."""
    return "'" + text.replace("'", "''") + "'"
