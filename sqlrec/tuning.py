"""Hyperparameter search behind `USING tune = true` (LightFM engine).

Each trial trains on the training part minus a validation split and is scored on the validation
split only: with evaluation = true the training part is everything but the test split (the same
pairs selection.held_out_run then holds out), so the test split never steers the choice. The
best configuration then goes through the normal path (held-out evaluation, final fit on all
data). Trials are returned as JSON-ready columns for the model's info (`m.trials`).

The sampler is optuna's TPE when optuna is importable (optional extra `sqlrec[tune]`), else a
plain random search seeded by random_state; the trials say which.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import evaluation, scoring
from .data import TrainingData
from .errors import OptionError
from .handlers import lightfm
from .handlers.base import Handler
from .selection import FitFn, _factors, _pairs_mask, _split, validation_split

# Searched parameters, in the order of the m.trials columns.
SEARCHED = ("no_components", "learning_rate", "learning_schedule", "loss", "item_alpha", "user_alpha", "epochs")
SCHEDULES = ("adagrad", "adadelta")
# Ranking losses only: logistic fits the sign of a rating, not the order of a top-N list.
LOSSES = tuple(loss for loss in lightfm.LOSSES if loss != "logistic")
COMPONENTS = (16, 256)  # log scale: 16 vs 32 matters as much as 128 vs 256
LEARNING_RATE = (0.005, 0.1)
ALPHA = (1e-7, 1e-3)  # or 0 (half the draws)
EPOCHS = (10, 120)
LOWER_IS_BETTER = ("popularity_bias_at_k",)


@dataclass
class TuneResult:
    best_params: dict[str, Any]  # searched params of the best trial
    trials: dict[str, Any]  # JSON for the model's info["tuning"]
    test_pairs: np.ndarray | None  # the test split the trials never saw (evaluation = true)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        return None
    return optuna


class _RandomSampler:
    name = "random"

    def __init__(self, seed: int | None):
        self.rng = np.random.default_rng(seed)
        self.queued: dict[str, Any] | None = None

    def enqueue(self, values: dict[str, Any]) -> None:
        self.queued = values

    def ask(self, names: list[str]) -> dict[str, Any]:
        if self.queued is not None:
            out, self.queued = {n: self.queued[n] for n in names}, None
            return out
        rng, out = self.rng, {}
        # Every parameter is drawn on every trial so a fixed one does not shift the others' draws.
        draws = {
            "no_components": int(round(math.exp(rng.uniform(*map(math.log, COMPONENTS))))),
            "learning_rate": float(math.exp(rng.uniform(*map(math.log, LEARNING_RATE)))),
            "learning_schedule": SCHEDULES[int(rng.integers(len(SCHEDULES)))],
            "loss": LOSSES[int(rng.integers(len(LOSSES)))],
            "item_alpha": self._alpha(), "user_alpha": self._alpha(),
            "epochs": int(rng.integers(EPOCHS[0], EPOCHS[1] + 1)),
        }
        for name in names:
            out[name] = draws[name]
        return out

    def _alpha(self) -> float:
        on, value = self.rng.random() < 0.5, math.exp(self.rng.uniform(*map(math.log, ALPHA)))
        return float(value) if on else 0.0

    def tell(self, value: float) -> None:
        pass


class _OptunaSampler:
    name = "optuna-tpe"

    def __init__(self, optuna: Any, seed: int | None, maximize: bool):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.study = optuna.create_study(direction="maximize" if maximize else "minimize",
                                         sampler=optuna.samplers.TPESampler(seed=seed))
        self.trial = None

    def enqueue(self, values: dict[str, Any]) -> None:
        fixed = dict(values)
        for name in ("item_alpha", "user_alpha"):
            if name in fixed and not fixed[name]:
                fixed.pop(name)
                fixed[f"{name}_on"] = False
        self.study.enqueue_trial(fixed, skip_if_exists=True)

    def ask(self, names: list[str]) -> dict[str, Any]:
        t = self.trial = self.study.ask()
        out: dict[str, Any] = {}
        for name in names:
            if name == "no_components":
                out[name] = t.suggest_int(name, *COMPONENTS, log=True)
            elif name == "learning_rate":
                out[name] = t.suggest_float(name, *LEARNING_RATE, log=True)
            elif name == "learning_schedule":
                out[name] = t.suggest_categorical(name, list(SCHEDULES))
            elif name == "loss":
                out[name] = t.suggest_categorical(name, list(LOSSES))
            elif name in ("item_alpha", "user_alpha"):
                on = t.suggest_categorical(f"{name}_on", [False, True])
                out[name] = t.suggest_float(name, *ALPHA, log=True) if on else 0.0
            elif name == "epochs":
                out[name] = t.suggest_int(name, *EPOCHS)
        return out

    def tell(self, value: float) -> None:
        if math.isfinite(value):
            self.study.tell(self.trial, value)
        else:
            self.study.tell(self.trial, state=self.optuna.trial.TrialState.FAIL)


def tune(data: TrainingData, handler_cls: type[Handler], params: dict[str, Any], settings: dict[str, Any],
         explicit: set[str], fit: FitFn, name: str,
         clock: Callable[[], float] = time.perf_counter) -> TuneResult:
    """Search the parameters not in `explicit` (the options the user set) on a validation split."""
    where = f"CREATE MODEL {name}"
    split, test_size, seed = settings["split"], settings["test_size"], settings["random_state"]
    k = settings.get("eval_k") or settings["n_recommendations"]
    metric = settings["tune_metric"]
    maximize = metric not in LOWER_IS_BETTER
    positive = data.positive
    train_mask = np.ones(len(positive), bool)
    test_pairs = None
    if settings.get("evaluation"):
        test_pairs = _split(data, positive, split, test_size, seed)
        if len(test_pairs) == 0:
            raise OptionError(f"{where}: the {split} split left no test interactions; raise test_size")
        train_mask[test_pairs] = False
    valid_pairs, fit_mask = validation_split(data, train_mask, split, test_size, seed, f"{where}: tune")
    fit_train = data.matrix(mask=fit_mask & positive)
    valid = data.matrix(mask=_pairs_mask(len(positive), valid_pairs))

    searched = [p for p in SEARCHED if p not in explicit]
    optuna = _optuna()
    sampler = _OptunaSampler(optuna, seed, maximize) if optuna is not None else _RandomSampler(seed)
    # Trial 1 is the defaults (with the user's fixed options), so the search can only improve on
    # them as the validation split sees it; random draws alone often missed that region.
    sampler.enqueue({p: params[p] for p in searched})
    n_trials, budget = settings["tune_trials"], settings.get("tune_seconds")
    rows: list[dict[str, Any]] = []
    started = clock()
    for trial in range(1, n_trials + 1):
        if trial > 1 and budget is not None and clock() - started >= budget:
            break
        chosen = sampler.ask(searched)
        t0 = time.perf_counter()
        handler = handler_cls(dict(params, **chosen))
        fit(handler, fit_mask, f"tuning {name} (trial {trial}/{n_trials})", lambda epoch: {})
        with scoring.single_threaded_blas():
            values = evaluation.evaluate(*_factors(handler), fit_train, valid, k)
        value = float(values[metric])
        sampler.tell(value)
        rows.append({"trial": trial, **chosen, **values, "seconds": round(time.perf_counter() - t0, 6)})

    scores = np.array([r[metric] for r in rows], np.float64)
    finite = np.isfinite(scores)
    if finite.any():
        pick = np.where(finite, scores if maximize else -scores, -np.inf)
        best = int(np.argmax(pick))
    else:
        best = 0
    for i, r in enumerate(rows):
        r["best"] = i == best
    columns = {c: [r[c] for r in rows] for c in ("trial", *searched, *evaluation.METRIC_NAMES, "seconds", "best")}
    trials = {
        "sampler": sampler.name, "metric": metric, "k": k, "split": "validation", "searched": searched,
        "n_validation": int(len(valid_pairs)), "best_trial": rows[best]["trial"],
        "seconds": round(clock() - started, 6), "columns": columns,
    }
    return TuneResult({p: rows[best][p] for p in searched}, trials, test_pairs)
