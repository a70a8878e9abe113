"""Statements of the products sqlrec replaces, as their users copy them from those products' docs.

MindsDB: ``CREATE ML_ENGINE name FROM handler``, ``SHOW ML_ENGINES`` (its CREATE MODEL, DESCRIBE and
DROP are sqlrec's own, with ``mindsdb.`` names). ThanoSQL: ``PREDICT USING model OPTIONS (...) AS
query`` (its BUILD MODEL is sqlrec's own). BigQuery ML: ``CREATE [OR REPLACE] MODEL name OPTIONS
(...) AS query`` and the ``ML.RECOMMEND(MODEL m, ...)`` family of table functions in queries.

The grammar only records what was written; sqlrec.exec.compat.translate maps each onto sqlrec's statements and
options, where an option that cannot be honoured is refused.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field
from typing import ClassVar

from sqlglot import exp
from sqlglot.tokens import TokenType

from sqlrec.sql.clauses import MINDSDB_PROJECT, Clauses
from sqlrec.sql.quoting import quote_name
from sqlrec.sql.statements import OptionValue, Statement, format_options

# The table functions of BigQuery ML that sqlrec computes (ML.<name>(MODEL m[, (query)])).
ML_FUNCTIONS = ("RECOMMEND", "PREDICT", "EVALUATE", "WEIGHTS", "TRAINING_INFO")


def _options(options: dict[str, OptionValue]) -> str:
    return f"OPTIONS ({format_options(options)})" if options else "OPTIONS ()"


@dataclass
class CreateMLEngine(Statement):
    """MindsDB's CREATE ML_ENGINE name FROM handler [USING ...]."""

    kind: ClassVar[str] = "create_ml_engine"

    name: str
    handler: str
    options: dict[str, OptionValue] = field(default_factory=dict)

    def sql(self) -> str:
        using = f" USING {format_options(self.options)}" if self.options else ""
        return f"CREATE ML_ENGINE {quote_name(self.name)} FROM {quote_name(self.handler)}{using}"


@dataclass
class ShowMLEngines(Statement):
    kind: ClassVar[str] = "show_ml_engines"

    def sql(self) -> str:
        return "SHOW ML_ENGINES"


@dataclass
class PredictUsing(Statement):
    """ThanoSQL's PREDICT USING model OPTIONS (predict_type = ..., ...) AS query."""

    kind: ClassVar[str] = "predict_using"

    name: str
    options: dict[str, OptionValue]
    query: str

    def sql(self) -> str:
        return f"PREDICT USING {quote_name(self.name)} {_options(self.options)} AS {self.query}"


@dataclass
class BigQueryCreateModel(Statement):
    """BigQuery ML's CREATE [OR REPLACE] MODEL [IF NOT EXISTS] name OPTIONS (...) AS query."""

    kind: ClassVar[str] = "bigquery_create_model"

    name: str
    options: dict[str, OptionValue]
    query: str
    replace: bool = False
    if_not_exists: bool = False

    def sql(self) -> str:
        replace = " OR REPLACE" if self.replace else ""
        exists = " IF NOT EXISTS" if self.if_not_exists else ""
        return f"CREATE{replace} MODEL{exists} {quote_name(self.name)} {_options(self.options)} AS {self.query}"


class SqlRecMLCall(exp.Expression):
    """ML.<name>(MODEL m[, (query) | TABLE t]) inside a query's FROM: ``this`` the model's table
    node, ``expression`` the optional input relation, ``name`` the function (upper case)."""

    arg_types = {"this": True, "expression": False, "name": True}

    @property
    def function(self) -> str:
        return str(self.args["name"])


def ml_call_sql(generator: t.Any, node: SqlRecMLCall) -> str:
    rest = node.args.get("expression")
    table = "TABLE " if isinstance(rest, exp.Table) else ""
    tail = f", {table}{generator.sql(rest)}" if rest is not None else ""
    return f"{node.function}(MODEL {generator.sql(node, 'this')}{tail})"


