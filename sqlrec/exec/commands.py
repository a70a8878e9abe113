"""The model statements other than CREATE and SELECT: each takes the statement and returns the
Arrow table that is its result (the router hands it to DuckDB)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from sqlrec.models import attributes
from sqlrec.sql import options as opts
from sqlrec.exec import held_out, selection
from sqlrec.models.catalog import Catalog
from sqlrec.errors import OptionError, QueryError, did_you_mean
from sqlrec.models.model import Model
from sqlrec.store.session import Session
from sqlrec.sql import AlterModel, Describe, DropModel, EvaluateModel

SUMMARY_METRICS = ("precision_at_k", "recall_at_k", "auc")


def status_table(model: Model, status: str) -> pa.Table:
    """The one-row result of CREATE MODEL (and later RETRAIN / FINETUNE)."""
    values = (model.metrics or {}).get("values", {})
    return pa.table({
        "name": [model.name], "engine": [model.engine], "version": pa.array([model.version], pa.int32()),
        "status": [status], "n_users": [model.info.user.n], "n_items": [model.info.item.n],
        "n_interactions": [model.info.n_positives],
        "train_seconds": [round(model.train_seconds, 3)],
        **{m: pa.array([values.get(m)], pa.float64()) for m in SUMMARY_METRICS},
    })


def drop(session: Session, catalog: Catalog, st: DropModel) -> pa.Table:
    if not catalog.exists(st.name):
        if st.if_exists:
            return pa.table({"name": [st.name], "status": ["not found"]})
        catalog.require(st.name, "DROP MODEL")
    if st.version is not None:
        catalog.drop_version(st.name, st.version, f"DROP MODEL {st.name} VERSION {st.version}")
        return pa.table({"name": [st.name], "status": [f"version {st.version} dropped"]})
    catalog.drop(st.name, f"DROP MODEL {st.name}")
    return pa.table({"name": [st.name], "status": ["dropped"]})


def alter(session: Session, catalog: Catalog, st: AlterModel) -> pa.Table:
    catalog.set_version(st.name, st.version, f"ALTER MODEL {st.name} SET VERSION {st.version}")
    return pa.table({"name": [st.name], "version": pa.array([st.version], pa.int32()), "status": ["active"]})


def show(session: Session, catalog: Catalog, st: Any) -> pa.Table:
    rows = catalog.summaries()
    return pa.table({
        "name": pa.array([r.name for r in rows], pa.string()),
        "engine": pa.array([r.engine for r in rows], pa.string()),
        "version": pa.array([r.version for r in rows], pa.int32()),
        "user_id": pa.array([r.user_col for r in rows], pa.string()),
        "item_id": pa.array([r.item_col for r in rows], pa.string()),
        "n_users": pa.array([r.n_users for r in rows], pa.int64()),
        "n_items": pa.array([r.n_items for r in rows], pa.int64()),
        "created_at": pa.array([r.created_at.replace(microsecond=0) for r in rows], pa.timestamp("s")),
        "train_seconds": pa.array([r.train_seconds for r in rows], pa.float64()),
        **{m: pa.array([r.metrics.get(m) for r in rows], pa.float64()) for m in SUMMARY_METRICS},
    })


def describe(session: Session, catalog: Catalog, st: Describe) -> pa.Table:
    where = f"DESCRIBE {st.name}"
    model = catalog.load(st.name, where)
    if st.attribute is None:
        return attributes.attributes_table()
    attr = st.attribute.lower()
    if attr == "versions":
        return catalog.versions(st.name, where)
    if attr not in attributes.ATTRIBUTES:
        raise QueryError(
            f"{where}: unknown attribute {st.attribute!r}{did_you_mean(attr, attributes.ATTRIBUTES)}; "
            f"attributes: {', '.join(attributes.ATTRIBUTES)}")
    return attributes.ATTRIBUTES[attr](model)


def _evaluate_note(model: Model, counts: dict[str, Any]) -> str | None:
    """What EVALUATE MODEL left out, in words (None when nothing was)."""
    parts = []
    if counts.get("n_ignored_rows"):
        parts.append(f"ignored {counts['n_ignored_rows']} rows with ids the model does not know "
                     f"({counts['n_unknown_users']} unknown {model.user_col}, "
                     f"{counts['n_unknown_items']} unknown {model.item_col})")
    if counts.get("n_below_threshold"):
        parts.append(f"skipped {counts['n_below_threshold']} rows below the rating threshold")
    if counts.get("n_seen_dropped"):
        parts.append(f"dropped {counts['n_seen_dropped']} pairs the model saw in training (exclude_seen)")
    return "; ".join(parts) or None


def evaluate(session: Session, catalog: Catalog, st: EvaluateModel) -> pa.Table:
    """EVALUATE MODEL m [FROM test] [USING k = ...]: one row of metrics.

    Without FROM: the model's stored held-out split, scored with the held-out fit's stored
    factors (the final model has seen the test pairs). With FROM: the stored model, on the
    query's (user, item) rows mapped through the model's id maps; rows with unknown ids
    cannot be ranked and are counted in the result instead.
    """
    where = f"EVALUATE MODEL {st.name}"
    model = catalog.load(st.name, where)
    given = dict(st.options)
    q = opts.resolve(given, opts.EVALUATE_OPTIONS, f"{where} USING")
    stored = model.metrics or {}
    k = model.n_recommendations(q["k"] or stored.get("k") or model.settings.eval_k)
    counts: dict[str, Any] = {}
    if st.source is None:
        for name in ("exclude_seen", "threshold"):
            if name in {o.lower() for o in given}:
                raise OptionError(f"{where}: option {name} applies to a test query (FROM ...) only")
        if not selection.has_held_out(model.extra_arrays):
            raise QueryError(
                f"{where}: the model has no stored held-out split (create it with evaluation = true), "
                f"or give test data: EVALUATE MODEL {model.name} FROM (SELECT {model.user_col}, "
                f"{model.item_col} FROM ...)")
        result = selection.evaluate_held_out(model.extra_arrays, k)
        source = f"held-out {stored.get('split')} split"
    else:
        users, items, counts = held_out.evaluation_pairs(session, model, st.source.select_sql(), st.source.database,
                                                   q["threshold"], where)
        seen = model.seen if q["exclude_seen"] else None
        result = selection.evaluate_pairs(model.handler, seen, model.popularity, users, items, k)
        rated = held_out.evaluation_ratings(session, model, st.source.select_sql(), st.source.database, where)
        if rated is not None:
            result["values"].update(selection.rating_errors_on(model.handler, *rated))
        counts["n_seen_dropped"] = result["n_seen"]
        source = "query"
    return pa.table({
        "name": [model.name], "version": pa.array([model.version], pa.int32()),
        "evaluated_on": [source], "k": pa.array([k], pa.int32()),
        **{m: pa.array([v], pa.float64()) for m, v in result["values"].items()},
        "n_test_users": pa.array([result["n_users"]], pa.int64()),
        "n_test": pa.array([result["n_test"]], pa.int64()),
        **{c: pa.array([counts.get(c)], pa.int64()) for c in (
            "n_rows", "n_unknown_users", "n_unknown_items", "n_ignored_rows", "n_seen_dropped")},
        "note": pa.array([_evaluate_note(model, counts)], pa.string()),
    })
