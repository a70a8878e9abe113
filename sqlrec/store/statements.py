"""DuckDB's own parser and tokenizer, asked what a text's statements are (nothing runs).

The read-only rule (sqlrec.sql.classify) decides by what DuckDB will run, so it asks DuckDB's
parser rather than guessing from first words: ``WITH x AS (...) INSERT ...`` is an INSERT, and
``SHOW t`` a SELECT. The parser has a connection of its own (an empty in-memory database, no
file or network access): parsing reads nothing from the caller's database.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import duckdb

from sqlrec import errors
from sqlrec.store.session import Session

# Words that may stand between EXPLAIN and the statement it explains (DuckDB's grammar:
# EXPLAIN [ANALYZE] statement | EXPLAIN (option, ...) statement; VERBOSE as PostgreSQL writes it).
_EXPLAIN_WORDS = frozenset({"ANALYZE", "ANALYSE", "VERBOSE"})
# An EXPLAIN's text gives at most this many places where the explained statement may start;
# more means text no one writes, and the classifier refuses it.
_MAX_STARTS = 8

_parser: duckdb.DuckDBPyConnection | None = None
_lock = threading.Lock()  # one parser connection for every thread of the process


class Parsed(NamedTuple):
    """One statement as DuckDB's parser reads it."""

    type: str  # DuckDB's StatementType name: SELECT, INSERT, SET, EXPLAIN, TRANSACTION ...; UNKNOWN
    text: str


class Script(NamedTuple):
    """A text DuckDB's parser reads, as sqlrec's router may run it without its own parser."""

    statements: tuple[Parsed, ...]  # each statement's type, and its text from its first token to its last
    words: tuple[str, ...]  # every token but comments, in order; names and strings unquoted, lower-cased


class DuckDBParser:
    """What sqlrec.sql.classify asks of DuckDB (an object, so that the sql layer never imports it).

    With a session, its own handle parses (the statement is about to run there anyway, and a
    handle of its own costs the first statement of a process about 15 ms); without one, the
    parser's connection does."""

    def __init__(self, session: Session | None = None) -> None:
        self._session = session

    def statements(self, sql: str) -> list[Parsed]:
        """Each statement of `sql`, as DuckDB's parser reads it. A type this duckdb module has no
        name for is 'UNKNOWN'. Text DuckDB cannot parse raises sqlrec's ProgrammingError with
        DuckDB's message (it would fail the same way if run)."""
        global _parser
        if self._session is not None:
            try:
                found = self._session.duck.extract_statements(sql)
            except duckdb.Error as exc:
                raise errors.wrap_duckdb(exc) from exc
            return [Parsed(_type_name(st), st.query) for st in found]
        with _lock:
            if _parser is None:
                _parser = duckdb.connect(":memory:", config={"enable_external_access": False})
            try:
                found = _parser.extract_statements(sql)
            except duckdb.Error as exc:
                raise errors.wrap_duckdb(exc) from exc
        return [Parsed(_type_name(st), st.query) for st in found]

    def script(self, sql: str) -> Script | None:
        """`sql` read by DuckDB's parser and tokenizer (nothing runs); None when DuckDB cannot
        read it (sqlrec's own statements, for one) or its statements and tokens do not agree.

        A statement's text runs from its first token to its last, comments around it left out,
        as sqlrec's own splitter cuts it (sqlrec.sql.split_script), so DuckDB runs and quotes in
        its errors the same text either way. The words let the caller see every name the text
        holds: a quoted name and a string (``FROM 'm'`` reads table m) count by their content."""
        try:
            found = self.statements(sql)
            every = duckdb.tokenize(sql)
        except (errors.Error, duckdb.Error, RuntimeError):
            return None
        raw = sql.encode()  # the tokenizer's positions count bytes
        ends = [pos for pos, _ in every[1:]] + [len(raw)]  # only whitespace lies between tokens
        pieces: list[str] = []
        words: list[str] = []
        first = last = None
        for (start, kind), end in zip(every, ends):
            if kind == duckdb.token_type.comment:
                continue
            token = raw[start:end].rstrip()
            if kind == duckdb.token_type.operator and b";" in token:
                if token != b";":
                    return None  # a ';' glued to other characters: not a plain statement boundary
                if first is not None:
                    pieces.append(raw[first:last].decode())
                first = last = None
                continue
            if first is None:
                first = start
            last = start + len(token)
            words.append(_content(token.decode(errors="replace"), kind).lower())
        if first is not None:
            pieces.append(raw[first:last].decode())
        if len(pieces) != len(found) or not pieces:
            return None
        return Script(tuple(Parsed(st.type, text) for st, text in zip(found, pieces)), tuple(words))

    def explained(self, sql: str) -> list[str]:
        """For text that starts with EXPLAIN: every text the explained statement may start at
        (after EXPLAIN, after each ANALYZE / VERBOSE word, after a parenthesized option list);
        [] for other text. Read with DuckDB's tokenizer, so comments (nested ones included) are
        skipped exactly as DuckDB skips them; one of the texts is the statement DuckDB runs."""
        raw = sql.encode()  # the tokenizer's positions count bytes
        try:
            every = duckdb.tokenize(sql)
        except (duckdb.Error, RuntimeError):
            return []
        # a token ends where the next one (comments included) starts
        ends = [pos for pos, _ in every[1:]] + [len(raw)]
        tokens = [(pos, kind, end) for (pos, kind), end in zip(every, ends) if kind != duckdb.token_type.comment]
        if not tokens or _word(raw, tokens, 0) != "EXPLAIN":
            return []
        starts: list[str] = []
        i = 1
        while i < len(tokens) and len(starts) < _MAX_STARTS:
            starts.append(raw[tokens[i][0]:].decode(errors="replace"))
            if _word(raw, tokens, i) in _EXPLAIN_WORDS:
                i += 1
            elif raw[tokens[i][0]:tokens[i][0] + 1] == b"(":
                i = _after_group(raw, tokens, i)
            else:
                break
        return starts


def _content(token: str, kind: object) -> str:
    """What a name or a string token names: "a""b" -> a"b, 'it''s' -> it's, E'x' -> x, $t$x$t$ -> x."""
    if kind == duckdb.token_type.identifier and token.startswith('"') and token.endswith('"') and len(token) > 1:
        return token[1:-1].replace('""', '"')
    if kind != duckdb.token_type.string_const:
        return token
    if token.startswith("$"):
        tag = token[:token.find("$", 1) + 1]
        return token[len(tag):len(token) - len(tag)] if len(token) >= 2 * len(tag) else token
    quote = token.find("'")
    if quote < 0 or not token.endswith("'") or len(token) - quote < 2:
        return token
    inner = token[quote + 1:-1]
    return inner.replace("''", "'") if quote == 0 else inner


def _type_name(st: object) -> str:
    try:
        return st.type.name  # type: ignore[attr-defined]
    except ValueError:  # a StatementType newer than this duckdb module's enum: unknown, refused
        return "UNKNOWN"


def _word(raw: bytes, tokens: list[tuple[int, object, int]], i: int) -> str:
    start, _, end = tokens[i]
    return raw[start:end].decode(errors="replace").strip().upper()


def _after_group(raw: bytes, tokens: list[tuple[int, object, int]], i: int) -> int:
    """The index of the token after the parenthesized group that opens at token i."""
    depth = 0
    for j in range(i, len(tokens)):
        char = raw[tokens[j][0]:tokens[j][0] + 1]
        if tokens[j][1] == duckdb.token_type.operator and char in (b"(", b")"):
            depth += 1 if char == b"(" else -1
            if depth == 0:
                return j + 1
    return len(tokens)
