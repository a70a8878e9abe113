"""Model relations as Arrow tables: recommendations of the four kinds and describable attributes.

The engine registers these with DuckDB, which runs the rest of the query (joins, filters,
aggregates) over them as over any table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .catalog import StoredModel
from .errors import QueryError, UnknownIdError
from .scoring import flatten_top_k, normalize_rows, top_k

KEY_SIDE = {"user_item": "user", "user_user": "user", "item_item": "item", "item_user": "item"}


def output_columns(model: StoredModel, rtype: str) -> list[str]:
    u, i = model.user_col, model.item_col
    return {
        "user_item": [u, i, "score", "rank"],
        "item_user": [i, u, "score", "rank"],
        "item_item": [i, f"similar_{i}", "score", "rank"],
        "user_user": [u, f"similar_{u}", "score", "rank"],
    }[rtype]


def key_column(model: StoredModel, rtype: str) -> str:
    return model.user_col if KEY_SIDE[rtype] == "user" else model.item_col


def _id_index(model: StoredModel, side: str) -> pd.Index:
    """Hash index id -> position, built once per loaded model."""
    attr = f"_{side}_index"
    if attr not in model.__dict__:
        ids = model.users if side == "user" else model.items
        model.__dict__[attr] = pd.Index(ids.to_pandas())
    return model.__dict__[attr]


def lookup(model: StoredModel, side: str, values: Sequence[Any], where: str) -> tuple[pa.Array, np.ndarray]:
    """Requested ids cast to the id column's type, and their indices (-1 = unknown)."""
    ids = model.users if side == "user" else model.items
    try:
        keys = pa.array(list(values)).cast(ids.type) if len(values) else pa.array([], ids.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        col = model.user_col if side == "user" else model.item_col
        raise QueryError(f"{where}: {list(values)[:5]} cannot be compared with column {col} ({ids.type})") from exc
    positions = _id_index(model, side).get_indexer(keys.to_pandas()) if len(keys) else np.zeros(0, np.int64)
    return keys, np.asarray(positions, np.int64)


def recommend(
    model: StoredModel,
    rtype: str,
    keys: Sequence[Any] | None,
    k: int,
    *,
    exclude_seen: bool,
    candidates: Sequence[Any] | None = None,
    where: str = "SELECT",
    cold: Any = None,
) -> pa.Table:
    """Top-k rows for the requested keys (None = every known user/item) as an Arrow table.

    cold: coldstart.ColdVectors for unknown keys that have features or given interactions.
    """
    if rtype not in model.handler.recommender_types:
        raise QueryError(
            f"{where}: engine {model.engine!r} does not support recommender_type {rtype!r} "
            f"(supported: {', '.join(model.handler.recommender_types)})"
        )
    side = KEY_SIDE[rtype]
    ids = model.users if side == "user" else model.items
    if keys is None:
        key_ids, pos = ids, np.arange(len(ids), dtype=np.int64)
    else:
        key_ids, pos = lookup(model, side, list(dict.fromkeys(keys)), where)
    known = pos >= 0
    cold_rows = cold.positions(key_ids) if cold is not None else np.full(len(pos), -1, np.int64)
    cold_rows[known] = -1
    if not (known | (cold_rows >= 0)).all() and model.options.get("cold_start") == "error":
        unknown = key_ids.filter(pa.array(~known & (cold_rows < 0))).to_pylist()
        raise UnknownIdError(
            f"{where}: unknown {key_column(model, rtype)} {', '.join(map(repr, unknown[:10]))}"
            f"{' and more' if len(unknown) > 10 else ''} (the model's cold_start option is 'error')"
        )

    users_v, users_b = model.handler.user_factors()
    items_v, items_b = model.handler.item_factors()
    cand_idx = None
    if candidates is not None:
        _, cand_pos = lookup(model, "item", list(candidates), where)
        cand_idx = np.unique(cand_pos[cand_pos >= 0])
        if rtype in ("item_user", "user_user"):
            raise QueryError(f"{where}: candidates restricts items; recommender_type {rtype!r} returns users")

    rows_known = pos[known]
    if rtype == "user_item":
        q, qb, t, tb = users_v[rows_known], users_b[rows_known], items_v, items_b
        exclude = model.seen[rows_known] if exclude_seen else None
        self_idx = None
    elif rtype == "item_user":
        q, qb, t, tb = items_v[rows_known], items_b[rows_known], users_v, users_b
        exclude = model.item_seen_by()[rows_known] if exclude_seen else None
        self_idx = None
    else:
        vecs = _normalized(model, side)
        q, qb, t, tb = vecs[rows_known], None, vecs, None
        exclude, self_idx = None, rows_known
    idx, scores = top_k(np.ascontiguousarray(q), qb, t, tb, k, exclude=exclude,
                        candidates=cand_idx, exclude_index=self_idx)
    qrows, tcols, tscores, ranks = flatten_top_k(idx, scores)
    key_pos_known = np.flatnonzero(known)[qrows]
    target_ids = model.items if rtype in ("user_item", "item_item") else model.users
    parts = [(key_pos_known, target_ids.take(pa.array(tcols)), tscores, ranks)]

    if (cold_rows >= 0).any():
        from .coldstart import score as cold_score

        covered = np.flatnonzero(cold_rows >= 0)
        parts.append(cold_score(model, rtype, cold, cold_rows[covered], covered, k, cand_idx, exclude_seen))
    if not (known | (cold_rows >= 0)).all():
        parts.append(_fallback(model, rtype, np.flatnonzero(~known & (cold_rows < 0)), k, cand_idx))
    key_rows = np.concatenate([p[0] for p in parts])
    order = np.lexsort((np.concatenate([p[3] for p in parts]), key_rows))  # by request order, then rank
    table = pa.table({
        "key": key_ids.take(pa.array(key_rows[order])),
        "target": pa.concat_arrays([p[1] for p in parts]).take(pa.array(order)),
        "score": pa.array(np.concatenate([p[2] for p in parts])[order].astype(np.float32)),
        "rank": pa.array(np.concatenate([p[3] for p in parts])[order].astype(np.int32)),
    })
    return table.rename_columns(output_columns(model, rtype))


def _normalized(model: StoredModel, side: str) -> np.ndarray:
    attr = f"_{side}_unit"
    if attr not in model.__dict__:
        vecs = (model.handler.user_factors() if side == "user" else model.handler.item_factors())[0]
        model.__dict__[attr] = normalize_rows(np.asarray(vecs, np.float32))
    return model.__dict__[attr]


def _fallback(model: StoredModel, rtype: str, key_positions: np.ndarray, k: int,
              cand_idx: np.ndarray | None) -> tuple[np.ndarray, pa.Array, np.ndarray, np.ndarray]:
    """Unknown keys get the most popular items (or most active users): the cold_start fallback."""
    if rtype in ("user_item", "item_item"):
        pop, ids = model.popularity, model.items
    else:
        pop, ids = np.asarray(model.seen.getnnz(axis=1), np.float32), model.users
    allowed = np.arange(len(pop)) if cand_idx is None else cand_idx
    top = allowed[np.lexsort((allowed, -pop[allowed]))][:k]
    n = len(key_positions)
    return (np.repeat(key_positions, len(top)), ids.take(pa.array(np.tile(top, n))),
            np.tile(pop[top], n).astype(np.float32), np.tile(np.arange(1, len(top) + 1), n))


# --- describable attributes ---------------------------------------------------------------


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


def info_table(model: StoredModel) -> pa.Table:
    info = model.info
    return _kv([
        ("name", model.name), ("engine", model.engine), ("version", model.version),
        ("status", "trained"), ("created_at", model.created_at),
        ("train_seconds", round(model.train_seconds, 3)),
        ("user_id", info["user_col"]), ("item_id", info["item_col"]),
        ("user_id_type", info["user_type"]), ("item_id_type", info["item_type"]),
        ("rating", info.get("rating_col")), ("threshold", model.options.get("threshold")),
        ("weight", info.get("weight_col")), ("timestamp", info.get("timestamp_col")),
        ("n_users", info["n_users"]), ("n_items", info["n_items"]),
        ("n_pairs", info["n_pairs"]), ("n_positives", info["n_positives"]),
        ("n_source_rows", info["n_source_rows"]),
        ("n_recommendations", model.options.get("n_recommendations")),
        ("cold_start", model.options.get("cold_start")),
        ("training_query", info["source_sql"]),
        *_feature_info(model),
    ])


def _as_model(model: StoredModel) -> Any:
    """The runtime Model over a stored one's fields (sqlrec.attributes describes Models)."""
    import dataclasses

    from .model import Model

    return Model(**{f.name: getattr(model, f.name) for f in dataclasses.fields(model)})


def _feature_info(model: StoredModel) -> list[tuple[str, Any]]:
    from .attributes import _feature_info as feature_info

    return feature_info(_as_model(model))


def model_table(model: StoredModel) -> pa.Table:
    rows = [(k, v) for k, v in sorted(model.params.items())]
    rows += [(k, v) for k, v in sorted(model.handler.describe().items()) if k not in model.params]
    rows.append(("num_threads", model.info.get("num_threads")))
    rows += selection_facts(model)
    return _kv(rows, key="parameter")


def features_table(model: StoredModel) -> pa.Table:
    from .attributes import features_table as describe

    return describe(_as_model(model))


def feature_embeddings_table(model: StoredModel) -> pa.Table:
    from .attributes import feature_embeddings_table as describe

    return describe(_as_model(model))


def metrics_table(model: StoredModel) -> pa.Table:
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


# --- model selection (issue 4): learning curve and embeddings ---------------------------------


def selection_facts(model: StoredModel) -> list[tuple[str, Any]]:
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
    tune = (model.info or {}).get("tuning")
    if tune:
        rows += [("tuning_sampler", tune["sampler"]), ("tuning_metric", tune["metric"]),
                 ("tuning_trials", len(tune["columns"]["trial"])), ("tuning_best_trial", tune["best_trial"])]
    return rows


def history_table(model: StoredModel) -> pa.Table:
    """One row per epoch of the held-out fit: epoch, seconds of training so far, every metric."""
    from .evaluation import METRIC_NAMES

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


def trials_table(model: StoredModel) -> pa.Table:
    """One row per tuning trial (tune = true): its params, validation metrics, seconds, best flag."""
    from .evaluation import METRIC_NAMES
    from .tuning import SEARCHED

    t = model.info.get("tuning") or {}
    cols = t.get("columns") or {}
    n = len(cols.get("trial", []))
    types = {"no_components": pa.int32(), "epochs": pa.int32(), "learning_schedule": pa.string(),
             "loss": pa.string()}
    searched = [p for p in SEARCHED if p in (t.get("searched") or [])]
    return pa.table({
        "trial": pa.array(cols.get("trial", []), pa.int32()),
        "sampler": pa.array([t.get("sampler")] * n, pa.string()),
        **{p: pa.array(cols[p], types.get(p, pa.float64())) for p in searched},
        "split": pa.array([t.get("split")] * n, pa.string()),
        "k": pa.array([t.get("k")] * n, pa.int32()),
        **{m: pa.array(cols.get(m, [None] * n), pa.float64()) for m in METRIC_NAMES},
        "seconds": pa.array(cols.get("seconds", []), pa.float64()),
        "best": pa.array(cols.get("best", []), pa.bool_()),
    })


def _embeddings(model: StoredModel, side: str) -> pa.Table:
    vecs, bias = model.handler.user_factors() if side == "user" else model.handler.item_factors()
    vecs = np.ascontiguousarray(vecs, np.float32)
    n, d = vecs.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32) if n else np.zeros(1, np.int32))
    return pa.table({
        "id": model.users if side == "user" else model.items,
        "bias": pa.array(np.asarray(bias, np.float32)),
        "vector": pa.ListArray.from_arrays(offsets, pa.array(vecs.reshape(-1))),
    })


def user_embeddings_table(model: StoredModel) -> pa.Table:
    return _embeddings(model, "user")


def item_embeddings_table(model: StoredModel) -> pa.Table:
    return _embeddings(model, "item")


ATTRIBUTES = {"info": info_table, "features": features_table, "model": model_table, "metrics": metrics_table,
              "history": history_table, "trials": trials_table, "user_embeddings": user_embeddings_table,
              "item_embeddings": item_embeddings_table, "feature_embeddings": feature_embeddings_table}

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
}


def attributes_table() -> pa.Table:
    return pa.table({"attribute": list(ATTRIBUTE_HELP), "description": list(ATTRIBUTE_HELP.values())})
