"""Model selection without SQL: the held-out run behind `evaluation = true`, learning curves,
early stopping, and re-evaluation of stored models (EVALUATE MODEL).

The engine hands over TrainingData, the handler class and its params, and a `fit` callable that
owns the progress bar and cancellation; this module decides which pairs each fit sees and what
is measured after every epoch. What EVALUATE MODEL needs later (the held-out model's factors and
the split) is returned as plain arrays for the catalog, so re-evaluating never retrains.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlrec.lazy import sparse as sp

from sqlrec.numeric import evaluation, scoring
from sqlrec.engines.training_data import TrainingData
from sqlrec.errors import OptionError
from sqlrec.engines.base import Handler

# fit(handler, mask, description, on_epoch) -> None; on_epoch(epoch) returns progress-bar fields
# and may raise to stop training.
FitFn = Callable[[Handler, np.ndarray, str, Callable[[int], dict[str, Any]]], None]

# Prefix of the arrays stored for EVALUATE MODEL (inside the catalog's extra arrays).
EVAL_PREFIX = "eval_"


class _StopTraining(Exception):
    """Raised from the epoch callback when the monitored metric stopped improving."""


@dataclass
class HeldOutResult:
    metrics: dict[str, Any]  # stored as the model's metrics JSON
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # stored for EVALUATE MODEL
    best_epochs: int | None = None  # early stopping: epochs for the final fit on all data


@dataclass
class _Curve:
    """Per-epoch metrics of one fit, and the factors at the best epoch of the monitored metric."""

    monitor: str
    patience: int | None
    rows: list[dict[str, float]] = field(default_factory=list)
    best: float = -np.inf
    best_epoch: int = 0
    best_factors: tuple[np.ndarray, ...] | None = None

    def add(self, epoch: int, seconds: float, values: dict[str, float], handler: Handler) -> None:
        self.rows.append({"epoch": epoch, "seconds": seconds, **values})
        value = values[self.monitor]
        if value > self.best:  # NaN never improves
            self.best, self.best_epoch = value, epoch
            if self.patience is not None:
                self.best_factors = tuple(np.array(a, copy=True) for a in factors(handler))
        if self.patience is not None and epoch - self.best_epoch >= self.patience:
            raise _StopTraining

    def columns(self) -> dict[str, list[float]]:
        names = list(self.rows[0]) if self.rows else ["epoch", "seconds", *evaluation.METRIC_NAMES]
        return {n: [r[n] for r in self.rows] for n in names}


def factors(handler: Handler) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user vectors, user biases, item vectors, item biases) of a fitted handler."""
    uv, ub = handler.user_factors()
    iv, ib = handler.item_factors()
    return uv, ub, iv, ib


def split_pairs(data: TrainingData, mask: np.ndarray, split: str, test_size: float,
           random_state: int | None) -> np.ndarray:
    """Pair numbers that a split of the pairs in `mask` (all positives) holds out."""
    matrix = data.matrix(mask=mask)
    matrix.data = (np.flatnonzero(mask) + 1).astype(np.float64)  # pair number + 1, exact in float64
    if split == "time":
        times = data.matrix(mask=mask, values=data.timestamp)
        _, test = evaluation.SPLITS["time"](matrix, times, test_size)
    else:
        _, test = evaluation.SPLITS[split](matrix, test_size, random_state)
    return np.asarray(test.data, np.int64) - 1


