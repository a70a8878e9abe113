"""Training: a CREATE MODEL / BUILD MODEL statement in, a trained Model out.

The steps, in order: resolve the options against the engine's tables and the cross-option
rules, check the name is free, map the training query's columns, load the interactions
(sqlrec.ingest.data) and features (sqlrec.ingest.features), optionally tune and hold out a test split
(sqlrec.exec.tuning, sqlrec.exec.selection), fit on everything, and hand the model to the catalog,
which saves it in one transaction. RETRAIN and FINETUNE build on the same steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sqlrec.numeric import approx
from sqlrec.ingest import data as data_mod
from sqlrec.ingest import features, known_ids
from sqlrec.sql import options as opts
from sqlrec.exec import selection, tuning
from sqlrec.models.catalog import Catalog, check_name
from sqlrec.errors import Cancelled, ModelExistsError, OptionError, TrainingError, context
from sqlrec.engines import Handler, create_option_specs, get_handler, tunable_engines
from sqlrec.engines.popularity import popularity_scores
from sqlrec.models.model import Model
from sqlrec.models.info import ModelInfo, SideInfo
from sqlrec.exec.progress import EpochBar
from sqlrec.store.session import Session
from sqlrec.sql import CreateModel


@dataclass
class Trainer:
    """Fits handlers on one training set: progress bar, cancellation, and failures as sqlrec errors."""

    data: data_mod.TrainingData
    num_threads: int
    verbose: bool | None
    cancelled: Callable[[], bool]

    def fit(self, handler: Handler, mask: np.ndarray, desc: str,
            on_epoch_extra: Callable[[int], dict[str, Any]] | None = None) -> None:
        """The shape selection.FitFn: selection and tuning call it for their fits."""
        bar = EpochBar(int(handler.params.get("epochs", 1) or 1), desc, self.verbose)

        def on_epoch(done: int, total: int) -> None:
            bar.update(done, total, **(on_epoch_extra(done) if on_epoch_extra else {}))
            if self.cancelled():
                raise Cancelled(f"{desc}: cancelled after epoch {done} of {total}; nothing was saved")

        try:
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below, once
                handler.fit(self.data, mask, num_threads=self.num_threads, on_epoch=on_epoch)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            raise TrainingError(_fit_failure(handler, desc, exc)) from exc
        except MemoryError as exc:  # an estimate (check_resources) fell short: a sqlrec error, not numpy's
            raise TrainingError(f"{desc}: the {handler.engine} fit ran out of memory ({exc}); lower no_components "
                                "or train on fewer users and items; nothing was saved") from exc
        finally:
            bar.close()
        # LightFM checks finiteness for some losses only: NaN factors would rank nothing, silently.
        if not all(np.isfinite(a).all() for a in (*handler.user_factors(), *handler.item_factors())):
            raise TrainingError(_fit_failure(handler, desc, FloatingPointError("not finite")))


def _fit_failure(handler: Handler, desc: str, exc: Exception) -> str:
    if "finite" in str(exc) or isinstance(exc, FloatingPointError):
        rate = handler.params.get("learning_rate")
        hint = f"lower learning_rate (it is {rate:g})" if isinstance(rate, (int, float)) else "change the options"
        return f"{desc}: training diverged (the factors stopped being finite); {hint}; nothing was saved"
    return f"{desc}: the {handler.engine} fit failed ({exc}); nothing was saved"


# The options that name a column of the training query.
COLUMN_OPTIONS = ("user_id", "item_id", "rating", "weight", "timestamp")


def _columns(session: Session, st: CreateModel, resolved: dict[str, Any], sql: str, where: str) -> data_mod.Columns:
    for option in COLUMN_OPTIONS:
        if isinstance(resolved[option], str) and not resolved[option].strip():
            raise OptionError(f"{where}: option {option} is empty; it names a column of the training query")
    columns = session.columns(sql, where=f"{where}: the training query failed", database=st.source.database)
    user_col, item_col = resolved["user_id"], resolved["item_id"] or st.predict
    if user_col is None:
        raise OptionError(f"{where}: option user_id is required (the user id column); columns: {', '.join(columns)}")
    if item_col is None:
        raise OptionError(f"{where}: name the item column with PREDICT column or option item_id; "
                          f"columns: {', '.join(columns)}")
    if st.predict and resolved["item_id"] and st.predict.lower() != resolved["item_id"].lower():
        raise OptionError(f"{where}: PREDICT {st.predict} and item_id = {resolved['item_id']!r} disagree")

    def column(option: str, name: str | None) -> str | None:
        return name and data_mod.resolve_column(columns, name, option, where)

    cols = data_mod.Columns(user=column("user_id", user_col), item=column("item_id", item_col),
                            rating=column("rating", resolved["rating"]), weight=column("weight", resolved["weight"]),
                            timestamp=column("timestamp", resolved["timestamp"]))
    if cols.user == cols.item:
        raise OptionError(f"{where}: user_id and item_id both name column {cols.user!r}")
    for side, col in (("user_id", cols.user), ("item_id", cols.item)):
        value = next((o for o in ("rating", "weight", "timestamp") if getattr(cols, o) == col), None)
        if value is not None:
            named = f"PREDICT {col}" if side == "item_id" and st.predict else f"option {side}"
            raise OptionError(f"{where}: {named} names column {col!r}, which option {value} also names; "
                              f"PREDICT and item_id name the id of what is recommended, not a value to predict")
    return cols


def _common(name: str) -> opts.Option:
    return next(o for o in opts.COMMON_OPTIONS if o.name == name)


def _tune_engines(given: dict[str, Any], handler_cls: type[Handler], where: str) -> list[type[Handler]]:
    """The engines a search may choose (option tune_engines; default: the engine option's only)."""
    spec = _common("tune_engines")
    value = spec.coerce(next((v for k, v in given.items() if k.lower() == spec.name), None), where)
    return [get_handler(e, f"{where}: option tune_engines") for e in value] if value else [handler_cls]


def _check_engine(resolved: dict[str, Any], handler_cls: type[Handler], where: str) -> None:
    """The CREATE rules that depend on what the engine's class declares (sqlrec.sql.options'
    CREATE_RULES hold between options alone)."""
    if resolved["tune"] and not resolved["tune_engines"] and not handler_cls.search_space:
        default = _common("engine").default
        names = sorted(tunable_engines(), key=lambda e: e != default)  # the default engine first
        raise OptionError(f"{where}: option tune needs an engine with parameters to search: "
                          f"{', '.join(map(repr, names))} (got {handler_cls.engine!r}); or tune_engines naming several")
    if resolved["approximate"] is True and not handler_cls.personalised:
        raise OptionError(f"{where}: option approximate: engine {handler_cls.engine!r} ranks every user's items by "
                          "one score, which needs no index")


def _engine_params(cls: type[Handler], given: dict[str, Any], resolved: dict[str, Any],
                   where: str) -> tuning.Candidate:
    """An engine's parameters from USING (its own options only; defaults for the rest) and the
    set of those the user gave (which tuning keeps fixed)."""
    names = set(opts.all_option_names(cls.params_spec))
    own = {k: v for k, v in given.items() if k.lower() in names}
    params = opts.resolve(own, cls.params_spec, where)
    params["random_state"] = resolved["random_state"]
    return tuning.Candidate(cls, params, set(opts.resolve(own, cls.params_spec, where, fill_defaults=False)))


def _resolve(st: CreateModel, where: str) -> tuple[dict[str, Any], dict[str, tuning.Candidate]]:
    """(resolved CREATE options, the engines to train: the engine option's, or tune_engines')."""
    given = dict(st.options)
    handler_cls = get_handler(st.engine or given.pop("engine", None) or _common("engine").default, where)
    engines = _tune_engines(given, handler_cls, where)
    specs = create_option_specs(handler_cls)
    for cls in engines:  # every searched engine's own options are accepted too
        specs += [o for o in cls.params_spec if o.name not in {s.name for s in specs}]
    if any(cls.supports_features for cls in engines) and opts.FEATURE_OPTIONS[0] not in specs:
        specs += opts.FEATURE_OPTIONS
    resolved = opts.resolve(given, specs, where)
    resolved["engine"] = handler_cls.engine
    opts.check_rules(resolved, where)
    _check_engine(resolved, handler_cls, where)
    if resolved["approximate"] is True:  # before training, not after it
        with context(where):
            approx.require()
    for cls in engines:
        cls.check_available(where)
    candidates = {cls.engine: _engine_params(cls, given, resolved, where) for cls in engines}
    for cls in engines:
        ratings = cls.learns_ratings(candidates[cls.engine].params)
        if ratings and resolved["rating"] is None:
            raise OptionError(f"{where}: engine {cls.engine!r} learns rating values and needs option rating "
                              "(the column holding them, e.g. rating = 'rating')")
        if ratings and resolved["weight"] is not None:
            raise OptionError(f"{where}: engine {cls.engine!r} fits every rating alike and does not use option "
                              "weight; leave it out")
        if features_given(resolved) and not cls.supports_features:
            raise OptionError(f"{where}: option tune_engines: engine {cls.engine!r} does not learn from "
                              f"item_features / user_features; leave it out or drop the features")
    return resolved, candidates


def check_resources(cls: type[Handler], params: dict[str, Any], data: data_mod.TrainingData, where: str,
                    searched: tuple[str, ...] = ()) -> None:
    """Refuse, before any engine allocates, parameters the data or the machine cannot hold: the
    engine's bounds by the data's size (LightFM's max_sampled by the items), and the bytes the fit
    would allocate (Handler.training_bytes) above sqlrec.sql.options.memory_budget. `searched`:
    parameters tuning may raise to its search space's top, checked there."""
    n_users, n_items = data.shape
    for name, (most, why) in cls.data_bounds(params, data.shape).items():
        value = params.get(name)
        if isinstance(value, int) and value > most:
            raise OptionError(f"{where}: option {name} must be <= {most:,} ({why}), got {value:,}")
    if "no_components" in searched and "no_components" in cls.search_space:
        params = dict(params, no_components=int(cls.search_space["no_components"].high))
    rows = tuple(n + (0 if f is None else f.shape[1])
                 for n, f in ((n_users, data.user_features), (n_items, data.item_features)))
    need, (budget, why) = cls.training_bytes(params, rows), opts.memory_budget()
    if need <= budget:
        return
    d = params.get("no_components")
    low, high = 0, int(d) if isinstance(d, int) else min(rows)
    while low < high:  # the largest no_components that fits (the estimates grow with it)
        mid = (low + high + 1) // 2
        low, high = (mid, high) if cls.training_bytes(dict(params, no_components=mid), rows) <= budget else (low, mid - 1)
    value = f"no_components = {d}" if isinstance(d, int) else "no_components (default: exact)"
    hint = (f"at most {low:,} fits" if low else "no value fits") + "; or train on fewer users and items"
    tuned = " (tune may try it)" if "no_components" in searched else ""
    raise OptionError(f"{where}: option {value}{tuned}: the {cls.engine} fit on {n_users:,} users and {n_items:,} "
                      f"items needs about {opts.size(need)}, above the {opts.size(budget)} budget ({why}); "
                      f"{hint}; nothing was trained")


def features_given(resolved: dict[str, Any]) -> bool:
    return resolved.get("item_features") is not None or resolved.get("user_features") is not None


def create(session: Session, catalog: Catalog, st: CreateModel, cancelled: Callable[[], bool],
           kind: str = "create", notes: str | None = None) -> tuple[Model, str]:
    """Train the statement's model and save it; (model, status): 'trained', or 'exists' for
    CREATE MODEL IF NOT EXISTS of a model that exists. `kind` ('create', or 'retrain' from
    sqlrec.exec.lifecycle, 'finetune' from sqlrec.exec.finetune) and `notes` are recorded in the version's
    info; the kind names the statement in errors."""
    where = f"{'CREATE MODEL' if kind == 'create' else kind.upper()} {st.name}"
    check_name(st.name, "CREATE MODEL")
    resolved, candidates = _resolve(st, where)
    if catalog.exists(st.name):
        if st.if_not_exists:
            return catalog.load(st.name, where), "exists"
        if not (st.replace or resolved["overwrite"]):
            raise ModelExistsError(f"{where}: model {st.name!r} already exists (use CREATE OR REPLACE MODEL)")
    if catalog.table_exists(st.name):
        raise ModelExistsError(f"{where}: a table or view named {st.name!r} exists; choose another model name")

    sql = st.source.select_sql()
    cols = _columns(session, st, resolved, sql, where)
    started = time.perf_counter()
    data = data_mod.load(session, sql, cols, resolved["threshold"], where, st.source.database, midpoint_default=True)
    resolved["threshold"] = data.threshold  # stored: RETRAIN, EVALUATE and DESCRIBE read the one that applied
    id_columns = {"user": cols.user, "item": cols.item}
    data, feature_specs = features.attach(session, data, id_columns, resolved, where)
    data, catalogue_only = known_ids.extend(session, data, id_columns, resolved, where)
    for side, n in catalogue_only.items():
        if side in feature_specs:
            feature_specs[side]["n_without_features"] += n
    if resolved["cold_start"] is None:  # features when the model has some, else popularity
        resolved["cold_start"] = "features" if feature_specs else "popularity"
    for cand in candidates.values():
        check_resources(cand.cls, cand.params, data, where, tuple(cand.searched) if resolved["tune"] else ())
    num_threads = resolved["num_threads"] or (1 if resolved["random_state"] is not None else opts.default_threads())
    trainer = Trainer(data, num_threads, resolved["verbose"], cancelled)
    handler, params, metrics, trials, arrays = fit_all(trainer, candidates, resolved, st.name)
    resolved["engine"] = handler.engine  # tuning across engines may have chosen another
    sides = {side: SideInfo(column=id_columns[side], type=id_type, n=n, n_catalogue_only=catalogue_only.get(side),
                            features=feature_specs.get(side))
             for side, id_type, n in (("user", data.user_type, data.shape[0]), ("item", data.item_type, data.shape[1]))}
    info = ModelInfo(
        **sides, rating_col=cols.rating, weight_col=cols.weight, timestamp_col=cols.timestamp,
        n_pairs=int(len(data.rows)), n_positives=int(data.positive.sum()), n_source_rows=data.n_source_rows,
        source_sql=sql, source_database=st.source.database, num_threads=num_threads, kind=kind, notes=notes,
        tuning=trials)
    model = Model(
        name=st.name, engine=handler.engine, info=info, metrics=metrics,
        options={o.name: resolved[o.name] for o in opts.COMMON_OPTIONS if o.name in resolved},
        params=dict(params, epochs_trained=handler.epochs), users=data.users, items=data.items,
        seen=data.seen(), popularity=popularity_scores(data, np.ones(len(data.rows), bool))[0],
        handler=handler, train_seconds=time.perf_counter() - started, extra_arrays=arrays)
    with context(where):
        approx.attach(model)
    catalog.save(model, where)
    return model, "trained"


def fit_all(trainer: Trainer, candidates: dict[str, tuning.Candidate], resolved: dict[str, Any], name: str
            ) -> tuple[Handler, dict[str, Any], dict[str, Any], dict[str, Any] | None, dict[str, np.ndarray]]:
    """Tuning (tune = true), the held-out run (evaluation = true), then the fit on all data:
    (handler, its params, metrics, tuning's trials (None without tune), arrays stored for EVALUATE MODEL)."""
    held = tuned = None
    cand = next(iter(candidates.values()))
    if resolved["tune"]:  # options set in USING stay fixed; the best trial's values fill the rest
        tuned = tuning.tune(trainer.data, candidates, resolved, trainer.fit, name)
        cand = candidates[tuned.engine]
        cand.params.update(tuned.best_params)
    handler_cls, params = cand.cls, cand.params
    if resolved["evaluation"]:
        held = selection.held_out_run(trainer.data, handler_cls, params, resolved, trainer.fit, name,
                                      tuned.test_pairs if tuned else None)
    # Early stopping found the epoch count; the final fit on all data uses it.
    handler = handler_cls(dict(params, epochs=held.best_epochs) if held and held.best_epochs else params)
    trainer.fit(handler, np.ones(len(trainer.data.rows), bool), f"training {name}")
    return handler, params, held.metrics if held else {}, tuned.trials if tuned else None, held.arrays if held else {}
