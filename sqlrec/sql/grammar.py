"""The model statements' grammar, as methods mixed into sqlglot's DuckDB parser.

They walk sqlglot's token stream directly: the statements are small, and owning each step is what
lets an error name the statement, the part at fault and what was expected. Embedded queries are
kept as the user's text (sliced between balanced parentheses), so DuckDB syntax that sqlglot does
not know still trains a model.
"""

from __future__ import annotations

import re
import typing as t

from sqlglot import exp
from sqlglot.errors import ParseError as SqlglotParseError
from sqlglot.tokens import Token, TokenType

from .nodes import option_value
from .statements import (
    CreateModel,
    Describe,
    DropModel,
    EvaluateModel,
    Finetune,
    OptionValue,
    Retrain,
    ShowModels,
    Source,
    Statement,
)

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
_STRINGS = frozenset(
    {TokenType.STRING, TokenType.HEREDOC_STRING, TokenType.BYTE_STRING, TokenType.RAW_STRING,
     TokenType.NATIONAL_STRING, TokenType.UNICODE_STRING}
)
_QUOTED = _STRINGS | {TokenType.IDENTIFIER}
_VALUE_HELP = "a number, 'string', TRUE, FALSE, NULL, a name or a list"


class StatementError(SqlglotParseError):
    """A malformed sqlrec statement; ``offset`` is the character offset in the parsed text.

    A sqlglot ParseError so that sqlglot's own backtracking treats it like its errors.
    """

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


