"""Statement objects: what one SQL statement asks sqlrec to do.

Each statement prints itself back as canonical sqlrec text with ``.sql()``, and parsing that text
gives an equal object. ``text``, ``line`` and ``col`` record where the statement came from and take
no part in equality, so two spellings of the same statement compare equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Union

from sqlglot import exp

from sqlrec.sql.quoting import quote_name

OptionValue = Union[int, float, str, bool, None, list]


def format_value(value: OptionValue) -> str:
    """An option value as the SQL literal that parses back to it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            # no SQL literal for these; the string form is what a user would have to write
            return format_value(repr(value))
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        # brackets, not parentheses: a one-element (x) would read back as a plain value
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    raise TypeError(f"cannot write option value {value!r} as SQL")


def format_options(options: dict[str, OptionValue]) -> str:
    return ", ".join(f"{quote_name(k)} = {format_value(v)}" for k, v in options.items())


@dataclass
class Source:
    """Where training data comes from: a table reference or a query (DuckDB SQL text)."""

    table: str | None = None
    query: str | None = None
    database: str | None = None

    def __post_init__(self) -> None:
        if (self.table is None) == (self.query is None):
            raise ValueError("Source needs exactly one of table or query")

    def select_sql(self) -> str:
        """The DuckDB query whose rows the source stands for."""
        return f"SELECT * FROM {self.table}" if self.table is not None else self.query  # type: ignore[return-value]

    def sql(self) -> str:
        if self.table is not None:
            return self.table
        db = f"{quote_name(self.database)} " if self.database else ""
        return f"{db}({self.query})"


@dataclass
class Statement:
    kind: ClassVar[str] = "statement"

    text: str = field(default="", compare=False, kw_only=True, repr=False)
    line: int = field(default=1, compare=False, kw_only=True, repr=False)
    col: int = field(default=1, compare=False, kw_only=True, repr=False)

    def sql(self) -> str:
        raise NotImplementedError


def _using(options: dict[str, OptionValue]) -> str:
    return f" USING {format_options(options)}" if options else ""


def _from(source: Source | None) -> str:
    return f" FROM {source.sql()}" if source is not None else ""


@dataclass
class CreateModel(Statement):
    kind: ClassVar[str] = "create_model"

    name: str
    source: Source
    predict: str | None = None
    options: dict[str, OptionValue] = field(default_factory=dict)
    replace: bool = False
    if_not_exists: bool = False
    engine: str | None = None  # BUILD MODEL ... USING engine; the MindsDB form keeps it in options
    form: str = field(default="mindsdb", compare=False)  # "mindsdb" or "thanosql", for printing

    def _thanosql_printable(self) -> bool:
        return (
            self.engine is not None
            and self.source.query is not None
            and self.source.database is None
            and self.predict is None
            and not self.replace
            and not self.if_not_exists
        )

    def sql(self) -> str:
        if self._thanosql_printable():
            options = f" OPTIONS ({format_options(self.options)})" if self.options else ""
            return (
                f"BUILD MODEL {quote_name(self.name)} USING {quote_name(self.engine)}"
                f"{options} AS {self.source.query}"
            )
        if self.engine is not None:
            raise ValueError(
                "engine= is only printable as BUILD MODEL ... AS query; "
                "put the engine in options for the CREATE MODEL form"
            )
        replace = " OR REPLACE" if self.replace else ""
        exists = " IF NOT EXISTS" if self.if_not_exists else ""
        predict = f" PREDICT {quote_name(self.predict)}" if self.predict is not None else ""
        return (
            f"CREATE{replace} MODEL{exists} {quote_name(self.name)}{_from(self.source)}"
            f"{predict}{_using(self.options)}"
        )


@dataclass
class DropModel(Statement):
    kind: ClassVar[str] = "drop_model"

    name: str
    if_exists: bool = False
    version: int | None = None  # DROP MODEL m VERSION n: that version only

    def sql(self) -> str:
        exists = " IF EXISTS" if self.if_exists else ""
        version = f" VERSION {self.version}" if self.version is not None else ""
        return f"DROP MODEL{exists} {quote_name(self.name)}{version}"


@dataclass
class AlterModel(Statement):
    """ALTER MODEL name SET VERSION n: make a kept version the active one (rollback)."""

    kind: ClassVar[str] = "alter_model"

    name: str
    version: int

    def sql(self) -> str:
        return f"ALTER MODEL {quote_name(self.name)} SET VERSION {self.version}"


@dataclass
class ShowModels(Statement):
    kind: ClassVar[str] = "show_models"

    def sql(self) -> str:
        return "SHOW MODELS"


@dataclass
class Describe(Statement):
    """DESCRIBE [MODEL] name[.attribute]; without MODEL the name may as well be a DuckDB table."""

    kind: ClassVar[str] = "describe"

    name: str
    attribute: str | None = None
    explicit: bool = False

    def sql(self) -> str:
        model = " MODEL" if self.explicit else ""
        attribute = f".{quote_name(self.attribute)}" if self.attribute is not None else ""
        return f"DESCRIBE{model} {quote_name(self.name)}{attribute}"


@dataclass
class _ModelFromUsing(Statement):
    """WORD name [FROM source] [USING options]: the statements that work on a model with data."""

    word: ClassVar[str]

    name: str
    source: Source | None = None
    options: dict[str, OptionValue] = field(default_factory=dict)

    def sql(self) -> str:
        return f"{self.word} {quote_name(self.name)}{_from(self.source)}{_using(self.options)}"


@dataclass
class Retrain(_ModelFromUsing):
    kind: ClassVar[str] = "retrain"
    word: ClassVar[str] = "RETRAIN"


@dataclass
class Finetune(_ModelFromUsing):
    """FINETUNE name FROM source [USING ...]: the grammar requires the source."""

    kind: ClassVar[str] = "finetune"
    word: ClassVar[str] = "FINETUNE"


@dataclass
class EvaluateModel(_ModelFromUsing):
    kind: ClassVar[str] = "evaluate_model"
    word: ClassVar[str] = "EVALUATE MODEL"


@dataclass
class ExportRecommendations(Statement):
    """EXPORT RECOMMENDATIONS name TO 'path' [(option [=] value, ...)]: every user's top-N as files,
    in the shape of DuckDB's EXPORT DATABASE db TO 'dir' (FORMAT parquet)."""

    kind: ClassVar[str] = "export_recommendations"

    name: str
    path: str
    options: dict[str, OptionValue] = field(default_factory=dict)

    def sql(self) -> str:
        options = f" ({format_options(self.options)})" if self.options else ""
        return f"EXPORT RECOMMENDATIONS {quote_name(self.name)} TO {format_value(self.path)}{options}"


@dataclass
class Query(Statement):
    """A statement sqlglot understands; it may read models as tables and carry SELECT ... USING."""

    kind: ClassVar[str] = "query"

    tree: exp.Expr

    def sql(self, dialect: str = "sqlrec") -> str:
        """sqlrec text by default; ``dialect="duckdb"`` gives DuckDB SQL without the USING options."""
        return self.tree.sql(dialect=dialect)


@dataclass
class Passthrough(Statement):
    """Anything else: DuckDB runs ``text`` as written and judges it."""

    kind: ClassVar[str] = "passthrough"

    def sql(self) -> str:
        return self.text


MODEL_STATEMENTS = (CreateModel, DropModel, AlterModel, ShowModels, Describe, Retrain, Finetune, EvaluateModel,
                    ExportRecommendations)
