"""Statements as text: where they end, how a script splits, which ones only count rows.

The shell needs to know when Enter should run the input; the CLI, the shell and tools/readme.py
need to know which results are a bare row count. Nothing here runs SQL.
"""

from __future__ import annotations

import re
from typing import Any

EXIT_WORDS = ("exit", "quit", "\\q")

# DuckDB answers these with a lone "Count" column, which is not worth printing as a table.
_COUNT_STATEMENTS = {"INSERT", "UPDATE", "DELETE", "CREATE", "COPY", "MERGE", "DROP", "ALTER", "UPSERT"}


def tokenize(text: str) -> list[Any]:
    """sqlglot's DuckDB tokens of `text` (raises on an unterminated string or comment)."""
    from sqlglot.dialects.duckdb import DuckDB

    return DuckDB().tokenize(text)


def split(text: str) -> list[tuple[str, int, int]]:
    """(statement, line, column) for every statement of a script (sqlrec's own splitter)."""
    from sqlrec.sql import split_script

    return split_script(text)


def is_dot_command(text: str) -> bool:
    return text.lstrip().startswith(".")


def is_complete(text: str) -> bool:
    """True when Enter should run `text`: it ends with a `;` outside strings and comments.

    Empty input, dot commands and `exit`/`quit` are complete as they stand.
    """
    stripped = text.strip()
    if not stripped or is_dot_command(stripped) or stripped.lower() in EXIT_WORDS:
        return True
    try:
        tokens = tokenize(text)
    except Exception:  # an unterminated string, quoted name or comment: keep reading
        return False
    if not tokens:  # only comments
        return not _open_block_comment(text)
    return tokens[-1].text == ";" and tokens[-1].token_type.name == "SEMICOLON"


def _open_block_comment(text: str) -> bool:
    return text.rfind("/*") > text.rfind("*/")


def is_row_count(sql: str, columns: list[str] | None) -> bool:
    """True for the lone "Count" column DuckDB answers DML and CREATE TABLE AS with."""
    if columns != ["Count"]:
        return False
    first = re.match(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*([A-Za-z]+)", sql, re.S)
    return bool(first) and first.group(1).upper() in _COUNT_STATEMENTS