def validation_split(data: TrainingData, train_mask: np.ndarray, split: str, test_size: float,
                     seed: int | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(validation pairs, fit mask): a split of the training part, so the test split never steers."""
    valid_pairs = split_pairs(data, train_mask & data.positive, split, test_size, None if seed is None else seed + 1)
    if len(valid_pairs) == 0:
        raise OptionError(f"{where}: the {split} split of the training part left no validation "
                          f"interactions; raise test_size")
    fit_mask = train_mask.copy()
    fit_mask[valid_pairs] = False
    return valid_pairs, fit_mask


def held_out_run(data: TrainingData, handler_cls: type[Handler], params: dict[str, Any],
                 settings: dict[str, Any], fit: FitFn, name: str,
                 test_pairs: np.ndarray | None = None) -> HeldOutResult:
    """Hold out a test split of the positives, train on the rest, score the test split.

    Every epoch is scored (the learning curve). With early_stopping the curve is measured on a
    validation split carved out of the training part, so the test split never steers training;
    the test metrics are those of the best epoch's factors. `test_pairs`: a split already drawn
    (by tuning, whose trials never saw it).
    """
    where = f"CREATE MODEL {name}"
    split, test_size, seed = settings["split"], settings["test_size"], settings["random_state"]
    k = settings.get("eval_k") or settings["n_recommendations"]
    early = bool(settings.get("early_stopping"))
    positive = data.positive
    if test_pairs is None:
        # A rating model is judged on every held-out rating (RMSE), low ones too.
        pool = np.ones(len(positive), bool) if handler_cls.learns_ratings(params) else positive
        test_pairs = split_pairs(data, pool, split, test_size, seed)
    if len(test_pairs) == 0:
        raise OptionError(f"{where}: the {split} split left no test interactions; raise test_size")
    # Masks over all pairs: below-threshold pairs are never held out (they are no positives to
    # find) and stay in every fit, for the handlers that learn from them (logistic loss).
    train_mask = np.ones(len(positive), bool)
    train_mask[test_pairs] = False
    fit_mask = train_mask
    if early:
        valid_pairs, fit_mask = validation_split(data, train_mask, split, test_size, seed, f"{where}: early_stopping")
        watch = data.matrix(mask=pairs_mask(len(positive), valid_pairs))
    else:
        watch = data.matrix(mask=pairs_mask(len(positive), test_pairs) & positive)
    curve = _Curve(settings.get("stopping_metric") or "auc", settings.get("patience") if early else None)
    handler = handler_cls(params)
    # Measuring costs about one epoch of training on MovieLens-sized data: history = false skips
    # it (early stopping cannot).
    measure = early or settings.get("history", True)
    # Every metric excludes every pair the fit saw, below-threshold ratings too, as SELECT's
    # exclude_seen does: the metrics measure the lists a user gets.
    on_epoch = _epoch_meter(handler, curve, data.matrix(mask=fit_mask), watch, k, measure)
    try:
        fit(handler, fit_mask, f"evaluating {name}", on_epoch)
    except _StopTraining:
        pass
    kept = curve.best_factors if early and curve.best_factors is not None else factors(handler)
    train = data.matrix(mask=train_mask)
    test = data.matrix(mask=pairs_mask(len(positive), test_pairs) & positive)
    metrics = _held_out_metrics(kept, train, test, k, settings, curve, early, len(test_pairs))
    arrays = {f"{EVAL_PREFIX}{n}": np.asarray(a, np.float32)
              for n, a in zip(("user_vecs", "user_bias", "item_vecs", "item_bias"), kept)}
    if (bounds := handler.rating_range()) is not None:
        held = {"rating_rows": data.rows[test_pairs], "rating_cols": data.cols[test_pairs],
                "rating_values": data.rating[test_pairs], "rating_range": np.asarray(bounds, np.float32)}
        arrays.update({f"{EVAL_PREFIX}{n}": v for n, v in held.items()})
        metrics["values"].update(_rating_errors(arrays))
    for part, m in (("train", train), ("test", test)):
        arrays[f"{EVAL_PREFIX}{part}_indptr"] = m.indptr.astype(np.int64)
        arrays[f"{EVAL_PREFIX}{part}_indices"] = m.indices.astype(np.int32)
    return HeldOutResult(metrics, arrays, max(curve.best_epoch, 1) if early else None)


def _epoch_meter(handler: Handler, curve: _Curve, fit_train: sp.csr_matrix, watch: sp.csr_matrix, k: int,
                 measure: bool) -> Callable[[int], dict[str, Any]]:
    """The per-epoch callback of a held-out fit: training time so far, and the watched metrics."""
    clock = {"seconds": 0.0, "since": time.perf_counter()}

    def on_epoch(epoch: int) -> dict[str, Any]:
        clock["seconds"] += time.perf_counter() - clock["since"]
        if not measure:
            clock["since"] = time.perf_counter()
            return {}
        # OpenBLAS workers keep spinning after a call and steal the cores LightFM's next epoch
        # needs (it ran 2x slower); one BLAS thread between epochs costs less than that.
        with scoring.single_threaded_blas():
            values = evaluation.evaluate(*factors(handler), fit_train, watch, k)
        try:
            curve.add(epoch, round(clock["seconds"], 6), values, handler)
        finally:
            clock["since"] = time.perf_counter()
        return {curve.monitor: round(values[curve.monitor], 4)}

    return on_epoch


def _held_out_metrics(kept: tuple[np.ndarray, ...], train: sp.csr_matrix, test: sp.csr_matrix, k: int,
                      settings: dict[str, Any], curve: _Curve, early: bool, n_test: int) -> dict[str, Any]:
    """The model's metrics JSON: test metrics at k, the split, the learning curve, early stopping."""
    history = curve.columns()
    metrics: dict[str, Any] = {
        "values": evaluation.evaluate(*kept, train, test, k), "k": k, "split": settings["split"],
        "test_size": settings["test_size"], "n_test_users": int((test.getnnz(axis=1) > 0).sum()),
        "n_test": int(n_test), "history": history, "history_split": "validation" if early else "test",
        "epoch_95_auc": epoch_reaching(history, "auc", 0.95),
    }
    if early:
        metrics["early_stopping"] = {
            "metric": curve.monitor, "patience": settings.get("patience"), "best_epoch": curve.best_epoch,
            "best_value": curve.best, "epochs_run": len(curve.rows)}
    return metrics


def pairs_mask(n: int, pairs: np.ndarray) -> np.ndarray:
    """A mask over `n` pairs that selects the pair numbers `pairs`."""
    mask = np.zeros(n, bool)
    mask[pairs] = True
    return mask


def epoch_reaching(history: dict[str, list[float]], metric: str, share: float) -> int | None:
    """First epoch whose metric reached `share` of the curve's best value (None: no curve)."""
    values = np.asarray(history.get(metric) or [], np.float64)
    if not len(values) or not np.isfinite(values).any():
        return None
    best = np.nanmax(values)
    return int(history["epoch"][int(np.flatnonzero(values >= share * best)[0])])


# --- EVALUATE MODEL ----------------------------------------------------------------------------


def has_held_out(arrays: dict[str, np.ndarray]) -> bool:
    return f"{EVAL_PREFIX}test_indptr" in arrays


def evaluate_held_out(arrays: dict[str, np.ndarray], k: int) -> dict[str, Any]:
    """Metrics at k of the stored held-out model on its stored test split (no retraining)."""
    a = {n[len(EVAL_PREFIX):]: v for n, v in arrays.items() if n.startswith(EVAL_PREFIX)}
    shape = (len(a["user_vecs"]), len(a["item_vecs"]))

    def csr(part: str) -> sp.csr_matrix:
        ind = a[f"{part}_indices"]
        return sp.csr_matrix((np.ones(len(ind), np.float32), ind, a[f"{part}_indptr"]), shape=shape)

    test = csr("test")
    values = evaluation.evaluate(a["user_vecs"], a["user_bias"], a["item_vecs"], a["item_bias"],
                                 csr("train"), test, k)
    if f"{EVAL_PREFIX}rating_values" in arrays:
        values.update(_rating_errors(arrays))
    return {"values": values, "n_users": int((test.getnnz(axis=1) > 0).sum()), "n_test": int(test.nnz)}


def _rating_errors(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """RMSE and MAE of the stored held-out fit on the stored held-out ratings."""
    a = {n[len(EVAL_PREFIX):]: v for n, v in arrays.items() if n.startswith(EVAL_PREFIX)}
    bounds = (float(a["rating_range"][0]), float(a["rating_range"][1]))
    return evaluation.rating_errors(a["user_vecs"], a["user_bias"], a["item_vecs"], a["item_bias"],
                                    a["rating_rows"], a["rating_cols"], a["rating_values"], bounds)


def rating_errors_on(handler: Handler, users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> dict[str, float]:
    """RMSE and MAE of a rating model on given pairs; nothing for a model that predicts no rating."""
    bounds = handler.rating_range()
    return {} if bounds is None else evaluation.rating_errors(*factors(handler), users, items, ratings, bounds)


def evaluate_pairs(handler: Handler, seen: sp.csr_matrix | None, popularity: np.ndarray,
                   users: np.ndarray, items: np.ndarray, k: int) -> dict[str, Any]:
    """Metrics at k of a model on given (user, item) index pairs; `seen` (or None) is excluded
    from ranking and pairs already in it are dropped (they would rank against themselves)."""
    shape = (len(handler.user_factors()[0]), len(handler.item_factors()[0]))
    test = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=shape)
    test.sum_duplicates()
    n_seen = 0
    if seen is not None:
        overlap = test.multiply(seen.astype(bool)).astype(bool)
        n_seen = int(overlap.nnz)
        test = (test.astype(bool).astype(np.int8) - overlap.astype(np.int8)).astype(np.float32)
        test.eliminate_zeros()
    values = evaluation.evaluate(*factors(handler), seen, test, k, item_popularity=popularity)
    return {"values": values, "n_users": int((test.getnnz(axis=1) > 0).sum()), "n_test": int(test.nnz),
            "n_seen": n_seen}
