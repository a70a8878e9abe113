"""Cold start at query time: vectors for users and items the model was not trained on.

An id the model does not know (the key of a query: a user for user_item / user_user, an item
for item_item / item_user) gets, in this order:

1. fold-in, when the query gives its interactions (``USING interactions = 'SELECT ...'``):
   its vector is fitted to them against the model's fixed other side (regularised least
   squares, see ``fold_in``);
2. its features given in the query (``USING user_features = ...`` / ``item_features = ...``);
3. with ``cold_start = 'features'``: its row in the model's own feature source, which is
   re-run at query time (for the unknown ids only), so rows added to that table after training
   are used at once; a changed row of an id the model knows needs RETRAIN;
4. otherwise ``cold_start`` decides: popularity (most popular items / most active users), or
   error (a sqlrec error naming the ids).

Information in the query (1, 2) is always used; ``cold_start`` governs what happens without it.
A features vector is the normalised metadata row times the feature embeddings (and biases), as
LightFM's own predict does for an id with no identity feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from . import features
from .catalog import StoredModel
from .data import find_column, quote_ident
from .errors import ColumnError, QueryError
from .session import Session

# Fold-in ridge, in units of the mean squared norm of the fixed side's vectors; measured on
# MovieLens (bench/coldstart.py): 1 to 10 all beat popularity, 10 was best.
FOLD_IN_L2 = 10.0


@dataclass
class ColdVectors:
    """Vectors for some ids the model does not know, on the query's key side."""

    side: str
    ids: pa.Array  # typed like the model's ids
    vectors: np.ndarray  # (n, d) float32
    biases: np.ndarray  # (n,) float32
    given: list[np.ndarray]  # per id: target indices of its given interactions (excluded when seen is)

    def positions(self, key_ids: pa.Array) -> np.ndarray:
        """Row in this set of every key id (-1 = not covered)."""
        if len(key_ids) == 0 or len(self.ids) == 0:
            return np.full(len(key_ids), -1, np.int64)
        return np.asarray(pd.Index(self.ids.to_pandas()).get_indexer(key_ids.to_pandas()), np.int64)


def _side(rtype: str) -> str:
    return "user" if rtype in ("user_item", "user_user") else "item"


def _other(side: str) -> str:
    return "item" if side == "user" else "user"


def _id_col(model: StoredModel, side: str) -> str:
    return model.user_col if side == "user" else model.item_col


def _id_type(model: StoredModel, side: str) -> str:
    return model.info["user_type"] if side == "user" else model.info["item_type"]


def _ids(model: StoredModel, side: str) -> pa.Array:
    return model.users if side == "user" else model.items


def _spec(model: StoredModel, side: str) -> dict[str, Any] | None:
    return (model.info.get("features") or {}).get(side)


def _run(duck: duckdb.DuckDBPyConnection, sql: str, option: str, where: str) -> pa.Table:
    return Session(duck).arrow(features.source_query(sql, option, where), where=f"{where}: the {option} query failed")


