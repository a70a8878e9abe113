"""Entry points: split a script into statements and turn each into a statement object."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError, TokenError
from sqlglot.tokens import Token, TokenType

from sqlrec.errors import OptionError, ParseError

from sqlrec.sql.dialect import SqlRec
from sqlrec.sql.grammar import StatementError
from sqlrec.sql.nodes import SqlRecModelStatement
from sqlrec.sql.statements import Passthrough, Query, Statement

_DIALECT = SqlRec()
# Trees that are a bare expression, not a statement (`CHECKPOINT` parses as a column): DuckDB's.
_EXPRESSIONS = (exp.Condition, exp.Alias, exp.Tuple, exp.Identifier, exp.Star)


def _position(text: str, offset: int, line: int, col: int) -> tuple[int, int]:
    """Line and column of text[offset], given that text[0] sits at (line, col)."""
    newlines = text.count("\n", 0, offset)
    if not newlines:
        return line, col + offset
    return line + newlines, offset - text.rfind("\n", 0, offset)


def _unterminated(text: str, offset: int) -> str:
    rest = text[offset:]
    if rest.startswith("/*"):
        return "unterminated /* comment: missing */"
    if rest.startswith("$"):
        end = rest.find("$", 1)
        tag = rest[: end + 1] if end > 0 else "$$"
        return f"unterminated {tag} string: missing the closing {tag}"
    quote = next((c for c in rest[:3] if c in "'\""), None)
    if quote == '"':
        return 'unterminated quoted identifier: missing the closing "'
    if quote == "'":
        return "unterminated string: missing the closing '"
    return f"cannot read the SQL starting at {rest[:20]!r}"


def _tokenize(text: str, line: int, col: int) -> list[Token]:
    tokenizer = _DIALECT.tokenizer()
    try:
        return tokenizer.tokenize(text)
    except TokenError:
        # the tokenizer core remembers where the failing token began; its message only quotes
        # a window of text around it
        offset = getattr(getattr(tokenizer, "_core", None), "_start", 0)
        if not isinstance(offset, int) or not 0 <= offset < len(text):
            offset = 0
        raise ParseError(_unterminated(text, offset), *_position(text, offset, line, col)) from None


def split_script(text: str) -> list[tuple[str, int, int]]:
    """Split a script into (statement_text, line, col) with sqlglot's DuckDB tokenizer.

    A ';' inside a string, $$ string, quoted identifier or comment does not split. Each text runs
    from the statement's first token to its last, so comments before and after it (and pieces
    holding only comments) are left out; line/col are 1-based.
    """
    pieces: list[tuple[str, int, int]] = []
    current: list[Token] = []

    def flush() -> None:
        if current:
            start, end = current[0].start, current[-1].end + 1
            pieces.append((text[start:end], *_position(text, start, 1, 1)))
            current.clear()

    for token in _tokenize(text, 1, 1):
        if token.token_type == TokenType.SEMICOLON:
            flush()
        else:
            current.append(token)
    flush()
    return pieces


def parse_statement(text: str, line: int = 1, col: int = 1) -> Statement:
    """Parse one statement (trailing ';' optional). line/col: where text[0] sits in its script."""
    tokens = _tokenize(text, line, col)
    while tokens and tokens[-1].token_type == TokenType.SEMICOLON:
        tokens.pop()
    if not tokens:
        raise ParseError("empty statement: nothing but whitespace, comments or ';'", line, col)
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            raise ParseError(
                "expected one statement, found ';' followed by more (use parse_script)",
                *_position(text, token.start, line, col),
            )
    start = tokens[0].start
    statement_text = text[start : tokens[-1].end + 1]
    statement_line, statement_col = _position(text, start, line, col)

    parser = _DIALECT.parser(error_level=ErrorLevel.IMMEDIATE)
    try:
        tree = parser.parse(tokens, text)[0]
    except StatementError as error:
        raise ParseError(error.message, *_position(text, error.offset, line, col)) from None
    except (SqlglotError, RecursionError, ValueError, TypeError, KeyError, IndexError):
        if parser.options_error is not None:
            error = parser.options_error
            raise ParseError(error.message, *_position(text, error.offset, line, col)) from None
        # sqlglot does not know it; DuckDB may, and will say so if not
        return Passthrough(text=statement_text, line=statement_line, col=statement_col)

    statement: Statement
    if isinstance(tree, SqlRecModelStatement):
        statement = tree.statement
    elif tree is None or isinstance(tree, (exp.Command, *_EXPRESSIONS)):
        statement = Passthrough()
    else:
        statement = Query(tree)
    statement.text, statement.line, statement.col = statement_text, statement_line, statement_col
    return statement


def parse_script(text: str) -> list[Statement]:
    return [parse_statement(piece, line, col) for piece, line, col in split_script(text)]


# Trees that only read: a SELECT (WITH, UNION, FROM t, TABLE t), VALUES and PIVOT.
READ_ONLY = (exp.Query, exp.Values, exp.Pivot)


def parse_select(text: str, label: str) -> str:
    """`text` (without a trailing ';') when it is exactly one query that only reads; otherwise a
    OptionError naming `label` (an option such as "... option candidates"), before anything runs.

    Options documented as "a quoted SELECT" hold text that sqlrec hands to DuckDB: a second
    statement, or a DROP / COPY / INSERT, must never run from there.
    """
    try:
        statements = parse_script(text)
    except ParseError as exc:
        raise OptionError(f"{label}: {exc}") from None
    if len(statements) != 1:
        raise OptionError(f"{label} must be exactly one SELECT, got {len(statements)} statements")
    st = statements[0]
    if not (isinstance(st, Query) and isinstance(st.tree, READ_ONLY)):
        word = st.text.split(None, 1)[0].upper() if st.text.split() else "nothing"
        raise OptionError(f"{label} must be a SELECT, got a {word} statement")
    return st.text
