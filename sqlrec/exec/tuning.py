"""Hyperparameter search behind `USING tune = true`, over one engine or several (`tune_engines`).

Each trial trains on the training part minus a validation split and is scored on the validation
split only: with evaluation = true the training part is everything but the test split (the same
pairs selection.held_out_run then holds out), so the test split never steers the choice. The
best configuration (engine and parameters) then goes through the normal path (held-out
evaluation, final fit on all data). Trials are returned as JSON-ready columns for the model's
info (`m.trials`).

Across engines, the first trials are each engine's defaults (with the user's fixed options);
after that every trial goes to the engine that has used the least time so far, so each engine
gets an equal share of the time and a cheap engine (ALS, PureSVD) gets more trials than an
expensive one (LightFM). With tune_seconds, no trial starts after the budget, nor one of an
engine whose mean trial so far would not fit in what is left.

The best of hundreds of noisy validation scores is biased upwards, most for the engine with the
most trials and parameters: on the MovieLens sample a 600 s search chose tuned ALS configurations
that led EASE's by less than a standard error on two validation splits and trailed it by 4% on
the test split. So the RECHECK best trials and each engine's best are refitted on a second
validation split (another seed), and among those whose mean score is within one standard error
of the best, the simplest engine (fewest searched parameters) is chosen: the one-standard-error
rule of model selection. RECHECK_SHARE of tune_seconds is kept for the refits.

The sampler is optuna's TPE (one study per engine) when optuna is importable (optional extra
`sqlrec[tune]`), else a plain random search seeded by random_state; the trials say which.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlrec.lazy import sparse as sp

from sqlrec.numeric import evaluation, scoring
from sqlrec.engines.training_data import TrainingData
from sqlrec.errors import OptionError
from sqlrec.engines import HANDLERS
from sqlrec.engines.base import Handler
from sqlrec.engines.space import Param
from sqlrec.exec.selection import FitFn, factors, pairs_mask, split_pairs, validation_split

# What each engine searches is its class's search_space (sqlrec.engines), in the order of the
# m.trials columns; this module only samples it.
RECHECK = 3
RECHECK_SHARE = 0.1
LOWER_IS_BETTER = ("popularity_bias_at_k",)


@dataclass
class Candidate:
    """An engine the search may choose: its handler, its parameters, the ones the user fixed."""

    cls: type[Handler]
    params: dict[str, Any]
    explicit: set[str] = field(default_factory=set)

    @property
    def searched(self) -> list[str]:
        return [p for p in self.cls.search_space if p not in self.explicit]


@dataclass
class TuneResult:
    engine: str  # the best trial's engine
    best_params: dict[str, Any]  # searched params of the best trial
    trials: dict[str, Any]  # JSON for the model's info.tuning
    test_pairs: np.ndarray | None  # the test split the trials never saw (evaluation = true)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        return None
    return optuna


def _draw(rng: np.random.Generator, p: Param) -> Any:
    """One random value of a parameter (float_or_zero draws both its coin and its value)."""
    if p.kind == "choice":
        return p.choices[int(rng.integers(len(p.choices)))]
    if p.kind == "float_or_zero":
        on, value = rng.random() < 0.5, math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
        return float(value) if on else 0.0
    if p.log:
        value = math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
        return int(round(value)) if p.kind == "int" else float(value)
    return int(rng.integers(int(p.low), int(p.high) + 1)) if p.kind == "int" else float(rng.uniform(p.low, p.high))


class _RandomSampler:
    name = "random"

    def __init__(self, rng: np.random.Generator, space: dict[str, Param]):
        self.rng, self.space = rng, space
        self.queued: dict[str, Any] | None = None

    def enqueue(self, values: dict[str, Any]) -> None:
        self.queued = values

    def ask(self, names: list[str]) -> dict[str, Any]:
        if self.queued is not None:
            out, self.queued = {n: self.queued[n] for n in names}, None
            return out
        # Every parameter is drawn on every trial so a fixed one does not shift the others' draws.
        draws = {name: _draw(self.rng, p) for name, p in self.space.items()}
        return {name: draws[name] for name in names}

    def tell(self, value: float) -> None:
        pass


class _OptunaSampler:
    name = "optuna-tpe"

    def __init__(self, optuna: Any, seed: int | None, maximize: bool, space: dict[str, Param]):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.space = optuna, space
        self.study = optuna.create_study(direction="maximize" if maximize else "minimize",
                                         sampler=optuna.samplers.TPESampler(seed=seed))
        self.trial = None

    def enqueue(self, values: dict[str, Any]) -> None:
        fixed = dict(values)
        for name, p in self.space.items():
            if p.kind == "float_or_zero" and name in fixed and not fixed[name]:
                fixed.pop(name)
                fixed[f"{name}_on"] = False
        self.study.enqueue_trial(fixed, skip_if_exists=True)

    def ask(self, names: list[str]) -> dict[str, Any]:
        t = self.trial = self.study.ask()
        out: dict[str, Any] = {}
        for name in names:
            p = self.space[name]
            if p.kind == "choice":
                out[name] = t.suggest_categorical(name, list(p.choices))
            elif p.kind == "float_or_zero":
                on = t.suggest_categorical(f"{name}_on", [False, True])
                out[name] = t.suggest_float(name, p.low, p.high, log=p.log) if on else 0.0
            elif p.kind == "int":
                out[name] = t.suggest_int(name, int(p.low), int(p.high), log=p.log)
            else:
                out[name] = t.suggest_float(name, p.low, p.high, log=p.log)
        return out

    def tell(self, value: float) -> None:
        if math.isfinite(value):
            self.study.tell(self.trial, value)
        else:
            self.study.tell(self.trial, state=self.optuna.trial.TrialState.FAIL)


def _samplers(candidates: dict[str, Candidate], seed: int | None, maximize: bool) -> dict[str, Any]:
    """One sampler per engine, its first ask being the engine's defaults (with the fixed options):
    the search can only improve on them as the validation split sees it."""
    optuna = _optuna()
    rng = np.random.default_rng(seed)
    out = {}
    for engine, cand in candidates.items():
        space = dict(cand.cls.search_space)
        out[engine] = (_OptunaSampler(optuna, seed, maximize, space) if optuna is not None
                       else _RandomSampler(rng, space))
        out[engine].enqueue({p: cand.params[p] for p in cand.searched})
    return out


def _next_engine(engines: list[str], done: list[dict[str, Any]], remaining: float | None) -> str | None:
    """Each engine's defaults first, then the engine with the least time spent whose mean trial
    fits in the time left (None: none does)."""
    tried = {r["engine"] for r in done}
    for engine in engines:
        if engine not in tried:
            return engine
    spent = {e: [r["seconds"] for r in done if r["engine"] == e] for e in engines}
    fitting = [e for e in engines if remaining is None or float(np.mean(spent[e])) <= remaining]
    return min(fitting, key=lambda e: (sum(spent[e]), engines.index(e))) if fitting else None


@dataclass(frozen=True)
class _Carve:
    """A validation split of the training part: the pairs a trial fits on, and what scores it."""

    fit_mask: np.ndarray
    fit_train: sp.csr_matrix  # excluded from the lists: every pair the fit saw
    valid: sp.csr_matrix
    n_valid: int

    @classmethod
    def of(cls, data: TrainingData, train_mask: np.ndarray, settings: dict[str, Any], seed: int | None,
           where: str) -> "_Carve":
        valid_pairs, fit_mask = validation_split(data, train_mask, settings["split"], settings["test_size"], seed,
                                                 where)
        return cls(fit_mask, data.matrix(mask=fit_mask), data.matrix(mask=pairs_mask(len(data.positive), valid_pairs)),
                   len(valid_pairs))

    def ranks(self, cand: Candidate, chosen: dict[str, Any], fit: FitFn, desc: str, k: int
              ) -> evaluation.HeldOutRanks:
        """Train cand with the chosen parameters on the fit part; its ranks of the validation pairs."""
        handler = cand.cls(dict(cand.params, **chosen))
        fit(handler, self.fit_mask, desc, lambda epoch: {})
        with scoring.single_threaded_blas():
            return evaluation.held_out_ranks(*factors(handler), self.fit_train, self.valid, k)


def tune(data: TrainingData, candidates: dict[str, Candidate], settings: dict[str, Any], fit: FitFn, name: str,
         clock: Callable[[], float] = time.perf_counter) -> TuneResult:
    """Search the engines of `candidates` (in order: the first is tried first) and the parameters
    of each that the user did not set, on a validation split."""
    where = f"CREATE MODEL {name}"
    split, test_size, seed = settings["split"], settings["test_size"], settings["random_state"]
    k = settings.get("eval_k") or settings["n_recommendations"]
    metric = settings["tune_metric"]
    maximize = metric not in LOWER_IS_BETTER
    positive = data.positive
    train_mask = np.ones(len(positive), bool)
    test_pairs = None
    if settings.get("evaluation"):
        test_pairs = split_pairs(data, positive, split, test_size, seed)
        if len(test_pairs) == 0:
            raise OptionError(f"{where}: the {split} split left no test interactions; raise test_size")
        train_mask[test_pairs] = False
    carve = _Carve.of(data, train_mask, settings, seed, f"{where}: tune")

    engines = list(candidates)
    samplers = _samplers(candidates, seed, maximize)
    n_trials, budget = settings["tune_trials"], settings.get("tune_seconds")
    rows: list[dict[str, Any]] = []
    started = clock()
    search_budget = None if budget is None else budget * (1 - RECHECK_SHARE)
    for trial in range(1, n_trials + 1):
        remaining = None if budget is None else search_budget - (clock() - started)
        engine = _next_engine(engines, rows, remaining) if trial == 1 or remaining is None or remaining > 0 else None
        if engine is None:
            break
        cand, sampler = candidates[engine], samplers[engine]
        chosen = sampler.ask(cand.searched)
        t0 = time.perf_counter()
        values = evaluation.summarize(carve.ranks(cand, chosen, fit, f"tuning {name} (trial {trial}/{n_trials}, "
                                                                     f"{engine})", k))
        sampler.tell(float(values[metric]))
        rows.append({"trial": trial, "engine": engine, **chosen, **values,
                     "seconds": round(time.perf_counter() - t0, 6)})
    deadline = None if budget is None else started + budget
    best = _recheck(data, candidates, rows, train_mask, settings, fit, name, deadline, clock)
    trials = _trials_json(rows, best, candidates, samplers, metric, k, carve.n_valid, clock() - started)
    chosen = rows[best]
    return TuneResult(chosen["engine"], {p: chosen[p] for p in candidates[chosen["engine"]].searched},
                      trials, test_pairs)


def _recheck(data: TrainingData, candidates: dict[str, Candidate], rows: list[dict[str, Any]],
             train_mask: np.ndarray, settings: dict[str, Any], fit: FitFn, name: str, deadline: float | None,
             clock: Callable[[], float]) -> int:
    """The chosen trial. The RECHECK best (first validation) and each engine's best are refitted,
    in order, on a second validation split while the budget lasts; of those whose mean of the two
    scores is within one standard error (of the best one's second score) of the best mean, the
    simplest engine's (fewest searched parameters) best mean wins. With fewer than two refitted:
    the best first score. Sets each refitted row's second_validation."""
    metric, seed = settings["tune_metric"], settings["random_state"]
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    ranked = [i for i in np.argsort([-sign * r[metric] for r in rows], kind="stable") if np.isfinite(rows[i][metric])]
    # each engine's best too: the engine with the most trials has the most flattered best
    engine_best = {rows[i]["engine"]: i for i in reversed(ranked)}
    order = [i for i in ranked if i in ranked[:RECHECK] or i in engine_best.values()]
    if len(order) < 2 or settings["split"] == "time":  # a second time split holds out the same pairs
        return _best(rows, metric, sign > 0)
    k = settings.get("eval_k") or settings["n_recommendations"]
    carve = _Carve.of(data, train_mask, settings, None if seed is None else seed + 1, f"CREATE MODEL {name}: tune")
    done: dict[int, float] = {}  # row -> standard error of its second score
    for i in order:
        if deadline is not None and done and clock() + rows[i]["seconds"] > deadline:
            break
        r, cand = rows[i], candidates[rows[i]["engine"]]
        per_user = evaluation.METRICS[metric](carve.ranks(
            cand, {p: r[p] for p in cand.searched}, fit, f"tuning {name} (trial {r['trial']} on a second "
                                                         f"validation split)", k))
        r["second_validation"] = float(per_user.mean()) if len(per_user) else float("nan")
        done[i] = float(per_user.std(ddof=1) / math.sqrt(len(per_user))) if len(per_user) > 1 else 0.0
    choice = _simplest_near(rows, done, metric, sign)
    return _best(rows, metric, sign > 0) if choice is None else choice


def _simplest_near(rows: list[dict[str, Any]], errors: dict[int, float], metric: str, sign: float) -> int | None:
    """Of the rows in `errors` (row -> standard error of its second score), those whose mean of the
    two scores is within the best one's error of the best mean; the fewest searched parameters
    first, then the best mean. None with fewer than two finite means."""
    means = {i: sign * (rows[i][metric] + rows[i]["second_validation"]) / 2 for i in errors}
    means = {i: m for i, m in means.items() if math.isfinite(m)}
    if len(means) < 2:
        return None
    top = max(means, key=means.get)
    near = [i for i in means if means[i] >= means[top] - errors[top]]
    return min(near, key=lambda i: (len(HANDLERS[rows[i]["engine"]].search_space), -means[i]))


def _best(rows: list[dict[str, Any]], metric: str, maximize: bool) -> int:
    scores = np.array([r[metric] for r in rows], np.float64)
    finite = np.isfinite(scores)
    if not finite.any():
        return 0
    return int(np.argmax(np.where(finite, scores if maximize else -scores, -np.inf)))


def _trials_json(rows: list[dict[str, Any]], best: int, candidates: dict[str, Candidate], samplers: dict[str, Any],
                 metric: str, k: int, n_validation: int, seconds: float) -> dict[str, Any]:
    """m.trials as columns: a parameter an engine does not have is None in that engine's rows;
    the engine column only when the search went across engines."""
    for i, r in enumerate(rows):
        r["best"] = i == best
    searched = list(dict.fromkeys(p for c in candidates.values() for p in c.searched))
    across = len(candidates) > 1
    names = ("trial", *(("engine",) if across else ()), *searched, *evaluation.METRIC_NAMES,
             "second_validation", "seconds", "best")
    return {
        "sampler": next(iter(samplers.values())).name, "metric": metric, "k": k, "split": "validation",
        "searched": searched, "engines": list(candidates), "n_validation": int(n_validation),
        "best_trial": rows[best]["trial"], "seconds": round(seconds, 6),
        "columns": {c: [r.get(c) for r in rows] for c in names},
    }
