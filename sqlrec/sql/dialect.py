"""The sqlrec dialect: DuckDB plus model statements and ``SELECT ... USING k = v``.

Importing this module registers the dialect with sqlglot under the name "sqlrec".
"""

from __future__ import annotations

import typing as t

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.generators.duckdb import DuckDBGenerator
from sqlglot.parsers.duckdb import DuckDBParser
from sqlglot.tokens import Token, TokenType

from sqlrec.sql.compat.foreign import SqlRecMLCall, ml_call_sql
from sqlrec.sql.grammar import ModelGrammar, StatementError
from sqlrec.sql.nodes import OPTIONS_ARG, SqlRecModelStatement, SqlRecOptions
from sqlrec.sql.statements import Statement


def model_statement_node(statement: Statement) -> SqlRecModelStatement:
    node = SqlRecModelStatement(this=statement.sql())
    node.meta["statement"] = statement
    return node


class SqlRecParser(ModelGrammar, DuckDBParser):
    # The first error met inside a query's USING options. sqlglot backtracks over ParseErrors in
    # places, so the error may be swallowed there and the statement then fail for another reason;
    # the caller reports this one instead, as it is the real cause.
    options_error: StatementError | None = None

    def reset(self) -> None:
        super().reset()
        self.options_error = None

    def _warn_unsupported(self) -> None:
        # Statements sqlglot does not know go to DuckDB as written; no warning to log.
        pass

    def _parse_statement(self) -> exp.Expr | None:
        # Model statements are whole statements: never inside DESCRIBE/EXPLAIN and the like.
        if not self._curr or self._index != 0:
            return super()._parse_statement()
        for words, parse in self.MODEL_STATEMENT_PARSERS.items():
            if self._match_text_seq(*words):
                statement = parse(self)
                if statement is not None:
                    return model_statement_node(statement)
                self._retreat(0)
                break
        return super()._parse_statement()

    def _parse_function_call(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if self._at_ml_call():  # BigQuery ML's ML.RECOMMEND(MODEL m, ...) and the others
            return self._parse_ml_call()
        return super()._parse_function_call(*args, **kwargs)

    def _parse_query_modifiers(self, this: t.Any) -> t.Any:
        # sqlglot already maps USING to `USING SAMPLE` here and leaves any other USING alone;
        # options are taken only on the `USING name =` shape, which JOIN ... USING (col),
        # DELETE/MERGE ... USING and PIVOT ... USING never have.
        this = super()._parse_query_modifiers(this)
        if isinstance(this, exp.Query) and self._at_query_options():
            using = self._curr
            self._advance()
            try:
                if this.args.get(OPTIONS_ARG):
                    self._fail("USING: a query takes one USING clause; separate options with ','",
                               using)
                items = self._parse_option_items("USING")
                self._check_after_options()
            except StatementError as error:
                self.options_error = self.options_error or error
                raise
            this.set(
                OPTIONS_ARG,
                SqlRecOptions(
                    expressions=[
                        exp.EQ(
                            this=exp.to_identifier(
                                key.text, quoted=key.token_type == TokenType.IDENTIFIER
                            ),
                            expression=value,
                        )
                        for key, value in items
                    ]
                ),
            )
            this = self._parse_query_modifiers(this)
        return this

    def _at_query_options(self) -> bool:
        if not self._curr or self._curr.token_type != TokenType.USING:
            return False
        after_key = self._tokens[self._index + 2] if self._index + 2 < len(self._tokens) else None
        return self._is_key(self._next) and bool(after_key) and after_key.token_type == TokenType.EQ

    _NOT_AFTER_OPTIONS = frozenset(
        {TokenType.EQ, TokenType.PLUS, TokenType.DASH, TokenType.STAR, TokenType.SLASH,
         TokenType.DOT, TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.STRING,
         TokenType.NUMBER}
    )

    def _check_after_options(self) -> None:
        # What may follow is the enclosing query's business, but a value followed by more
        # value-like text (k = 1 + 2, k = 'a' 'b') is a malformed option, not DuckDB syntax.
        token: Token = self._curr
        if token and token.token_type in self._NOT_AFTER_OPTIONS:
            self._fail(f"USING: expected ',' or the end of the options, found {self._found()}")


def _options_sql(self: DuckDBGenerator, expression: SqlRecOptions) -> str:
    return f"{self.seg('USING')} {self.expressions(expression, flat=True)}"


class SqlRecGenerator(DuckDBGenerator):
    TRANSFORMS = {
        **DuckDBGenerator.TRANSFORMS,
        SqlRecOptions: _options_sql,
        SqlRecModelStatement: lambda self, e: e.name,
        SqlRecMLCall: ml_call_sql,
    }

    def after_limit_modifiers(self, expression: exp.Expr) -> list[str]:
        return [*super().after_limit_modifiers(expression), self.sql(expression, OPTIONS_ARG)]


class SqlRecTokenizer(DuckDB.Tokenizer):
    # BigQuery's `project.dataset.model` names, pasted with BigQuery ML statements
    IDENTIFIERS = [*DuckDB.Tokenizer.IDENTIFIERS, "`"]


class SqlRec(DuckDB):
    Tokenizer = SqlRecTokenizer
    Parser = SqlRecParser
    Generator = SqlRecGenerator
