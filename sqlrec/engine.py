"""The engine: routes each statement to the catalog and handlers, or to DuckDB.

Non-model statements run in DuckDB as written (parameters bound by DuckDB). Queries that
reference models get their model references replaced by computed relations (only for the
keys the query asks for), registered with DuckDB, which runs the rest of the query.
Every result, model statements included, is left on the DuckDB connection handle.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from sqlglot import exp

from . import data as data_mod
from . import coldstart, evaluation, features, options as opts, relations, rewrite, selection, tuning
from .catalog import Catalog, StoredModel
from .errors import (
    Cancelled, ColumnError, Error, ModelExistsError, NotSupportedError, OptionError,
    ProgrammingError, QueryError, did_you_mean, wrap_duckdb,
)
from .handlers import HANDLERS
from .progress import EpochBar
from .session import Session
from .sql import (
    OPTIONS_ARG, CreateModel, Describe, DropModel, EvaluateModel, Finetune, Passthrough, Query, Retrain,
    ShowModels, Statement, parse_script,
)

_views = itertools.count()


def _typed_select(view: str, model: StoredModel, columns: list[str]) -> exp.Select:
    """SELECT over a registered relation casting id columns back to the model's id types.

    Arrow carries some DuckDB types (UUID, HUGEINT, ENUM...) as other types; the relation must
    have the training columns' own types so that joins and comparisons behave.
    """
    types = {model.user_col: model.info["user_type"], model.item_col: model.info["item_type"],
             f"similar_{model.user_col}": model.info["user_type"],
             f"similar_{model.item_col}": model.info["item_type"]}
    items = []
    for col in columns:
        ident = exp.to_identifier(col, quoted=True)
        node: exp.Expression = exp.Column(this=ident)
        if col in types:
            node = exp.Cast(this=node, to=exp.DataType.build(types[col], dialect="duckdb"))
        items.append(exp.alias_(node, ident))
    return exp.select(*items).from_(exp.to_identifier(view, quoted=True))


def _evaluate_note(model: StoredModel, counts: dict[str, Any]) -> str | None:
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


class Engine:
    def __init__(self, duck: duckdb.DuckDBPyConnection, read_only: bool = False):
        self.duck = duck
        self.read_only = read_only
        self._cache: dict = {}
        self._cancel = False
        self._registered: dict[int, list[tuple[duckdb.DuckDBPyConnection, str]]] = {}

    # --- entry points ----------------------------------------------------------------------

    def catalog(self, duck: duckdb.DuckDBPyConnection) -> Catalog:
        return Catalog(duck, self._cache)

    def interrupt(self) -> None:
        self._cancel = True
        try:
            self.duck.interrupt()
        except duckdb.Error:
            pass

    def execute(self, duck: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> None:
        """Run a statement or a script on `duck`; the last statement's result stays on it."""
        self._release(duck)
        self._cancel = False
        statements = parse_script(sql)
        if not statements:
            raise ProgrammingError("empty statement: nothing to run")
        if params is not None and len(statements) > 1 and (not isinstance(params, (list, tuple, dict)) or params):
            raise ProgrammingError("parameters can only be bound to a single statement, not a script")
        for st in statements:
            self._release(duck)
            self.run(duck, st, params)

    def run(self, duck: duckdb.DuckDBPyConnection, st: Statement, params: Any = None) -> None:
        cat = self.catalog(duck)
        if isinstance(st, CreateModel):
            self._write_check(st)
            self.create_model(duck, cat, st)
        elif isinstance(st, DropModel):
            self._write_check(st)
            self.drop_model(duck, cat, st)
        elif isinstance(st, ShowModels):
            self.show_models(duck, cat)
        elif isinstance(st, Describe) and (st.explicit or cat.exists(st.name)):
            self.describe(duck, cat, st)
        elif isinstance(st, EvaluateModel):
            self.evaluate_model(duck, cat, st)
        elif isinstance(st, (Retrain, Finetune)):
            word = {Retrain: "RETRAIN", Finetune: "FINETUNE"}[type(st)]
            cat.require(st.name, word)
            raise NotSupportedError(f"{word} is not available yet in this version of sqlrec")
        elif isinstance(st, Query):
            self.query(duck, cat, st, params)
        else:
            self._duck(duck, st.text, params)

    # --- plain DuckDB ------------------------------------------------------------------------

    def _duck(self, duck: duckdb.DuckDBPyConnection, sql: str, params: Any = None, where: str | None = None) -> None:
        try:
            if params is None:
                duck.execute(sql)
            else:
                duck.execute(sql, params)
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, where) from exc

    def _emit(self, duck: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
        """Leave `table` as the statement's result on `duck`."""
        name = self._register(duck, table)
        duck.execute(f'SELECT * FROM "{name}"')

    def _register(self, duck: duckdb.DuckDBPyConnection, table: pa.Table) -> str:
        name = f"__sqlrec_rel_{next(_views)}"
        data_mod.finish_pending(duck)
        duck.register(name, table)
        self._registered.setdefault(id(duck), []).append((duck, name))
        return name

    def _release(self, duck: duckdb.DuckDBPyConnection) -> None:
        """Drop the relations registered for the previous statement on this handle.

        DuckDB refuses (un)registering while a result is pending, so finish that result first.
        """
        pending = self._registered.pop(id(duck), [])
        if not pending:
            return
        data_mod.finish_pending(duck)
        for handle, name in pending:
            try:
                handle.unregister(name)
            except duckdb.Error:
                pass

    def _write_check(self, st: Statement) -> None:
        if self.read_only:
            raise ProgrammingError(f"{st.text.split()[0].upper()}: the database is open read-only")

    # --- CREATE MODEL ------------------------------------------------------------------------

    def create_model(self, duck: duckdb.DuckDBPyConnection, cat: Catalog, st: CreateModel) -> None:
        where = f"CREATE MODEL {st.name}"
        given = dict(st.options)
        engine_name = (st.engine or given.pop("engine", None) or "lightfm")
        if not isinstance(engine_name, str) or engine_name.lower() not in HANDLERS:
            raise OptionError(
                f"{where}: unknown engine {engine_name!r}{did_you_mean(str(engine_name), HANDLERS)}; "
                f"engines: {', '.join(HANDLERS)}")
        handler_cls = HANDLERS[engine_name.lower()]
        specs = [o for o in opts.COMMON_OPTIONS if o.name != "engine"] + list(handler_cls.options)
        resolved = opts.resolve(given, specs, where)
        replace = st.replace or bool(resolved.pop("overwrite"))

        if cat.exists(st.name):
            if st.if_not_exists:
                return self._emit(duck, self._status(cat, st.name, "exists"))
            if not replace:
                raise ModelExistsError(f"{where}: model {st.name!r} already exists (use CREATE OR REPLACE MODEL)")
        if self._is_table(duck, st.name):
            raise ModelExistsError(f"{where}: a table or view named {st.name!r} exists; choose another model name")

        sql = data_mod.source_sql(st.source.table, st.source.query)
        columns = data_mod.query_columns(duck, sql, where, st.source.database)
        user_col = resolved["user_id"]
        item_col = resolved["item_id"] or st.predict
        if user_col is None:
            raise OptionError(f"{where}: option user_id is required (the user id column); columns: {', '.join(columns)}")
        if item_col is None:
            raise OptionError(f"{where}: name the item column with PREDICT column or option item_id; columns: {', '.join(columns)}")
        if st.predict and resolved["item_id"] and st.predict.lower() != resolved["item_id"].lower():
            raise OptionError(f"{where}: PREDICT {st.predict} and item_id = {resolved['item_id']!r} disagree")
        if resolved["threshold"] is not None and resolved["rating"] is None:
            raise OptionError(f"{where}: option threshold needs option rating (the column it applies to)")
        if resolved["early_stopping"] and not resolved["evaluation"]:
            raise OptionError(f"{where}: option early_stopping needs evaluation = true (it watches held-out metrics)")
        if resolved["tune"] and handler_cls.engine != "lightfm":
            raise OptionError(f"{where}: option tune needs engine = 'lightfm' (got {handler_cls.engine!r})")
        if resolved["split"] == "time" and (resolved["evaluation"] or resolved["tune"]) and resolved["timestamp"] is None:
            raise OptionError(f"{where}: split = 'time' needs option timestamp")
        cols = data_mod.Columns(
            user=data_mod.resolve_column(columns, user_col, "user_id", where),
            item=data_mod.resolve_column(columns, item_col, "item_id", where),
            rating=resolved["rating"] and data_mod.resolve_column(columns, resolved["rating"], "rating", where),
            weight=resolved["weight"] and data_mod.resolve_column(columns, resolved["weight"], "weight", where),
            timestamp=resolved["timestamp"] and data_mod.resolve_column(columns, resolved["timestamp"], "timestamp", where),
        )
        if cols.user == cols.item:
            raise OptionError(f"{where}: user_id and item_id both name column {cols.user!r}")

        started = time.perf_counter()
        data = data_mod.load(duck, sql, cols, resolved["threshold"], where, st.source.database)
        data, feature_specs = features.attach(Session(duck), data, {"user": cols.user, "item": cols.item}, resolved, where)
        if resolved["cold_start"] is None:  # features when the model has some, else popularity
            resolved["cold_start"] = "features" if feature_specs else "popularity"
        num_threads = resolved["num_threads"] or (1 if resolved["random_state"] is not None else opts.default_threads())
        params = {o.name: resolved[o.name] for o in handler_cls.options}
        params["random_state"] = resolved["random_state"]
        common = {o.name: resolved[o.name] for o in opts.COMMON_OPTIONS if o.name in resolved}

        metrics: dict[str, Any] = {}
        held = tuned = None
        if resolved["tune"]:  # options set in USING stay fixed; the best trial's values fill the rest
            explicit = set(opts.resolve(given, specs, where, fill_defaults=False))
            tuned = self._tune(data, handler_cls, params, resolved, explicit, num_threads, st.name)
            params.update(tuned.best_params)
        if resolved["evaluation"]:
            held = self._evaluate(data, handler_cls, params, resolved, num_threads, st.name,
                                  tuned.test_pairs if tuned else None)
            metrics = held.metrics
        # Early stopping found the epoch count; the final fit on all data uses it.
        handler = handler_cls(dict(params, epochs=held.best_epochs) if held and held.best_epochs else params)
        self._fit(handler, data, np.ones(len(data.rows), bool), num_threads, resolved["verbose"], f"training {st.name}")
        from .handlers.popularity import popularity_scores

        info = {
            "user_col": cols.user, "item_col": cols.item, "rating_col": cols.rating,
            "weight_col": cols.weight, "timestamp_col": cols.timestamp,
            "user_type": data.user_type, "item_type": data.item_type,
            "n_users": data.shape[0], "n_items": data.shape[1], "n_pairs": int(len(data.rows)),
            "n_positives": int(data.positive.sum()), "n_source_rows": data.n_source_rows,
            "source_sql": sql, "source_database": st.source.database, "num_threads": num_threads,
            "features": feature_specs,
        }
        if tuned:
            info["tuning"] = tuned.trials
        params_stored = dict(params, epochs_trained=handler.epochs)
        model = StoredModel(
            name=st.name, engine=handler_cls.engine, options=common, params=params_stored, info=info,
            metrics=metrics, users=data.users, items=data.items, seen=data.seen(),
            popularity=popularity_scores(data, np.ones(len(data.rows), bool))[0], handler=handler,
            train_seconds=time.perf_counter() - started,
            extra_arrays=held.arrays if held else {},
        )
        try:
            cat.save(model)
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, f"{where}: saving the model failed; the previous version is intact") from exc
        self._emit(duck, self._status(cat, st.name, "trained"))

    def _is_table(self, duck: duckdb.DuckDBPyConnection, name: str) -> bool:
        return bool(duck.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE lower(table_name) = lower($1) "
            "AND schema_name = current_schema() AND database_name = current_database()", [name]).fetchone()[0]
            + duck.execute(
            "SELECT count(*) FROM duckdb_views() WHERE lower(view_name) = lower($1) AND NOT internal "
            "AND schema_name = current_schema() AND database_name = current_database()", [name]).fetchone()[0])

    def _fit(self, handler, data, mask: np.ndarray, num_threads: int, verbose: bool | None, desc: str,
             on_epoch_extra=None) -> None:
        bar = EpochBar(int(handler.params.get("epochs", 1) or 1), desc, verbose)

        def on_epoch(done: int, total: int) -> None:
            postfix = on_epoch_extra(done) if on_epoch_extra else {}
            bar.update(done, total, **postfix)
            if self._cancel:
                raise Cancelled(f"{desc}: cancelled after epoch {done} of {total}; nothing was saved")

        try:
            handler.fit(data, mask, num_threads=num_threads, on_epoch=on_epoch)
        finally:
            bar.close()

    def _fit_fn(self, data, num_threads: int, verbose: bool | None) -> selection.FitFn:
        """`_fit` on this training set, in the shape selection and tuning call it."""
        def fit(handler, mask, desc, on_epoch):
            self._fit(handler, data, mask, num_threads, verbose, desc, on_epoch)

        return fit

    def _evaluate(self, data, handler_cls, params, resolved, num_threads: int, name: str,
                  test_pairs=None) -> selection.HeldOutResult:
        """Held-out run (split, per-epoch curve, early stopping): see selection.held_out_run."""
        fit = self._fit_fn(data, num_threads, resolved["verbose"])
        return selection.held_out_run(data, handler_cls, params, resolved, fit, name, test_pairs)

    def _tune(self, data, handler_cls, params, resolved, explicit, num_threads: int, name: str) -> tuning.TuneResult:
        """Hyperparameter search on a validation split: see sqlrec.tuning."""
        fit = self._fit_fn(data, num_threads, resolved["verbose"])
        return tuning.tune(data, handler_cls, params, resolved, explicit, fit, name)

    def _status(self, cat: Catalog, name: str, status: str) -> pa.Table:
        model = cat.load(name, "CREATE MODEL")
        values = (model.metrics or {}).get("values", {})
        return pa.table({
            "name": [model.name], "engine": [model.engine], "version": pa.array([model.version], pa.int32()),
            "status": [status], "n_users": [model.info["n_users"]], "n_items": [model.info["n_items"]],
            "n_interactions": [model.info["n_positives"]],
            "train_seconds": [round(model.train_seconds, 3)],
            **{m: pa.array([values.get(m)], pa.float64()) for m in ("precision_at_k", "recall_at_k", "auc")},
        })

    # --- other model statements --------------------------------------------------------------

    def drop_model(self, duck, cat: Catalog, st: DropModel) -> None:
        if not cat.exists(st.name):
            if st.if_exists:
                return self._emit(duck, pa.table({"name": [st.name], "status": ["not found"]}))
            cat.require(st.name, "DROP MODEL")
        cat.drop(st.name)
        self._emit(duck, pa.table({"name": [st.name], "status": ["dropped"]}))

    def show_models(self, duck, cat: Catalog) -> None:
        rows = cat.rows()
        import json

        def metric(r: dict, m: str) -> float | None:
            return (json.loads(r["metrics"]).get("values") or {}).get(m)

        infos = [json.loads(r["info"]) for r in rows]
        self._emit(duck, pa.table({
            "name": pa.array([r["name"] for r in rows], pa.string()),
            "engine": pa.array([r["engine"] for r in rows], pa.string()),
            "version": pa.array([r["version"] for r in rows], pa.int32()),
            "user_id": pa.array([i["user_col"] for i in infos], pa.string()),
            "item_id": pa.array([i["item_col"] for i in infos], pa.string()),
            "n_users": pa.array([i["n_users"] for i in infos], pa.int64()),
            "n_items": pa.array([i["n_items"] for i in infos], pa.int64()),
            "created_at": pa.array([r["created_at"].replace(microsecond=0) for r in rows], pa.timestamp("s")),
            "train_seconds": pa.array([r["train_seconds"] for r in rows], pa.float64()),
            **{m: pa.array([metric(r, m) for r in rows], pa.float64()) for m in ("precision_at_k", "recall_at_k", "auc")},
        }))

    def describe(self, duck, cat: Catalog, st: Describe) -> None:
        where = f"DESCRIBE {st.name}"
        model = cat.load(st.name, where)
        if st.attribute is None:
            return self._emit(duck, relations.attributes_table())
        attr = st.attribute.lower()
        if attr not in relations.ATTRIBUTES:
            raise QueryError(
                f"{where}: unknown attribute {st.attribute!r}{did_you_mean(attr, relations.ATTRIBUTES)}; "
                f"attributes: {', '.join(relations.ATTRIBUTES)}")
        self._emit(duck, relations.ATTRIBUTES[attr](model))

    def evaluate_model(self, duck, cat: Catalog, st: EvaluateModel) -> None:
        """EVALUATE MODEL m [FROM test] [USING k = ...]: one row of metrics.

        Without FROM: the model's stored held-out split, scored with the held-out fit's stored
        factors (the final model has seen the test pairs). With FROM: the stored model, on the
        query's (user, item) rows mapped through the model's id maps; rows with unknown ids
        cannot be ranked and are counted in the result instead.
        """
        where = f"EVALUATE MODEL {st.name}"
        model = cat.load(st.name, where)
        given = dict(st.options)
        q = opts.resolve(given, opts.EVALUATE_OPTIONS, f"{where} USING")
        stored = model.metrics or {}
        k = q["k"] or stored.get("k") or model.options.get("eval_k") or model.options.get("n_recommendations") or 10
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
            users, items, counts = self._test_pairs(duck, model, st, q, where)
            seen = model.seen if q["exclude_seen"] else None
            result = selection.evaluate_pairs(model.handler, seen, model.popularity, users, items, k)
            counts["n_seen_dropped"] = result["n_seen"]
            source = "query"
        note = _evaluate_note(model, counts)
        self._emit(duck, pa.table({
            "name": [model.name], "version": pa.array([model.version], pa.int32()),
            "evaluated_on": [source], "k": pa.array([k], pa.int32()),
            **{m: pa.array([v], pa.float64()) for m, v in result["values"].items()},
            "n_test_users": pa.array([result["n_users"]], pa.int64()),
            "n_test": pa.array([result["n_test"]], pa.int64()),
            **{c: pa.array([counts.get(c)], pa.int64()) for c in (
                "n_rows", "n_unknown_users", "n_unknown_items", "n_ignored_rows", "n_seen_dropped")},
            "note": pa.array([note], pa.string()),
        }))

    def _test_pairs(self, duck, model: StoredModel, st: EvaluateModel, q: dict, where: str
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """(user indices, item indices, counts) of the test query's positive rows with known ids."""
        sql = data_mod.source_sql(st.source.table, st.source.query)
        columns = list(data_mod.query_columns(duck, sql, where, st.source.database, "test"))

        def column(name: str, what: str) -> str:
            found = data_mod.find_column(columns, name)
            if found is None:
                raise ColumnError(f"{where}: the test query has no column {name!r} ({what}); "
                                  f"its columns are: {', '.join(columns)}")
            return found

        q_ = data_mod.quote_ident
        ucol = column(model.user_col, "the model's user id")
        icol = column(model.item_col, "the model's item id")
        threshold = q["threshold"] if q["threshold"] is not None else model.options.get("threshold")
        rating = model.info.get("rating_col")
        rcol = data_mod.find_column(columns, rating) if rating else None
        if q["threshold"] is not None and rcol is None:
            raise OptionError(f"{where}: option threshold needs the model's rating column {rating or '(none)'!r} "
                              f"in the test query; its columns are: {', '.join(columns)}")
        keep = (f"coalesce({q_(rcol)} >= {float(threshold)!r}, false)"
                if rcol is not None and threshold is not None else "true")
        try:
            with data_mod.in_database(duck, st.source.database, where):
                got = duck.sql(f"SELECT {q_(ucol)} AS u, {q_(icol)} AS i, {keep} AS keep FROM ({sql})").to_arrow_table()
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, f"{where}: the test query failed") from exc
        n_rows = got.num_rows
        rows = got.filter(got.column("keep"))
        _, upos = relations.lookup(model, "user", rows.column("u").to_pylist(), where)
        _, ipos = relations.lookup(model, "item", rows.column("i").to_pylist(), where)
        bad_u, bad_i = upos < 0, ipos < 0
        counts = {
            "n_rows": int(n_rows),
            "n_unknown_users": len(set(rows.column("u").filter(pa.array(bad_u)).to_pylist())),
            "n_unknown_items": len(set(rows.column("i").filter(pa.array(bad_i)).to_pylist())),
            "n_ignored_rows": int((bad_u | bad_i).sum()),
            "n_below_threshold": int(n_rows - len(rows)),
        }
        ok = ~(bad_u | bad_i)
        return upos[ok], ipos[ok], counts

    # --- queries -------------------------------------------------------------------------------

    def query(self, duck, cat: Catalog, st: Query, params: Any) -> None:
        refs = rewrite.find_model_refs(st.tree, cat.exists)
        if not refs:
            self._no_model_check(cat, st)
            return self._duck(duck, st.text, params)
        tree = rewrite.inline_parameters(st.tree.copy(), params)
        refs = rewrite.find_model_refs(tree, cat.exists)
        for ref in refs:
            model = cat.load(ref.model, "SELECT")
            alias = ref.table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(ref.alias))
            if ref.attribute is not None:
                name = self._register(duck, relations.ATTRIBUTES[ref.attribute](model))
                ref.table.replace(exp.Table(this=exp.to_identifier(name), alias=alias))
                continue
            rel = self._recommendations(duck, model, ref)
            name = self._register(duck, rel)
            ref.table.replace(exp.Subquery(this=_typed_select(name, model, rel.column_names), alias=alias))
        self._duck(duck, tree.sql(dialect="duckdb"))

    def _no_model_check(self, cat: Catalog, st: Query) -> None:
        """USING on a query that reads no model would reach DuckDB as a bare syntax error."""
        using = next((n for n in st.tree.find_all(exp.Expression) if n.args.get(OPTIONS_ARG)), None)
        if using is None:
            return
        tables = sorted({t.name for t in st.tree.find_all(exp.Table) if t.name})
        models = cat.names()
        unknown = [t for t in tables if did_you_mean(t, models)]
        hint = f"; unknown model {unknown[0]!r}{did_you_mean(unknown[0], models)}" if unknown else ""
        raise QueryError(
            f"SELECT ... USING: the query reads no model (it reads {', '.join(tables) or 'no table'}){hint}; "
            f"models: {', '.join(models) or 'none (CREATE MODEL first)'}")

    def _recommendations(self, duck, model: StoredModel, ref: rewrite.ModelRef) -> pa.Table:
        where = f"SELECT FROM {model.name}"
        given = rewrite.gather_options(ref)
        in_where = rewrite.take_where_option(ref, "recommender_type")
        if in_where is not None:
            if "recommender_type" in given and str(given["recommender_type"]).lower() != str(in_where).lower():
                raise QueryError(f"{where}: recommender_type given twice with different values")
            given["recommender_type"] = in_where
        q = opts.resolve(given, opts.QUERY_OPTIONS, f"{where} USING")
        rtype = q["recommender_type"]
        key = relations.key_column(model, rtype)
        keys = rewrite.pushed_keys(ref, key)
        batch = rewrite.batch_join(ref, key, where)
        if batch is not None:
            try:
                got = duck.execute(batch.sql(dialect="duckdb")).fetchall()
            except duckdb.Error as exc:
                raise wrap_duckdb(exc, f"{where}: the joined table's {key} values") from exc
            batch_keys = [r[0] for r in got if r[0] is not None]
            keys = batch_keys if keys is None else [k for k in keys if k in set(batch_keys)]
        k = q["n_recommendations"] or model.options.get("n_recommendations") or 10
        exclude = q["exclude_seen"]
        if exclude is None:
            exclude = rtype in ("user_item", "item_user")
        candidates = None
        if q["candidates"] is not None:
            try:
                got = duck.execute(q["candidates"]).fetchall()
            except duckdb.Error as exc:
                raise wrap_duckdb(exc, f"{where}: USING candidates query failed") from exc
            candidates = [r[0] for r in got]
        keys, cold = coldstart.prepare(duck, model, rtype, keys, q, where)
        return relations.recommend(model, rtype, keys, k, exclude_seen=exclude, candidates=candidates, where=where,
                                   cold=cold)
