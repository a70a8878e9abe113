"""sqlrec's SQL front-end: the sqlglot dialect and the statement objects. No DuckDB, no numpy.

    parse_script("CREATE MODEL m FROM ratings PREDICT movieId; SELECT * FROM m")
    -> [CreateModel(...), Query(tree)]

Options of ``SELECT ... USING k = v`` sit on the query node they follow: ``query_options(node)``.
"""

from sqlrec.sql.dialect import SqlRec
from sqlrec.sql.grammar import StatementError
from sqlrec.sql.nodes import OPTIONS_ARG, SqlRecOptions, option_value, query_options, set_query_options
from sqlrec.sql.parser import READ_ONLY, parse_script, parse_select, parse_statement, split_script
from sqlrec.sql.quoting import quote_ident, quote_literal, quote_name
from sqlrec.sql.statements import (
    AlterModel,
    CreateModel,
    Describe,
    DropModel,
    EvaluateModel,
    ExportRecommendations,
    Finetune,
    OptionValue,
    Passthrough,
    Query,
    Retrain,
    ShowModels,
    Source,
    Statement,
)

__all__ = [
    "READ_ONLY", "split_script", "parse_statement", "parse_script", "parse_select", "query_options", "option_value",
    "set_query_options", "OPTIONS_ARG", "SqlRec", "SqlRecOptions", "StatementError",
    "OptionValue", "Source", "Statement", "CreateModel", "DropModel", "ShowModels", "Describe",
    "Retrain", "Finetune", "AlterModel", "EvaluateModel", "ExportRecommendations", "Query", "Passthrough", "quote_ident", "quote_literal",
    "quote_name",
]
