"""The parts model statements are made of, read from sqlglot's token stream: names, the FROM
source (a table, or a query kept as the user's text), and USING / OPTIONS lists of literals.

Each helper fails with a StatementError that names the statement, the part at fault and what
was expected; sqlrec.sql.grammar builds the statements from these parts.
"""

from __future__ import annotations

import re
import typing as t

from sqlglot import exp
from sqlglot.errors import ParseError as SqlglotParseError
from sqlglot.tokens import Token, TokenType

from sqlrec.sql.nodes import option_value
from sqlrec.sql.statements import OptionValue, Source
# The project name MindsDB puts before model names (mindsdb.m).
MINDSDB_PROJECT = "mindsdb"
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
# Unquoted words that end a name position instead of filling it, so that `CREATE MODEL FROM t`
# reports the missing name rather than creating a model called FROM.
_NOT_NAMES = frozenset(
    {"FROM", "PREDICT", "USING", "OPTIONS", "AS", "IF", "SELECT", "WITH", "TABLE", "VALUES",
     "WHERE", "ON", "TRUE", "FALSE", "NULL"}
)
# First words of a DuckDB query, to tell FROM db (SELECT ...) from a table function call.
_QUERY_STARTS = frozenset(
    {"SELECT", "WITH", "FROM", "VALUES", "TABLE", "(", "PIVOT", "UNPIVOT", "SUMMARIZE", "DESCRIBE",
     "SHOW"}
)
STRING_TOKENS = frozenset(
    {TokenType.STRING, TokenType.HEREDOC_STRING, TokenType.BYTE_STRING, TokenType.RAW_STRING,
     TokenType.NATIONAL_STRING, TokenType.UNICODE_STRING}
)
_QUOTED = STRING_TOKENS | {TokenType.IDENTIFIER}
_VALUE_HELP = "a number, 'string', TRUE, FALSE, NULL, a name or a list"


class StatementError(SqlglotParseError):
    """A malformed sqlrec statement; ``offset`` is the character offset in the parsed text.

    A sqlglot ParseError so that sqlglot's own backtracking treats it like its errors.
    """

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


