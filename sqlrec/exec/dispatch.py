"""The full path: a statement parsed by sqlrec's grammar goes to its command, or to DuckDB.

Model statements go to the command of their class in ``COMMANDS``; a command returns its result
as an Arrow table, which is handed to DuckDB once, so that every result, model statements
included, is read from the DuckDB connection handle the same way. Queries over models
(sqlrec.exec.queries) leave DuckDB's own result there; statements sqlrec has no part in run in
DuckDB as written.

This module pulls in sqlglot, numpy, pyarrow and every command; the router (sqlrec.exec.router)
imports it when a statement first needs it, so plain SQL that DuckDB runs as written never does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
from sqlglot import exp

from sqlrec.errors import ReadOnlyError
from sqlrec.exec import commands, export, finetune, lifecycle, queries, rewrite, training, views
from sqlrec.exec.compat import translate
from sqlrec.exec.context import Context
from sqlrec.exec.plans import Plans
from sqlrec.models.catalog import Catalog
from sqlrec.store.session import Session
from sqlrec.store.statements import DuckDBParser
from sqlrec.sql import (
    OPTIONS_ARG, READ_ONLY, AlterModel, CreateModel, Describe, DropModel, EvaluateModel, ExportRecommendations, Finetune,
    Query, Retrain, ShowModels, Statement, parse_script,
)
from sqlrec.sql.classify import MODEL_STATEMENTS, WRITE, statement_access
from sqlrec.sql.compat.foreign import BigQueryCreateModel, CreateMLEngine, PredictUsing, ShowMLEngines

__all__ = ["COMMANDS", "Command", "Plans", "changes_catalog", "duckdb_statement", "parse_script", "run"]

Command = Callable[[Context, Any, Any], "pa.Table | None"]


def _create(ctx: Context, st: CreateModel, params: Any) -> pa.Table:
    if isinstance(st, BigQueryCreateModel):
        with translate.bigquery_names(st):
            return _create(ctx, translate.bigquery_create(st), params)
    st = translate.native_create(ctx.session, st)  # MindsDB's and ThanoSQL's habits
    model, status = training.create(ctx.session, ctx.catalog, st, ctx.cancelled)
    return commands.status_table(model, status)


def _retrain(ctx: Context, st: Retrain, params: Any) -> pa.Table:
    model, _ = lifecycle.retrain(ctx.session, ctx.catalog, st, ctx.cancelled)
    return commands.status_table(model, "retrained")


def _finetune(ctx: Context, st: Finetune, params: Any) -> pa.Table:
    model, status = finetune.finetune(ctx.session, ctx.catalog, st, ctx.cancelled)
    return commands.status_table(model, status)


def _query(ctx: Context, st: Query, params: Any) -> None:
    queries.run(ctx.session, ctx.catalog, st, params, ctx.registered, ctx.cancelled, scored=ctx.scored)


def _plain(command: Callable[[Session, Catalog, Any], pa.Table]) -> Command:
    return lambda ctx, st, params: command(ctx.session, ctx.catalog, st)


# Statement class -> command. Which of them write is sqlrec.sql.classify's MODEL_STATEMENTS.
COMMANDS: dict[type[Statement], Command] = {
    CreateModel: _create,
    DropModel: _plain(commands.drop),
    AlterModel: _plain(commands.alter),
    ShowModels: _plain(commands.show),
    Describe: _plain(commands.describe),
    EvaluateModel: _plain(commands.evaluate),
    Retrain: _retrain,
    Finetune: _finetune,
    ExportRecommendations: _plain(export.export),
    Query: _query,
    BigQueryCreateModel: _create,
    CreateMLEngine: _plain(translate.create_ml_engine),
    ShowMLEngines: _plain(translate.show_ml_engines),
    PredictUsing: _plain(translate.predict_using),
}


def changes_catalog(st: Statement) -> bool:
    """Whether `st` may change the catalog or which versions a transaction sees: DuckDB's own
    statements (DROP SCHEMA, COMMIT, ROLLBACK, INSERT ...) and queries that are not reads."""
    return COMMANDS.get(type(st)) is None or (isinstance(st, Query) and not isinstance(st.tree, READ_ONLY))


def run(ctx: Context, st: Statement, params: Any, read_only: bool) -> None:
    """Run one parsed statement; its result stays pending on ctx.session."""
    command = COMMANDS.get(type(st))
    if isinstance(st, Describe) and not (st.explicit or ctx.catalog.exists(st.name)):
        command = None  # DESCRIBE t of a table is DuckDB's
    if command is None:
        return queries.passthrough(ctx.session, ctx.catalog, st, params, ctx.registered, ctx.cancelled, ctx.scored)
    # Read-only: a model statement that writes is refused before its command trains or
    # writes files. DuckDB's own statements meet the file's read-only mode in DuckDB, and
    # what only this process sees (SET, CREATE TEMP, ATTACH) stays the caller's choice; a
    # read-only server refuses those too (sqlrec.serve asks the same rule, sqlrec.sql.classify).
    if read_only and type(st) in MODEL_STATEMENTS and statement_access(st, DuckDBParser()).access == WRITE:
        raise ReadOnlyError(f"{st.text.split()[0].upper()}: the database is open read-only")
    table = command(ctx, st, params)
    if table is not None:
        ctx.registered.append(ctx.session.register("rel", table))
        ctx.session.run(f'SELECT * FROM "{ctx.registered[-1]}"')


def duckdb_statement(catalog: Catalog, sql: str) -> str | None:
    """'query' when `sql` is one read-only query that reads no model and has no USING,
    'other' for one other statement of DuckDB's own (CREATE TABLE, INSERT ...), None when
    sqlrec has a part in it (a model statement, a query over a model, a script)."""
    statements = parse_script(sql)
    if len(statements) != 1 or (type(statements[0]) in COMMANDS and type(statements[0]) is not Query):
        return None
    st = statements[0]
    if type(st) is not Query:
        return "other"
    if any(node.args.get(OPTIONS_ARG) for node in st.tree.find_all(exp.Expression)):
        return None
    if rewrite.find_model_refs(st.tree, catalog.exists) or views.reads_views(catalog.session, catalog, st.tree):
        return None
    return "query" if isinstance(st.tree, READ_ONLY) else "other"
