"""BigQuery ML's table functions (ML.RECOMMEND, ML.PREDICT, ML.EVALUATE, ML.WEIGHTS,
ML.TRAINING_INFO) and MindsDB's ``mindsdb.model`` names inside queries.

Run on a query's tree before its model references are found: each ML.* call is computed, registered
as a relation and replaced by it, so it composes with joins, WHERE, ORDER BY and CTEs like any
table; ``mindsdb.m`` becomes ``m``, an ordinary model reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from sqlrec.lazy import compute as pc
from sqlglot import exp

from sqlrec.exec import commands, rewrite
from sqlrec.exec.compat import translate
from sqlrec.models.catalog import Catalog
from sqlrec.errors import QueryError
from sqlrec.models.model import Model
from sqlrec.store.session import Session
from sqlrec.sql import EvaluateModel, Source
from sqlrec.sql.compat.foreign import MINDSDB_PROJECT, ML_FUNCTIONS, SqlRecMLCall

# Our metric -> BigQuery's column of ML.EVALUATE for implicit models.
EVALUATE_COLUMNS = {"map_at_k": "mean_average_precision", "ndcg_at_k": "normalized_discounted_cumulative_gain",
                    "mae": "mean_absolute_error"}


def expand(session: Session, catalog: Catalog, tree: exp.Expression, registered: list[str],
           params: Any = None) -> tuple[bool, Any]:
    """Replace the ML.* calls and mindsdb.m names in `tree` (in place): (whether the statement's
    text must be printed again from the tree, the parameters still to bind). An ML.* input query
    runs here, so its placeholders are bound first. CREATE VIEW keeps its calls: sqlrec.exec.views
    stores the query as written and each read computes them."""
    changed = False
    creates_view = rewrite.created_kind(tree) == "VIEW"
    if params is not None and not creates_view and any(isinstance(t.this, SqlRecMLCall) for t in tree.find_all(exp.Table)):
        # the whole statement's placeholders, the ML.* inputs' included, bound in text order
        rewrite.inline_parameters(tree, params)
        changed, params = True, None
    for table in reversed(list(tree.find_all(exp.Table))):  # innermost first: a call may read another
        call = table.this
        if isinstance(call, SqlRecMLCall):
            if creates_view:
                continue  # the view keeps the call (sqlrec.exec.views); each read computes it
            name = _model_name(catalog, call.this)
            model = catalog.load(name, f"ML.{call.function}(MODEL {name})")
            result = FUNCTIONS[call.function](session, catalog, model, _input_sql(call))
            registered.append(session.register("ml", result))
            alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(call.function.lower()))
            table.replace(exp.Table(this=exp.to_identifier(registered[-1], quoted=True), alias=alias))
            changed = True
        elif (table.db.lower() == MINDSDB_PROJECT and not table.args.get("catalog")
              and catalog.exists(table.name)):
            table.set("db", None)
            changed = True
        elif table.catalog.lower() == MINDSDB_PROJECT and catalog.exists(table.db):
            table.set("catalog", None)  # mindsdb.m.metrics: the model's attribute
            changed = True
    changed = _drop_integrations(session, catalog, tree) or changed
    return changed and not creates_view, params


def _drop_integrations(session: Session, catalog: Catalog, tree: exp.Expression) -> bool:
    """In a query that reads a model, `integration.table` (MindsDB's batch join) reads `table` of
    this database when no DuckDB database or schema is called `integration`, as CREATE MODEL's
    FROM integration (SELECT ...) does (sqlrec.exec.compat.translate.native_create)."""
    tables = list(tree.find_all(exp.Table))
    qualified = [t for t in tables if t.db and not t.args.get("catalog") and isinstance(t.this, exp.Identifier)]
    if not qualified or not any(not t.db and isinstance(t.this, exp.Identifier) and catalog.exists(t.name)
                                for t in tables):
        return False
    unknown = [t for t in qualified if not catalog.exists(t.db)
               and not translate.is_database(session, t.db, "SELECT: reading a MindsDB integration's table")]
    for table in unknown:
        table.set("db", None)
    return bool(unknown)


_CALL = re.compile(r"\bML\s*\.\s*(" + "|".join(ML_FUNCTIONS) + r")\s*\(\s*MODEL\b", re.I)


def check_unparsed(text: str) -> None:
    """A statement sqlglot could not read goes to DuckDB as written; with an ML.* call in it,
    DuckDB could only fail on that call, so say what went wrong instead."""
    found = _CALL.search(text)
    if found:
        raise QueryError(f"ML.{found[1].upper()}: sqlrec could not read the statement around this call (check its "
                         "syntax), so the call cannot be computed")


def _model_name(catalog: Catalog, table: exp.Expression) -> str:
    """The model of MODEL m, dataset.m or `project.dataset.m` (BigQuery's qualifiers dropped)."""
    name = table.name if isinstance(table, exp.Table) else table.sql()
    if not catalog.exists(name) and "." in name:
        name = name.rsplit(".", 1)[-1]
    return name


def _input_sql(call: SqlRecMLCall) -> str | None:
    relation = call.args.get("expression")
    if relation is None:
        return None
    inner = relation.this if isinstance(relation, exp.Subquery) else relation
    return inner.sql(dialect="duckdb") if isinstance(inner, exp.Query) else f"SELECT * FROM {relation.sql(dialect='duckdb')}"


def _column(table: pa.Table, name: str, where: str) -> pa.ChunkedArray:
    found = next((c for c in table.column_names if c.lower() == name.lower()), None)
    if found is None:
        raise QueryError(f"{where}: the input has no column {name!r} (columns: {', '.join(table.column_names)})")
    return table.column(found)


def rating_col(model: Model) -> str:
    return model.settings.rating or model.settings.weight or "rating"


def _predicted(model: Model) -> str:
    """BigQuery's column: a predicted rating for explicit feedback, a confidence for implicit."""
    if model.handler.rating_range() is not None:
        return f"predicted_{rating_col(model)}"
    return f"predicted_{rating_col(model)}_confidence"


def recommend(session: Session, catalog: Catalog, model: Model, sql: str | None) -> pa.Table:
    """Every (user, item) pair not in the user's training rows with its score, best first per user."""
    where = f"ML.RECOMMEND(MODEL {model.name})"
    users = None
    if sql is not None:
        got = session.arrow(sql, where=f"{where}: the users query failed")
        users = [u for u in _column(got, model.user_col, where).to_pylist() if u is not None]
    rows = model.recommend("user_item", users, len(model.items), exclude_seen=True, where=where)
    return pa.table({model.user_col: rows.column(0), model.item_col: rows.column(1),
                     _predicted(model): rows.column(2).cast(pa.float64())})


def predict(session: Session, catalog: Catalog, model: Model, sql: str | None) -> pa.Table:
    """The input rows with the model's score of each (user, item) pair; NULL for unknown ids."""
    where = f"ML.PREDICT(MODEL {model.name})"
    if sql is None:
        raise QueryError(f"{where}: give the pairs to score: ML.PREDICT(MODEL {model.name}, "
                         f"(SELECT {model.user_col}, {model.item_col} FROM ...))")
    got = session.arrow(sql, where=f"{where}: the input query failed")
    _, upos = model.side("user").lookup(_column(got, model.user_col, where).to_pylist(), where)
    _, ipos = model.side("item").lookup(_column(got, model.item_col, where).to_pylist(), where)
    known = (upos >= 0) & (ipos >= 0)
    scores = model.score_pairs(upos[known], ipos[known]).astype(np.float64)
    if (bounds := model.handler.rating_range()) is not None:
        scores = np.clip(scores, *bounds)  # a rating on the training scale, as recommender_type 'rating'
    full = np.zeros(len(known))
    full[known] = scores
    return got.append_column(_predicted(model), pa.array(full, mask=~known))


def evaluate(session: Session, catalog: Catalog, model: Model, sql: str | None) -> pa.Table:
    """EVALUATE MODEL's metrics, the ones BigQuery names under its names."""
    source = Source(query=sql) if sql is not None else None
    table = commands.evaluate(session, catalog, EvaluateModel(model.name, source))
    if "rmse" in table.column_names:  # BigQuery reports the squared error of explicit models
        table = table.append_column("mean_squared_error", pc.multiply(table.column("rmse"), table.column("rmse")))
    return table.rename_columns([EVALUATE_COLUMNS.get(c, c) for c in table.column_names])


def weights(session: Session, catalog: Catalog, model: Model, sql: str | None) -> pa.Table:
    """One row per user and item: processed_input (the column), feature (the id as text),
    factor_weights (a list of {factor, weight}) and intercept (the bias)."""
    parts = []
    for side in (model.side("user"), model.side("item")):
        vecs, bias = side.factors
        n, d = vecs.shape
        structs = pa.StructArray.from_arrays(
            [pa.array(np.tile(np.arange(d, dtype=np.int64), n)), pa.array(vecs.astype(np.float64).ravel())],
            names=["factor", "weight"])
        parts.append(pa.table({
            "processed_input": pa.array([side.column] * n, pa.string()),
            "feature": side.ids.cast(pa.string()),
            "factor_weights": pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * d), structs),
            "intercept": pa.array(np.zeros(n) if bias is None else bias.astype(np.float64)),
        }))
    return pa.concat_tables(parts)


