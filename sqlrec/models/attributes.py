"""What a model can describe about itself: DESCRIBE m.<attribute> and SELECT * FROM m.<attribute>.

Each attribute is an Arrow table built from a loaded Model (no DuckDB, no SQL). ``ATTRIBUTE_HELP``
names them; the query rewriter and the shell's completion read the names from here.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from sqlrec.engines import HANDLERS
from sqlrec.numeric.evaluation import METRIC_NAMES
from sqlrec.models.model import Model

ATTRIBUTE_HELP = {
    "info": "name, version, columns, id types, data sizes, training query",
    "features": "user and item features the model uses",
    "model": "engine parameters and learned-model facts",
    "metrics": "held-out evaluation metrics (evaluation = true)",
    "history": "learning curve: metrics after every epoch of the held-out fit (evaluation = true)",
    "trials": "tuning (tune = true): params, validation metrics per trial",
    "user_embeddings": "id, bias, vector FLOAT[] of every user",
    "item_embeddings": "id, bias, vector FLOAT[] of every item",
    "feature_embeddings": "side, feature, kind, bias, vector FLOAT[] of every user and item feature",
    "versions": "every stored version: kind, source, sizes, metrics, active (read from the catalog)",
}


def _kv(rows: list[tuple[str, Any]], key: str = "property") -> pa.Table:
    return pa.table({key: [r[0] for r in rows], "value": [_text(r[1]) for r in rows]})


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def info_table(model: Model) -> pa.Table:
    info, options = model.info, model.settings
    return _kv([
        ("name", model.name), ("engine", model.engine), ("version", model.version),
        ("status", "trained"), ("created_at", model.created_at),
        ("train_seconds", round(model.train_seconds, 3)),
        ("user_id", info.user.column), ("item_id", info.item.column),
        ("user_id_type", info.user.type), ("item_id_type", info.item.type),
        ("rating", info.rating_col), ("threshold", options.threshold),
        ("weight", info.weight_col), ("timestamp", info.timestamp_col),
        ("n_users", info.user.n), ("n_items", info.item.n),
        ("n_pairs", info.n_pairs), ("n_positives", info.n_positives),
        ("n_source_rows", info.n_source_rows),
        ("n_recommendations", options.n_recommendations),
        ("cold_start", options.cold_start),
        ("training_query", info.source_sql),
        *_feature_info(model),
    ])


def model_table(model: Model) -> pa.Table:
    rows = [(k, v) for k, v in sorted(model.params.items())]
    rows += [(k, v) for k, v in sorted(model.handler.describe().items()) if k not in model.params]
    rows.append(("num_threads", model.info.num_threads))
    # sqlrec.numeric.approx's index: lists, lists scanned, recall@10 against exact measured at save
    index = model.info.approximate_index
    rows += [(f"approximate_{k}", v) for k, v in sorted((index.to_dict() if index else {}).items())]
    rows += selection_facts(model)
    return _kv(rows, key="parameter")


def metrics_table(model: Model) -> pa.Table:
    m = model.metrics or {}
    values = m.get("values", {})
    n = len(values)
    return pa.table({
        "metric": pa.array(list(values), pa.string()),
        "value": pa.array([float(v) for v in values.values()], pa.float64()),
        "k": pa.array([m.get("k")] * n, pa.int32()),
        "split": pa.array([m.get("split")] * n, pa.string()),
        "test_size": pa.array([m.get("test_size")] * n, pa.float64()),
        "n_test_users": pa.array([m.get("n_test_users")] * n, pa.int64()),
    })


# --- model selection: learning curve and embeddings ---------------------------------


def selection_facts(model: Model) -> list[tuple[str, Any]]:
    """Learning-curve facts for DESCRIBE m.model: where training got most of its AUC, what
    early stopping chose, and what tuning chose."""
    m = model.metrics or {}
    rows: list[tuple[str, Any]] = []
    if (m.get("history") or {}).get("epoch"):
        rows.append(("epoch_95pct_best_auc", m.get("epoch_95_auc")))
    stop = m.get("early_stopping")
    if stop:
        rows += [("early_stopping_metric", stop["metric"]), ("early_stopping_best_epoch", stop["best_epoch"]),
                 ("early_stopping_epochs_run", stop["epochs_run"])]
    tune = model.info.tuning
    if tune:
        rows += [("tuning_sampler", tune["sampler"]), ("tuning_metric", tune["metric"]),
                 ("tuning_trials", len(tune["columns"]["trial"])), ("tuning_best_trial", tune["best_trial"])]
    return rows


def history_table(model: Model) -> pa.Table:
    """One row per epoch of the held-out fit: epoch, seconds of training so far, every metric."""
    m = model.metrics or {}
    hist = m.get("history") or {}
    names = [n for n in hist if n not in ("epoch", "seconds")] or list(METRIC_NAMES)
    n = len(hist.get("epoch", []))
    return pa.table({
        "epoch": pa.array(hist.get("epoch", []), pa.int32()),
        "seconds": pa.array(hist.get("seconds", []), pa.float64()),
        "split": pa.array([m.get("history_split")] * n, pa.string()),
        "k": pa.array([m.get("k")] * n, pa.int32()),
        **{name: pa.array(hist.get(name, []), pa.float64()) for name in names},
    })


def trials_table(model: Model) -> pa.Table:
    """One row per tuning trial (tune = true): its params, validation metrics, seconds, best flag."""

    t = model.info.tuning or {}
    cols = t.get("columns") or {}
    n = len(cols.get("trial", []))
    # Column types from the kinds of the searched parameters, as the searched engines declare them.
    engines = [HANDLERS[e] for e in t.get("engines") or [model.engine] if e in HANDLERS]
    kinds = {name: p.kind for cls in engines for name, p in cls.search_space.items()}
    arrow = {"int": pa.int32(), "choice": pa.string()}
    searched = [p for p in t.get("searched") or [] if p in kinds]
    return pa.table({
        "trial": pa.array(cols.get("trial", []), pa.int32()),
        "sampler": pa.array([t.get("sampler")] * n, pa.string()),
        **({"engine": pa.array(cols["engine"], pa.string())} if "engine" in cols else {}),
        **{p: pa.array(cols[p], arrow.get(kinds[p], pa.float64())) for p in searched},
        "split": pa.array([t.get("split")] * n, pa.string()),
        "k": pa.array([t.get("k")] * n, pa.int32()),
        **{m: pa.array(cols.get(m, [None] * n), pa.float64()) for m in METRIC_NAMES},
        # tune_metric on a second validation split, for the best trials the choice rechecked
        "second_validation": pa.array(cols.get("second_validation", [None] * n), pa.float64()),
        "seconds": pa.array(cols.get("seconds", []), pa.float64()),
        "best": pa.array(cols.get("best", []), pa.bool_()),
    })


def _vectors(vecs: np.ndarray) -> pa.ListArray:
    """A float32 matrix as a FLOAT[] column, one list per row."""
    vecs = np.ascontiguousarray(vecs, np.float32)
    n, d = vecs.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32) if n else np.zeros(1, np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(vecs.reshape(-1)))


def _embeddings(model: Model, side: str) -> pa.Table:
    s = model.side(side)
    vecs, bias = s.factors
    return pa.table({"id": s.ids, "bias": pa.array(np.asarray(bias, np.float32)), "vector": _vectors(vecs)})


def user_embeddings_table(model: Model) -> pa.Table:
    return _embeddings(model, "user")


def item_embeddings_table(model: Model) -> pa.Table:
    return _embeddings(model, "item")




# --- features (sqlrec.ingest.features writes the specs these read) ----------------------------------


def _feature_sides(model: Model) -> list[tuple[str, int, dict[str, Any] | None]]:
    return [(side, model.info.side(side).n, model.info.side(side).features) for side in ("user", "item")]


def _feature_info(model: Model) -> list[tuple[str, Any]]:
    """DESCRIBE m.info lines of a hybrid model: its sources and the ids only they know."""
    rows: list[tuple[str, Any]] = []
    for side, _, spec in _feature_sides(model):
        catalogue_only = model.info.side(side).n_catalogue_only
        if catalogue_only is not None:  # option users / items (sqlrec.ingest.known_ids)
            rows += [(f"{side}s", model.settings.catalogue(side)), (f"n_{side}s_only_in_catalogue", catalogue_only)]
        if spec is not None:
            rows += [(f"{side}_features", spec["source"]), (f"n_{side}_features", len(spec["names"])),
                     (f"n_{side}s_only_in_features", spec["n_feature_only"]),
                     (f"n_{side}s_without_features", spec["n_without_features"]),
                     (f"{side}_feature_weight", spec.get("feature_weight")),
                     (f"{side}_feature_values", spec.get("feature_values", "raw"))]
    return rows


def features_table(model: Model) -> pa.Table:
    """One row per feature: side, feature, kind, n_entities (users/items having it). Ids known
    only from a feature source are counted in DESCRIBE m.info (n_items_only_in_features)."""
    rows: list[tuple[Any, ...]] = []
    for side, n, spec in _feature_sides(model):
        if spec is None:
            rows.append((side, "identity", "identity", n))
            continue
        if spec["identity"]:
            rows.append((side, "identity", "identity",
                         n - spec["n_feature_only"] - (model.info.side(side).n_catalogue_only or 0)))
        rows += zip([side] * len(spec["names"]), spec["names"], spec["kinds"], spec["n_entities"])
    cols = list(zip(*rows)) if rows else [[], [], [], []]
    return pa.table({
        "side": pa.array(cols[0], pa.string()), "feature": pa.array(cols[1], pa.string()),
        "kind": pa.array(cols[2], pa.string()), "n_entities": pa.array(cols[3], pa.int64()),
    })


def feature_embeddings_table(model: Model) -> pa.Table:
    """side, feature, kind, bias, vector FLOAT[] of every metadata feature (identity features are
    the users' and items' own vectors: see m.user_embeddings / m.item_embeddings)."""
    parts = []
    for side, _, spec in _feature_sides(model):
        if spec is None or not hasattr(model.handler, "feature_factors"):
            continue
        emb, bias = model.handler.feature_factors(side)
        n = len(spec["names"])
        parts.append(pa.table({
            "side": pa.array([side] * n, pa.string()),
            "feature": pa.array(spec["names"], pa.string()),
            "kind": pa.array(spec["kinds"], pa.string()),
            "bias": pa.array(np.asarray(bias[spec["n_identity"]:], np.float32)),
            "vector": _vectors(emb[spec["n_identity"]:]),
        }))
    if not parts:
        return pa.table({"side": pa.array([], pa.string()), "feature": pa.array([], pa.string()),
                         "kind": pa.array([], pa.string()), "bias": pa.array([], pa.float32()),
                         "vector": pa.array([], pa.list_(pa.float32()))})
    return pa.concat_tables(parts)


ATTRIBUTES = {"info": info_table, "features": features_table, "model": model_table, "metrics": metrics_table,
              "history": history_table, "trials": trials_table, "user_embeddings": user_embeddings_table,
              "item_embeddings": item_embeddings_table, "feature_embeddings": feature_embeddings_table}


def attributes_table() -> pa.Table:
    return pa.table({"attribute": list(ATTRIBUTE_HELP), "description": list(ATTRIBUTE_HELP.values())})
