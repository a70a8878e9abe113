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
from . import evaluation, options as opts, relations, rewrite
from .catalog import Catalog, StoredModel
from .errors import (
    Cancelled, ColumnError, Error, ModelExistsError, NotSupportedError, OptionError,
    ProgrammingError, QueryError, did_you_mean, wrap_duckdb,
)
from .handlers import HANDLERS
from .progress import EpochBar
from .sql import (
    OPTIONS_ARG, CreateModel, Describe, DropModel, EvaluateModel, Finetune, Passthrough, Query, Retrain,
    ShowModels, Statement, parse_script,
)

_views = itertools.count()


def _finish(duck: duckdb.DuckDBPyConnection) -> None:
    """Drop any unfinished result: DuckDB >= 2.0 refuses (un)register while one is pending."""
    if hasattr(duck, "abort"):
        try:
            duck.abort()
        except duckdb.Error:
            pass


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
        elif isinstance(st, (Retrain, Finetune, EvaluateModel)):
            word = {Retrain: "RETRAIN", Finetune: "FINETUNE", EvaluateModel: "EVALUATE MODEL"}[type(st)]
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
        _finish(duck)
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
        _finish(duck)
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
        columns = self._source_columns(duck, sql, st.source.database, where)
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
        if resolved["split"] == "time" and resolved["evaluation"] and resolved["timestamp"] is None:
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
        num_threads = resolved["num_threads"] or (1 if resolved["random_state"] is not None else opts.default_threads())
        params = {o.name: resolved[o.name] for o in handler_cls.options}
        params["random_state"] = resolved["random_state"]
        common = {o.name: resolved[o.name] for o in opts.COMMON_OPTIONS if o.name in resolved}

        metrics: dict[str, Any] = {}
        if resolved["evaluation"]:
            metrics = self._evaluate(data, handler_cls, params, resolved, num_threads, st.name)
        handler = handler_cls(params)
        self._fit(handler, data, np.ones(len(data.rows), bool), num_threads, resolved["verbose"], f"training {st.name}")
        from .handlers.popularity import popularity_scores

        info = {
            "user_col": cols.user, "item_col": cols.item, "rating_col": cols.rating,
            "weight_col": cols.weight, "timestamp_col": cols.timestamp,
            "user_type": data.user_type, "item_type": data.item_type,
            "n_users": data.shape[0], "n_items": data.shape[1], "n_pairs": int(len(data.rows)),
            "n_positives": int(data.positive.sum()), "n_source_rows": data.n_source_rows,
            "source_sql": sql, "source_database": st.source.database, "num_threads": num_threads,
        }
        params_stored = dict(params, epochs_trained=handler.epochs)
        model = StoredModel(
            name=st.name, engine=handler_cls.engine, options=common, params=params_stored, info=info,
            metrics=metrics, users=data.users, items=data.items, seen=data.seen(),
            popularity=popularity_scores(data, np.ones(len(data.rows), bool))[0], handler=handler,
            train_seconds=time.perf_counter() - started,
        )
        try:
            cat.save(model)
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, f"{where}: saving the model failed; the previous version is intact") from exc
        self._emit(duck, self._status(cat, st.name, "trained"))

    def _source_columns(self, duck, sql: str, database: str | None, where: str) -> dict[str, str]:
        with data_mod.in_database(duck, database, where):
            return data_mod.query_columns(duck, sql, where)

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

    def _evaluate(self, data, handler_cls, params, resolved, num_threads: int, name: str) -> dict[str, Any]:
        """Hold out a test split of the positives, train on the rest, score the test split."""
        split = resolved["split"]
        positive = data.positive
        # Entries carry their pair number + 1 (float64 is exact), so the split maps back to pairs.
        matrix = data.matrix(mask=positive)
        matrix.data = (np.flatnonzero(positive) + 1).astype(np.float64)
        if split == "time":
            times = data.matrix(mask=positive, values=data.timestamp)
            train_m, test_m = evaluation.SPLITS["time"](matrix, times, resolved["test_size"])
        else:
            train_m, test_m = evaluation.SPLITS[split](matrix, resolved["test_size"], resolved["random_state"])
        test_pairs = np.asarray(test_m.data, np.int64) - 1
        if len(test_pairs) == 0:
            raise OptionError(f"CREATE MODEL {name}: the {split} split left no test interactions; raise test_size")
        mask = np.ones(len(data.rows), bool)
        mask[test_pairs] = False
        handler = handler_cls(params)
        self._fit(handler, data, mask, num_threads, resolved["verbose"], f"evaluating {name}")
        k = resolved["n_recommendations"]
        train = data.matrix(mask=mask & positive)
        test = data.matrix(mask=~mask)
        uv, ub = handler.user_factors()
        iv, ib = handler.item_factors()
        values = evaluation.evaluate(uv, ub, iv, ib, train, test, k)
        return {
            "values": {m: float(v) for m, v in values.items()},
            "k": k, "split": split, "test_size": resolved["test_size"],
            "n_test_users": int((test.getnnz(axis=1) > 0).sum()), "n_test": int(len(test_pairs)),
        }

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
        return relations.recommend(model, rtype, keys, k, exclude_seen=exclude, candidates=candidates, where=where)