def training_info(session: Session, catalog: Catalog, model: Model, sql: str | None) -> pa.Table:
    """training_run, iteration, duration_ms: per epoch of the held-out fit (with evaluation, and its
    metrics beside), else one row for the whole fit. sqlrec's engines record no training loss."""
    hist = (model.metrics or {}).get("history") or {}
    seconds = hist.get("seconds") or []
    if not seconds:
        epochs = model.params.get("epochs")
        return pa.table({"training_run": pa.array([0], pa.int64()),
                         "iteration": pa.array([(epochs or 1) - 1], pa.int64()),
                         "duration_ms": pa.array([int(model.train_seconds * 1000)], pa.int64())})
    durations = np.diff(np.asarray([0.0, *seconds])) * 1000
    metrics = {n: pa.array(v, pa.float64()) for n, v in hist.items() if n not in ("epoch", "seconds")}
    return pa.table({"training_run": pa.array([0] * len(seconds), pa.int64()),
                     "iteration": pa.array(range(len(seconds)), pa.int64()),
                     "duration_ms": pa.array(durations.astype(np.int64)), **metrics})


FUNCTIONS: dict[str, Callable[[Session, Catalog, Model, Any], pa.Table]] = {
    "RECOMMEND": recommend, "PREDICT": predict, "EVALUATE": evaluate, "WEIGHTS": weights,
    "TRAINING_INFO": training_info,
}
