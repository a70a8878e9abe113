"""sqlrec's SQL front-end: the sqlglot dialect and the statement objects. No DuckDB, no numpy.

    parse_script("CREATE MODEL m FROM ratings PREDICT movieId; SELECT * FROM m")
    -> [CreateModel(...), Query(tree)]

Options of ``SELECT ... USING k = v`` sit on the query node they follow: ``query_options(node)``.

The names below load on first use (PEP 562): the grammar imports sqlglot (about 0.1 s), which
plain SQL run by DuckDB as written never needs, while sqlrec.store imports sqlrec.sql.quoting on
every start. The first grammar name asked for loads the whole grammar, the sqlrec dialect's
registration with sqlglot included, exactly as importing this package used to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlrec.sql.quoting import quote_ident, quote_literal, quote_name

if TYPE_CHECKING:
    from sqlrec.sql.dialect import SqlRec
    from sqlrec.sql.grammar import StatementError
    from sqlrec.sql.nodes import OPTIONS_ARG, SqlRecOptions, option_value, query_options, set_query_options
    from sqlrec.sql.parser import READ_ONLY, parse_script, parse_select, parse_statement, split_script
    from sqlrec.sql.statements import (
        AlterModel, CreateModel, Describe, DropModel, EvaluateModel, ExportRecommendations, Finetune, OptionValue,
        Passthrough, Query, Retrain, ShowModels, Source, Statement,
    )

__all__ = [
    "READ_ONLY", "split_script", "parse_statement", "parse_script", "parse_select", "query_options", "option_value",
    "set_query_options", "OPTIONS_ARG", "SqlRec", "SqlRecOptions", "StatementError",
    "OptionValue", "Source", "Statement", "CreateModel", "DropModel", "ShowModels", "Describe",
    "Retrain", "Finetune", "AlterModel", "EvaluateModel", "ExportRecommendations", "Query", "Passthrough", "quote_ident", "quote_literal",
    "quote_name",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'sqlrec.sql' has no attribute {name!r}")
    from sqlrec.sql import dialect, grammar, nodes, parser, statements

    for module in (dialect, grammar, nodes, parser, statements):
        for exported in __all__:
            if exported in vars(module) and exported not in globals():
                globals()[exported] = getattr(module, exported)  # found directly from now on
    return globals()[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