def prepare(duck: duckdb.DuckDBPyConnection, model: StoredModel, rtype: str, keys: list[Any] | None,
            options: dict[str, Any], where: str) -> tuple[list[Any] | None, ColdVectors | None]:
    """(keys, vectors for the unknown ones). Without a key filter, the ids of the information
    given in the query become the keys (SELECT * FROM m USING interactions = '...')."""
    from .relations import lookup

    side = _side(rtype)
    for option in ("user_features", "item_features"):
        if options.get(option) is not None and not option.startswith(side):
            raise QueryError(
                f"{where}: USING {option} describes new {option[:4]}s, but recommender_type {rtype!r} "
                f"asks about {_id_col(model, side)}; use USING {side}_features")
    given_features = options.get(f"{side}_features")
    spec = _spec(model, side)
    if given_features is not None and spec is None:
        raise QueryError(
            f"{where}: model {model.name!r} has no {side} features, so USING {side}_features cannot be "
            f"used; create it with {side}_features = 'SELECT {_id_col(model, side)}, ... FROM ...'")
    inter = _interactions(duck, model, side, options.get("interactions"), where)
    if keys is None and (inter is not None or given_features is not None):
        found: list[Any] = []
        if inter is not None:
            found += inter[0]
        if given_features is not None:
            ids, _ = features.rows_for(Session(duck), spec, given_features, option=f"{side}_features",
                                       id_col=_id_col(model, side), id_type=_id_type(model, side),
                                       wanted=None, where=where)
            found += ids.to_pylist()
        keys = list(dict.fromkeys(found))
    if keys is None:
        return None, None
    key_ids, pos = lookup(model, side, list(dict.fromkeys(keys)), where)
    unknown = key_ids.filter(pa.array(pos < 0))
    if len(unknown) == 0:
        return keys, None

    d = (model.handler.user_factors() if side == "user" else model.handler.item_factors())[0].shape[1]
    n = len(unknown)
    vectors = np.zeros((n, d), np.float32)
    biases = np.zeros(n, np.float32)
    done = np.zeros(n, bool)
    has_prior = np.zeros(n, bool)

    # Features first: they are the prior of a fold-in as well as a vector of their own.
    sources = [(given_features, f"USING {side}_features")]
    if model.options.get("cold_start") == "features" and spec is not None:
        sources.append((spec["source"], f"the model's {side}_features source"))
    for value, label in sources:
        if value is None or has_prior.all():
            continue
        want = unknown.filter(pa.array(~has_prior))
        _, rows = features.rows_for(Session(duck), spec, value, option=f"{side}_features", id_col=_id_col(model, side),
                                    id_type=_id_type(model, side), wanted=want, where=f"{where} ({label})")
        emb, bias = model.handler.feature_factors(side)
        meta_e, meta_b = emb[spec["n_identity"]:], bias[spec["n_identity"]:]
        hit = np.flatnonzero(~has_prior)[rows.getnnz(axis=1) > 0]
        rows = rows[rows.getnnz(axis=1) > 0]
        vectors[hit] = rows @ meta_e
        biases[hit] = rows @ meta_b
        has_prior[hit] = True
    done |= has_prior

    given: list[np.ndarray] = [np.zeros(0, np.int64)] * n
    if inter is not None:
        inter_ids, inter_targets = inter
        by_id = dict(zip(inter_ids, inter_targets))
        targets_v = (model.handler.item_factors() if side == "user" else model.handler.user_factors())[0]
        keys_b = (model.handler.user_factors() if side == "user" else model.handler.item_factors())[1]
        target_score, ridge = _fold_in_scale(model, side)
        for row, key in enumerate(unknown.to_pylist()):
            targets = by_id.get(key)
            # ridge 0: the model has no vectors to fit against (the popularity engine)
            if targets is None or len(targets) == 0 or ridge <= 0:
                continue
            vectors[row] = fold_in(targets_v, targets, target_score=target_score, ridge=ridge,
                                   prior=vectors[row] if has_prior[row] else None)
            if not has_prior[row]:
                biases[row] = float(np.mean(keys_b)) if len(keys_b) else 0.0
            given[row] = targets
            done[row] = True
    if not done.any():
        return keys, None
    keep = np.flatnonzero(done)
    return keys, ColdVectors(side=side, ids=unknown.take(pa.array(keep)), vectors=vectors[keep],
                             biases=biases[keep], given=[given[i] for i in keep])


def _interactions(duck: duckdb.DuckDBPyConnection, model: StoredModel, side: str, value: Any,
                  where: str) -> tuple[list[Any], list[np.ndarray]] | None:
    """(key ids in order of appearance, per key: target indices of its positive rows)."""
    if value is None:
        return None
    from .relations import lookup

    table = _run(duck, value, "interactions", where)
    names = table.column_names

    def column(name: str, what: str, required: bool = True) -> str | None:
        found = find_column(names, name)
        if found is None and required:
            raise ColumnError(f"{where}: the interactions query has no column {name!r} ({what}); "
                              f"its columns are: {', '.join(names)}")
        return found

    kcol = column(_id_col(model, side), "whose interactions a row holds")
    tcol = column(_id_col(model, _other(side)), f"the {_other(side)} interacted with")
    rating, threshold = model.info.get("rating_col"), model.options.get("threshold")
    rcol = column(rating, "rating", required=False) if rating else None
    if rcol is not None and threshold is not None:
        keep = pc.fill_null(pc.greater_equal(table.column(rcol), threshold), False)
        table = table.filter(keep)
    key_vals = table.column(kcol).to_pylist()
    _, tpos = lookup(model, _other(side), table.column(tcol).to_pylist(), where)
    frame = pd.DataFrame({"k": pd.Series(key_vals, dtype=object), "t": tpos})
    frame = frame[(frame["t"] >= 0) & frame["k"].notna()]
    order = list(dict.fromkeys(v for v in key_vals if v is not None))
    groups = {k: np.unique(g.to_numpy(np.int64)) for k, g in frame.groupby("k", sort=False)["t"]}
    keys_typed, _ = lookup(model, side, order, where) if order else (pa.array([]), None)
    typed = keys_typed.to_pylist()
    return typed, [groups.get(k, np.zeros(0, np.int64)) for k in order]