class ForeignGrammar(Clauses):
    """Mixin for a sqlglot Parser: the foreign statement forms."""

    if t.TYPE_CHECKING:
        def _parse_table(self, *args: t.Any, **kwargs: t.Any) -> t.Any: ...
        def _parse_table_parts(self, *args: t.Any, **kwargs: t.Any) -> t.Any: ...

    def _parse_create_ml_engine(self) -> Statement:
        name = self._model_name("CREATE ML_ENGINE")
        label = f"CREATE ML_ENGINE {name}"
        if not self._match(TokenType.FROM):
            self._fail(f"{label}: expected FROM handler after the engine name, found {self._found()}")
        handler = self._model_name(f"{label} FROM")
        options: dict[str, OptionValue] = {}
        if self._match(TokenType.USING):
            options = self._parse_options(f"{label} USING")
        self._expect_end(label, "USING or end of statement")
        return CreateMLEngine(name, handler, options)

    def _parse_show_ml_engines(self) -> Statement:
        self._expect_end("SHOW ML_ENGINES", "end of statement")
        return ShowMLEngines()

    def _parse_options_as_query(self, label: str) -> tuple[dict[str, OptionValue], str]:
        """OPTIONS (k = v, ...) AS query: the options and the query as the user's text."""
        if not self._match_text_seq("OPTIONS"):
            self._fail(f"{label}: expected OPTIONS (...), found {self._found()}")
        if not self._match(TokenType.L_PAREN):
            self._fail(f"{label}: expected '(' after OPTIONS, found {self._found()}")
        options: dict[str, OptionValue] = {}
        if not self._match(TokenType.R_PAREN):
            options = self._parse_options(f"{label} OPTIONS")
            if not self._match(TokenType.R_PAREN):
                self._fail(f"{label} OPTIONS: expected ',' or ')', found {self._found()}")
        if not self._match(TokenType.ALIAS):
            self._fail(f"{label}: expected AS query after the options, found {self._found()}")
        rest = self._tokens[self._index :]
        if not rest or not self._starts_query(rest[0]):
            self._fail(f"{label}: expected a query (SELECT ...) after AS, found {self._found()}")
        self._advance(len(rest))
        return options, self._raw(rest[0], rest[-1])

    def _parse_predict_using(self) -> Statement:
        name = self._model_name("PREDICT USING")
        options, query = self._parse_options_as_query(f"PREDICT USING {name}")
        return PredictUsing(name, options, query)

    def _parse_bigquery_create(self, name: str, replace: bool, if_not_exists: bool) -> Statement:
        options, query = self._parse_options_as_query(f"CREATE MODEL {name}")
        return BigQueryCreateModel(name, options, query, replace=replace, if_not_exists=if_not_exists)

    def _at_ml_call(self) -> bool:
        """At `NAME (MODEL` right after `ML .`."""
        i = self._index
        tokens = self._tokens
        return (
            i >= 2 and i + 2 < len(tokens)
            and tokens[i - 1].token_type == TokenType.DOT
            and self._is_word(tokens[i - 2], "ML")
            and tokens[i].text.upper() in ML_FUNCTIONS
            and tokens[i + 1].token_type == TokenType.L_PAREN
            and self._is_word(tokens[i + 2], "MODEL")
        )

    def _parse_ml_call(self) -> exp.Expression:
        name = self._curr.text.upper()
        label = f"ML.{name}"
        self._advance(3)
        model = self._parse_table_parts()
        if model is None:
            self._fail(f"{label}: expected a model name after MODEL, found {self._found()}")
        relation = None
        if self._match(TokenType.COMMA):
            if self._match(TokenType.TABLE):
                relation = self._parse_table_parts()
            elif self._curr and self._curr.token_type == TokenType.L_PAREN:
                relation = self._parse_table()
            if relation is None or self._curr.token_type == TokenType.COMMA:
                self._fail(f"{label}: expected (SELECT ...) or TABLE t as the second argument, and no "
                           f"STRUCT of settings (sqlrec takes none), found {self._found()}")
        if not self._match(TokenType.R_PAREN):
            self._fail(f"{label}: expected ')' after the arguments, found {self._found()}")
        return SqlRecMLCall(this=model, expression=relation, name=name)

    FOREIGN_STATEMENT_PARSERS: t.ClassVar[dict[tuple[str, ...], t.Callable]] = {
        ("CREATE", "ML_ENGINE"): lambda self: self._parse_create_ml_engine(),
        ("SHOW", "ML_ENGINES"): lambda self: self._parse_show_ml_engines(),
        ("PREDICT", "USING"): lambda self: self._parse_predict_using(),
    }
