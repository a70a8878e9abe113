"""The model statements' grammar, as methods mixed into sqlglot's DuckDB parser.

They walk sqlglot's token stream directly: the statements are small, and owning each step is what
lets an error name the statement, the part at fault and what was expected. Embedded queries are
kept as the user's text (sliced between balanced parentheses), so DuckDB syntax that sqlglot does
not know still trains a model.
"""

from __future__ import annotations

import typing as t

from sqlglot.tokens import TokenType

from sqlrec.sql.clauses import STRING_TOKENS, StatementError
from sqlrec.sql.nodes import option_value
from sqlrec.sql.compat.foreign import ForeignGrammar
from sqlrec.sql.statements import (
    AlterModel,
    CreateModel,
    Describe,
    DropModel,
    EvaluateModel,
    ExportRecommendations,
    Finetune,
    OptionValue,
    Retrain,
    ShowModels,
    Source,
    Statement,
)

__all__ = ["ModelGrammar", "StatementError"]


class ModelGrammar(ForeignGrammar):
    """Mixin for a sqlglot Parser: parse methods for the model statements."""

    # -- statements ------------------------------------------------------------------------

    def _parse_create_model(self, replace: bool) -> Statement:
        head = "CREATE OR REPLACE MODEL" if replace else "CREATE MODEL"
        if_token = self._curr
        if_not_exists = self._match_text_seq("IF", "NOT", "EXISTS")
        if replace and if_not_exists:
            self._fail(f"{head}: OR REPLACE and IF NOT EXISTS cannot be used together", if_token)
        name = self._model_name(head)
        while self._curr and self._curr.token_type == TokenType.DOT and self._is_name(self._next):
            self._advance()  # BigQuery's dataset.model: sqlrec keeps the model name
            name = self._model_name(head)
        label = f"CREATE MODEL {name}"
        if self._is_word(self._curr, "OPTIONS"):
            return self._parse_bigquery_create(name, replace, if_not_exists)
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
        if not (self._is_name(self._curr) or (self._curr and self._curr.token_type in STRING_TOKENS)):
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
        version = None
        if self._match_text_seq("VERSION"):
            version = self._parse_version_number(f"DROP MODEL {name} VERSION")
        self._expect_end(f"DROP MODEL {name}", "end of statement" if version is not None
                         else "VERSION n or end of statement")
        return DropModel(name, if_exists=if_exists, version=version)

    def _parse_alter_model(self) -> Statement:
        name = self._model_name("ALTER MODEL")
        label = f"ALTER MODEL {name}"
        if not self._match_text_seq("SET", "VERSION"):
            self._fail(f"{label}: expected SET VERSION n after the model name, found {self._found()}")
        version = self._parse_version_number(f"{label} SET VERSION")
        self._expect_end(label, "end of statement")
        return AlterModel(name, version)

    def _parse_version_number(self, label: str) -> int:
        token = self._curr
        if not token or token.token_type != TokenType.NUMBER or not token.text.isdigit() or int(token.text) < 1:
            self._fail(f"{label}: expected a version number (1, 2, ...), found {self._found()}")
        self._advance()
        return int(token.text)

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
        if len(rest) in (3, 5) and self._is_word(rest[0], "MINDSDB") and rest[1].token_type == TokenType.DOT:
            rest = rest[2:]  # MindsDB's DESCRIBE mindsdb.model[.attribute]
            self._advance(2)
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

    def _parse_export_recommendations(self) -> Statement:
        if self._is_word(self._curr, "TO") and self._next and self._next.token_type in STRING_TOKENS:
            self._fail(f"EXPORT RECOMMENDATIONS: missing model name before TO, found {self._found()}")
        name = self._model_name("EXPORT RECOMMENDATIONS")
        label = f"EXPORT RECOMMENDATIONS {name}"
        if not self._match_text_seq("TO"):
            self._fail(f"{label}: expected TO 'path' after the model name, found {self._found()}")
        path = self._curr
        if not path or path.token_type not in STRING_TOKENS or not path.text.strip():
            self._fail(f"{label}: expected a quoted path after TO (e.g. TO 'recs/'), found {self._found()}")
        self._advance()
        options: dict[str, OptionValue] = {}
        if self._match(TokenType.L_PAREN):
            options = self._parse_copy_options(label)
        self._expect_end(label, "(options) or end of statement" if not options else "end of statement")
        return ExportRecommendations(name, path.text, options)

    def _parse_copy_options(self, label: str) -> dict[str, OptionValue]:
        """COPY-style options after '(': `key value`, `key = value` or a bare `key` (true), up to ')'."""
        options: dict[str, OptionValue] = {}
        while not self._match(TokenType.R_PAREN):
            key = self._curr
            if not self._is_key(key):
                self._fail(f"{label}: expected an option name (FORMAT parquet, k = 10, ...), found {self._found()}")
            self._advance()
            name = key.text.lower()
            if name in options:
                self._fail(f"{label}: option '{name}' is given twice", key)
            bare = not self._match(TokenType.EQ) and (
                not self._curr or self._curr.token_type in (TokenType.COMMA, TokenType.R_PAREN))
            options[name] = True if bare else option_value(self._parse_option_literal(label, name))
            if not self._match(TokenType.COMMA) and not (self._curr and self._curr.token_type == TokenType.R_PAREN):
                self._fail(f"{label}: expected ',' or ')' after option {name}, found {self._found()}")
        return options

    # Statement openers, tried in order at the start of a statement. A parser returning None
    # gives the statement back to DuckDB's grammar.
    MODEL_STATEMENT_PARSERS: t.ClassVar[dict[tuple[str, ...], t.Callable]] = {
        ("CREATE", "OR", "REPLACE", "MODEL"): lambda self: self._parse_create_model(replace=True),
        ("CREATE", "MODEL"): lambda self: self._parse_create_model(replace=False),
        ("BUILD", "MODEL"): lambda self: self._parse_build_model(),
        ("DROP", "MODEL"): lambda self: self._parse_drop_model(),
        ("ALTER", "MODEL"): lambda self: self._parse_alter_model(),
        ("SHOW", "MODELS"): lambda self: self._parse_show_models(),
        ("DESCRIBE",): lambda self: self._parse_describe_model(),
        ("DESC",): lambda self: self._parse_describe_model(),
        ("RETRAIN",): lambda self: self._parse_retrain(),
        ("FINETUNE",): lambda self: self._parse_finetune(),
        ("EVALUATE", "MODEL"): lambda self: self._parse_evaluate_model(),
        ("EXPORT", "RECOMMENDATIONS"): lambda self: self._parse_export_recommendations(),
        **ForeignGrammar.FOREIGN_STATEMENT_PARSERS,
    }