class ModelGrammar:
    """Mixin for a sqlglot Parser: parse methods for the model statements."""

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
            or (token.token_type not in _STRINGS and bool(_KEY.fullmatch(token.text)))
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
        self._advance()
        return self._prev.text

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
        if kind in _STRINGS:
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

    # -- statements ------------------------------------------------------------------------

    def _parse_create_model(self, replace: bool) -> Statement:
        head = "CREATE OR REPLACE MODEL" if replace else "CREATE MODEL"
        if_token = self._curr
        if_not_exists = self._match_text_seq("IF", "NOT", "EXISTS")
        if replace and if_not_exists:
            self._fail(f"{head}: OR REPLACE and IF NOT EXISTS cannot be used together", if_token)
        name = self._model_name(head)
        label = f"CREATE MODEL {name}"
        if not self._match(TokenType.FROM):
            self._fail(f"{label}: expected FROM after the model name, found {self._found()}")
        source = self._parse_source(label)
        expected = "PREDICT, USING or end of statement"
        predict = None
        if self._match_text_seq("PREDICT"):
            if not self._is_name(self._curr):
                self._fail(f"{label}: expected a column name after PREDICT, found {self._found()}")
            predict = self._curr.text
            self._advance()
            expected = "USING or end of statement"
        options: dict[str, OptionValue] = {}
        if self._match(TokenType.USING):
            options = self._parse_options(f"{label} USING")
            expected = "',' or end of statement after the options"
        self._expect_end(label, expected)
        return CreateModel(name, source, predict, options, replace=replace,
                           if_not_exists=if_not_exists)

    def _parse_build_model(self) -> Statement:
        name = self._model_name("BUILD MODEL")
        label = f"BUILD MODEL {name}"
        if not self._match(TokenType.USING):
            self._fail(f"{label}: expected USING engine after the model name, found {self._found()}")
        if not (self._is_name(self._curr) or (self._curr and self._curr.token_type in _STRINGS)):
            self._fail(f"{label}: expected an engine name after USING, found {self._found()}")
        engine = self._curr.text
        self._advance()
        options: dict[str, OptionValue] = {}
        if self._match_text_seq("OPTIONS"):
            if not self._match(TokenType.L_PAREN):
                self._fail(f"{label}: expected '(' after OPTIONS, found {self._found()}")
            if not self._match(TokenType.R_PAREN):
                options = self._parse_options(f"{label} OPTIONS")
                if not self._match(TokenType.R_PAREN):
                    self._fail(f"{label} OPTIONS: expected ',' or ')', found {self._found()}")
        elif not self._is_word(self._curr, "AS"):
            self._fail(f"{label}: expected OPTIONS (...) or AS query, found {self._found()}")
        if not self._match(TokenType.ALIAS):
            self._fail(f"{label}: expected AS query after the options, found {self._found()}")
        rest = self._tokens[self._index :]
        if not rest:
            self._fail(f"{label}: expected a query after AS, found end of statement")
        if not self._starts_query(rest[0]):
            self._fail(f"{label}: expected a query (SELECT ...) after AS, found {self._found()}")
        self._advance(len(rest))
        source = Source(query=self._raw(rest[0], rest[-1]))
        return CreateModel(name, source, None, options, engine=engine, form="thanosql")

    def _parse_drop_model(self) -> Statement:
        if_exists = self._match_text_seq("IF", "EXISTS")
        name = self._model_name("DROP MODEL")
        self._expect_end(f"DROP MODEL {name}", "end of statement")
        return DropModel(name, if_exists=if_exists)

    def _parse_show_models(self) -> Statement:
        self._expect_end("SHOW MODELS", "end of statement")
        return ShowModels()

    def _parse_describe_model(self) -> Statement | None:
        """DESCRIBE [MODEL] name[.attribute]; None hands the statement back to DuckDB's grammar."""
        after_model = self._next
        if self._is_word(self._curr, "MODEL") and not (
            not after_model or after_model.token_type == TokenType.DOT
        ):
            self._advance()
            name = self._model_name("DESCRIBE MODEL")
            label = f"DESCRIBE MODEL {name}"
            attribute = None
            if self._match(TokenType.DOT):
                if not self._is_name(self._curr):
                    self._fail(f"{label}: expected an attribute name after '.', found {self._found()}")
                attribute = self._curr.text
                self._advance()
            self._expect_end(label, "'.attribute' or end of statement" if attribute is None
                             else "end of statement")
            return Describe(name, attribute, explicit=True)
        # Without MODEL only `x` and `x.y` may be models; DESCRIBE SELECT ... and
        # catalog.schema.table are DuckDB's alone.
        rest = self._tokens[self._index :]
        if len(rest) == 1 and self._is_name(rest[0]):
            self._advance()
            return Describe(rest[0].text, None, explicit=False)
        if (
            len(rest) == 3
            and self._is_name(rest[0])
            and rest[1].token_type == TokenType.DOT
            and self._is_name(rest[2])
        ):
            self._advance(3)
            return Describe(rest[0].text, rest[2].text, explicit=False)
        return None

    def _parse_model_source_options(self, head: str, source_required: bool) -> tuple:
        """name [FROM source] [USING options] for RETRAIN, FINETUNE and EVALUATE MODEL."""
        name = self._model_name(head)
        label = f"{head} {name}"
        source = None
        if self._match(TokenType.FROM):
            source = self._parse_source(label)
        elif source_required:
            self._fail(f"{label}: expected FROM after the model name, found {self._found()}")
        options: dict[str, OptionValue] = {}
        expected = "FROM, USING or end of statement" if source is None else "USING or end of statement"
        if self._match(TokenType.USING):
            options = self._parse_options(f"{label} USING")
            expected = "',' or end of statement after the options"
        self._expect_end(label, expected)
        return name, source, options

    def _parse_retrain(self) -> Statement:
        self._skip_model_word()
        return Retrain(*self._parse_model_source_options("RETRAIN", source_required=False))

    def _parse_finetune(self) -> Statement:
        self._skip_model_word()
        return Finetune(*self._parse_model_source_options("FINETUNE", source_required=True))

    def _parse_evaluate_model(self) -> Statement:
        return EvaluateModel(*self._parse_model_source_options("EVALUATE MODEL", False))

    # Statement openers, tried in order at the start of a statement. A parser returning None
    # gives the statement back to DuckDB's grammar.
    MODEL_STATEMENT_PARSERS: t.ClassVar[dict[tuple[str, ...], t.Callable]] = {
        ("CREATE", "OR", "REPLACE", "MODEL"): lambda self: self._parse_create_model(replace=True),
        ("CREATE", "MODEL"): lambda self: self._parse_create_model(replace=False),
        ("BUILD", "MODEL"): lambda self: self._parse_build_model(),
        ("DROP", "MODEL"): lambda self: self._parse_drop_model(),
        ("SHOW", "MODELS"): lambda self: self._parse_show_models(),
        ("DESCRIBE",): lambda self: self._parse_describe_model(),
        ("DESC",): lambda self: self._parse_describe_model(),
        ("RETRAIN",): lambda self: self._parse_retrain(),
        ("FINETUNE",): lambda self: self._parse_finetune(),
        ("EVALUATE", "MODEL"): lambda self: self._parse_evaluate_model(),
    }