def fold_in(targets: np.ndarray, positives: np.ndarray, *, target_score: float, ridge: float,
            prior: np.ndarray | None = None) -> np.ndarray:
    """A new user's (or item's) vector u from its positives, the other side held fixed.

    Regularised least squares on the positives:
        u = argmin  sum over i in positives of (u . t_i - target_score)^2  +  ridge * ||u - prior||^2
          = (T_P' T_P + ridge I)^-1 (T_P' target_score + ridge prior)
    target_score is the mean u . t of the training positives (the model's own scale), ridge a
    strong pull (FOLD_IN_L2 x the mean ||t||^2): with a handful of positives in d dimensions the
    fit is underdetermined, and the prior is the features vector when there is one, else 0 (the
    solution then lies near the positives' centroid, rescaled). Closed form: deterministic and
    ~0.1 ms per user. On MovieLens it matched a full-batch BPR fit (L-BFGS on every positive /
    negative pair) in precision@10 at a hundredth of the time (bench/coldstart.py).
    """
    p = np.asarray(targets, np.float64)[np.unique(np.asarray(positives, np.int64))]
    d = p.shape[1]
    u0 = np.zeros(d) if prior is None else np.asarray(prior, np.float64)
    lhs = p.T @ p + ridge * np.eye(d)
    rhs = p.T @ np.full(len(p), target_score) + ridge * u0
    return np.linalg.solve(lhs, rhs).astype(np.float32)


def _fold_in_scale(model: StoredModel, side: str) -> tuple[float, float]:
    """(mean training-positive score u . t, ridge) for folding in on `side`, once per model."""
    attr = f"_fold_in_{side}"
    if attr not in model.__dict__:
        users, _ = model.handler.user_factors()
        items, _ = model.handler.item_factors()
        seen = model.seen.tocoo()
        # A fixed sample bounds the cost on large models; the mean needs no more.
        take = np.random.default_rng(0).choice(seen.nnz, min(seen.nnz, 200_000), replace=False)
        dots = np.einsum("ij,ij->i", np.asarray(users, np.float64)[seen.row[take]],
                         np.asarray(items, np.float64)[seen.col[take]])
        targets = np.asarray(items if side == "user" else users, np.float64)
        score = float(dots.mean()) if len(dots) else 1.0
        model.__dict__[attr] = (score, FOLD_IN_L2 * float(np.mean(np.sum(targets ** 2, axis=1))))
    return model.__dict__[attr]


def score(model: StoredModel, rtype: str, cold: ColdVectors, rows: np.ndarray, key_positions: np.ndarray,
          k: int, cand_idx: np.ndarray | None, exclude_seen: bool
          ) -> tuple[np.ndarray, pa.Array, np.ndarray, np.ndarray]:
    """Top-k for the covered keys: (key positions, target ids, scores, ranks), like the known ones."""
    from .relations import _normalized
    from .scoring import flatten_top_k, normalize_rows, top_k

    q, qb = cold.vectors[rows], cold.biases[rows]
    exclude = None
    if rtype in ("user_item", "item_user"):
        t, tb = model.handler.item_factors() if rtype == "user_item" else model.handler.user_factors()
        if exclude_seen:
            given = [cold.given[r] for r in rows]
            indptr = np.concatenate([[0], np.cumsum([len(g) for g in given])]).astype(np.int64)
            idx = np.concatenate(given) if given else np.zeros(0, np.int64)
            exclude = sp.csr_matrix((np.ones(len(idx), np.float32), idx, indptr), shape=(len(rows), len(t)))
    else:
        t, tb = _normalized(model, cold.side), None
        q, qb = normalize_rows(q.astype(np.float32)), None
    idx, scores = top_k(np.ascontiguousarray(q, np.float32), qb, t, tb, k, exclude=exclude, candidates=cand_idx)
    qrows, tcols, tscores, ranks = flatten_top_k(idx, scores)
    target_ids = _ids(model, "item" if rtype in ("user_item", "item_item") else "user")
    return key_positions[qrows], target_ids.take(pa.array(tcols)), tscores, ranks