class Clauses:
    """Mixin for a sqlglot Parser: the parts of the model statements."""

    if t.TYPE_CHECKING:  # provided by sqlglot's Parser
        _curr: Token  # a falsy sentinel token past the end
        _next: Token
        _prev: Token
        _index: int
        _tokens: list[Token]
        sql: str
        ID_VAR_TOKENS: t.ClassVar[set[TokenType]]

        def _advance(self, times: int = 1) -> None: ...
        def _retreat(self, index: int) -> None: ...
        def _match(self, token_type: TokenType, advance: bool = True) -> bool: ...
        def _match_text_seq(self, *texts: str, advance: bool = True) -> bool: ...

    # -- tokens ----------------------------------------------------------------------------

    def _raw(self, first: Token, last: Token | None = None) -> str:
        return self.sql[first.start : (last or first).end + 1]

    def _found(self, token: Token | None = None) -> str:
        token = token or self._curr
        if not token:
            return "end of statement"
        raw = self._raw(token)
        return raw if raw[0] in "'\"$" else f"'{raw}'"

    def _fail(self, message: str, token: Token | None = None) -> t.NoReturn:
        token = token or self._curr
        if token:
            offset = token.start
        else:
            offset = self._tokens[-1].end + 1 if self._tokens else 0
        raise StatementError(message, offset)

    def _is_word(self, token: Token | None, word: str) -> bool:
        return bool(token) and token.token_type not in _QUOTED and token.text.upper() == word

    def _is_name(self, token: Token | None) -> bool:
        if not token:
            return False
        if token.token_type == TokenType.IDENTIFIER:
            return True
        return (
            (token.token_type == TokenType.VAR or token.token_type in self.ID_VAR_TOKENS)
            and bool(_KEY.fullmatch(token.text))
            and token.text.upper() not in _NOT_NAMES
        )

    def _is_key(self, token: Token | None) -> bool:
        return bool(token) and (
            token.token_type == TokenType.IDENTIFIER
            or (token.token_type not in STRING_TOKENS and bool(_KEY.fullmatch(token.text)))
        )

    def _expect_end(self, label: str, expected: str) -> None:
        if self._curr:
            hint = ""
            if self._curr.text.upper() in ("FROM", "PREDICT", "USING"):
                order = "FROM, PREDICT, USING" if label.startswith("CREATE") else "FROM, USING"
                hint = f" (clauses go in the order {order})"
            self._fail(f"{label}: expected {expected}, found {self._found()}{hint}")

    def _model_name(self, label: str) -> str:
        if not self._is_name(self._curr):
            found = "" if not self._curr else f", found {self._found()}"
            self._fail(f"{label}: missing model name{found}")
        token = self._curr
        self._advance()
        if (self._is_word(token, MINDSDB_PROJECT.upper()) and self._curr
                and self._curr.token_type == TokenType.DOT and self._is_name(self._next)):
            self._advance(2)  # MindsDB's mindsdb.model: sqlrec has one namespace of models
            token = self._prev
        if token.token_type == TokenType.IDENTIFIER and self.sql[token.start] == "`":
            return token.text.rsplit(".", 1)[-1]  # BigQuery's `project.dataset.model`
        return token.text

    def _skip_model_word(self) -> None:
        # RETRAIN [MODEL] name: an unquoted MODEL is always the keyword
        if self._is_word(self._curr, "MODEL"):
            self._advance()

    def _closing_paren(self, index: int) -> int | None:
        depth = 0
        for i in range(index, len(self._tokens)):
            kind = self._tokens[i].token_type
            if kind == TokenType.L_PAREN:
                depth += 1
            elif kind == TokenType.R_PAREN:
                depth -= 1
                if depth == 0:
                    return i
        return None

    def _starts_query(self, token: Token) -> bool:
        return token.token_type not in _QUOTED and token.text.upper() in _QUERY_STARTS

    # -- FROM source -----------------------------------------------------------------------

    def _parse_source(self, label: str) -> Source:
        """After FROM: table, db.schema.table, 'file', (query), db (query) or function(...)."""
        first = self._curr
        if first and first.token_type == TokenType.L_PAREN:
            return Source(query=self._parse_wrapped_query(label))
        if first and first.token_type == TokenType.STRING:
            # DuckDB reads FROM 'ratings.parquet' as a table
            self._advance()
            return Source(table=self._raw(first))
        if not self._is_name(first):
            self._fail(f"{label}: expected a table or (query) after FROM, found {self._found()}")
        parts = [first]
        self._advance()
        while self._match(TokenType.DOT):
            if not self._is_name(self._curr):
                self._fail(f"{label}: expected a name after '.', found {self._found()}")
            parts.append(self._curr)
            self._advance()
        if self._curr and self._curr.token_type == TokenType.L_PAREN:
            inner = self._next
            if len(parts) == 1 and inner and self._starts_query(inner):
                return Source(query=self._parse_wrapped_query(label), database=first.text)
            close = self._closing_paren(self._index)
            if close is None:
                self._fail(f"{label}: '(' is never closed; expected ')'")
            # a table function such as read_parquet('x.parquet') reads like a table
            last = self._tokens[close]
            self._advance(close + 1 - self._index)
            return Source(table=self._raw(first, last))
        if len(parts) > 3:
            self._fail(f"{label}: expected at most database.schema.table after FROM", parts[3])
        return Source(table=self._raw(first, parts[-1]))

    def _parse_wrapped_query(self, label: str) -> str:
        open_paren = self._curr
        close = self._closing_paren(self._index)
        if close is None:
            self._fail(f"{label}: '(' is never closed; expected ')' after the query", open_paren)
        inner = self._tokens[self._index + 1 : close]
        if not inner:
            self._fail(f"{label}: expected a query inside the parentheses, found ')'",
                       self._tokens[close])
        if not self._starts_query(inner[0]):
            self._fail(
                f"{label}: expected a query (SELECT ...) inside the parentheses, "
                f"found {self._found(inner[0])}",
                inner[0],
            )
        self._advance(close + 1 - self._index)
        return self._raw(inner[0], inner[-1])

    # -- options ---------------------------------------------------------------------------

    def _parse_option_items(self, label: str) -> list[tuple[Token, exp.Expr]]:
        """key = value [, key = value ...]: (key token, literal node) pairs, keys unique."""
        items: list[tuple[Token, exp.Expr]] = []
        seen: set[str] = set()
        while True:
            key = self._curr
            if not self._is_key(key):
                self._fail(f"{label}: expected key = value, found {self._found()}")
            self._advance()
            if not self._match(TokenType.EQ):
                self._fail(f"{label}: expected '=' after {key.text}, found {self._found()}")
            name = key.text.lower()
            if name in seen:
                self._fail(f"{label}: option '{name}' is given twice", key)
            seen.add(name)
            items.append((key, self._parse_option_literal(label, name)))
            if not self._match(TokenType.COMMA):
                return items

    def _parse_options(self, label: str) -> dict[str, OptionValue]:
        return {key.text.lower(): option_value(node) for key, node in self._parse_option_items(label)}

    def _parse_option_literal(self, label: str, key: str) -> exp.Expr:
        token = self._curr
        kind = token.token_type if token else None
        nxt = self._next
        if kind in (TokenType.DASH, TokenType.PLUS) and nxt and nxt.token_type == TokenType.NUMBER:
            self._advance(2)
            number = exp.Literal.number(nxt.text)
            return exp.Neg(this=number) if kind == TokenType.DASH else number
        if kind == TokenType.NUMBER:
            self._advance()
            return exp.Literal.number(token.text)
        if kind == TokenType.DOT and nxt and nxt.token_type == TokenType.NUMBER and (
            nxt.start == token.end + 1
        ):
            # the tokenizer splits .5 into '.' and '5'
            self._advance(2)
            return exp.Literal.number(f"0.{nxt.text}")
        if kind in STRING_TOKENS:
            self._advance()
            return exp.Literal.string(token.text)
        if kind in (TokenType.TRUE, TokenType.FALSE):
            self._advance()
            return exp.Boolean(this=kind == TokenType.TRUE)
        if kind == TokenType.NULL:
            self._advance()
            return exp.Null()
        if kind == TokenType.L_PAREN:
            self._advance()
            items = self._parse_literal_list(label, key, TokenType.R_PAREN, "')'")
            # (x) is x, as in SQL; two or more make a list
            return exp.Paren(this=items[0]) if len(items) == 1 else exp.Tuple(expressions=items)
        if kind == TokenType.ARRAY and nxt and nxt.token_type == TokenType.L_BRACKET:
            self._advance()
            kind = TokenType.L_BRACKET
        if kind == TokenType.L_BRACKET:
            self._advance()
            items = self._parse_literal_list(label, key, TokenType.R_BRACKET, "']'")
            return exp.Array(expressions=items)
        if self._is_name(token) and not (nxt and nxt.token_type == TokenType.L_PAREN):
            parts = [token]
            self._advance()
            while self._curr and self._curr.token_type == TokenType.DOT and self._is_name(self._next):
                parts.append(self._next)
                self._advance(2)
            if len(parts) > 4:
                self._fail(f"{label}: option {key}: a name has at most 4 parts", parts[4])
            idents = [
                exp.to_identifier(p.text, quoted=p.token_type == TokenType.IDENTIFIER) for p in parts
            ]
            names = dict(zip(("this", "table", "db", "catalog"), reversed(idents)))
            return exp.Column(**names)
        self._fail(f"{label}: option {key}: expected a value ({_VALUE_HELP}), found {self._found()}")

    def _parse_literal_list(
        self, label: str, key: str, closing: TokenType, closing_text: str
    ) -> list[exp.Expr]:
        items: list[exp.Expr] = []
        if self._match(closing):
            return items
        while True:
            items.append(self._parse_option_literal(label, key))
            if self._match(closing):
                return items
            if not self._match(TokenType.COMMA):
                self._fail(
                    f"{label}: option {key}: expected ',' or {closing_text} in the list, "
                    f"found {self._found()}"
                )
