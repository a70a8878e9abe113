"""MindsDB, ThanoSQL and BigQuery ML statements mapped onto sqlrec's own.

Each foreign option has one sqlrec equivalent (the tables below, also in the README's "Coming from
MindsDB / ThanoSQL / BigQuery ML"); an option with none is an OptionError naming it, never dropped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from sqlrec.sql import options as opts
from sqlrec.models.catalog import Catalog
from sqlrec.errors import ColumnError, OptionError
from sqlrec.engines import HANDLERS, get_handler
from sqlrec.store.session import SYSTEM, Session
from sqlrec.sql import CreateModel, Source, parse_select, quote_ident
from sqlrec.sql.compat.foreign import BigQueryCreateModel, CreateMLEngine, PredictUsing

# BigQuery ML option -> sqlrec option (matrix_factorization models).
BIGQUERY_OPTIONS = {
    "user_col": "user_id", "item_col": "item_id", "num_factors": "no_components", "l2_reg": "regularization",
    "max_iterations": "epochs", "wals_alpha": "alpha", "data_split_eval_fraction": "test_size",
}
# feedback_type -> engine: explicit ratings are predicted by sqlrec's biased ALS on rating values,
# implicit feedback goes to implicit's ALS (rating_col a confidence, scaled by wals_alpha).
FEEDBACK_ENGINES = {"implicit": "als", "explicit": "explicit"}
_SPLITS = {"no_split": False, "random": True}


def engine_name(name: str) -> str:
    """sqlrec's engine for the spellings other products use (ThanoSQL: Light_FM, LightFM)."""
    squashed = re.sub(r"[\s_-]", "", name.lower())
    return next((e for e in HANDLERS if e.replace("_", "") == squashed), name)


def show_ml_engines(session: Session, catalog: Catalog, st: Any) -> pa.Table:
    """MindsDB's SHOW ML_ENGINES: sqlrec's engines, each its own handler, all built in."""
    names = list(HANDLERS)
    return pa.table({"name": names, "handler": names,
                     "connection_data": pa.array([None] * len(names), pa.string())})


def create_ml_engine(session: Session, catalog: Catalog, st: CreateMLEngine) -> pa.Table:
    """MindsDB's CREATE ML_ENGINE name FROM handler: the engines are built in, so this checks that
    the handler is one and the name is its own (USING engine = name must keep working)."""
    where = f"CREATE ML_ENGINE {st.name}"
    handler = get_handler(engine_name(st.handler), f"{where} FROM")
    if engine_name(st.name) != handler.engine:
        raise OptionError(f"{where}: sqlrec's engines are built in under their handler's name; "
                          f"write CREATE ML_ENGINE {handler.engine} FROM {st.handler} and USING engine = "
                          f"'{handler.engine}'")
    if st.options:
        raise OptionError(f"{where}: option {next(iter(st.options))!r} is not supported "
                          "(a built-in engine takes no connection settings)")
    return pa.table({"name": [handler.engine], "handler": [handler.engine], "status": ["ready (built in)"]})


def native_create(session: Session, st: CreateModel) -> CreateModel:
    """A CREATE / BUILD MODEL with the other products' habits resolved against the data."""
    where = f"CREATE MODEL {st.name}"
    options = dict(st.options)
    engine = st.engine
    if engine is not None:
        engine = engine_name(engine)
    elif isinstance(options.get("engine"), str):
        options["engine"] = engine_name(options["engine"])
    source = st.source
    if source.database is not None and not is_database(session, source.database, where):
        # MindsDB's FROM integration (SELECT ...): without a DuckDB database or schema of that
        # name, the query reads this database, where the user loaded the integration's tables
        source = Source(query=source.query)
    keys = {k.lower() for k in options}
    if "threshold" in keys and not keys & {"rating", "rating_col"}:
        # MindsDB's preprocessing applies threshold to the column named rating
        columns = session.columns(source.select_sql(), where=f"{where}: the training query failed",
                                  database=source.database)
        rating = next((c for c in columns if c.lower() == "rating"), None)
        if rating is not None:
            options["rating"] = rating
    label = options.get("item_names")
    if isinstance(label, str):  # ThanoSQL's label column: PREDICT USING reads it from its AS query
        columns = session.columns(source.select_sql(), where=f"{where}: the training query failed",
                                  database=source.database)
        if not any(c.lower() == label.lower() for c in columns):
            raise OptionError(f"{where}: option item_names: no column {label!r}; columns: {', '.join(columns)}")
    return dataclasses.replace(st, options=options, engine=engine, source=source)


def is_database(session: Session, name: str, where: str) -> bool:
    """Whether `name` is an attached DuckDB database or a schema: what a MindsDB integration maps to."""
    # DuckDB's own table functions (SYSTEM): the file may carry table macros of these names.
    rows = session.rows(f"SELECT database_name FROM {SYSTEM}.duckdb_databases() UNION ALL "
                        f"SELECT schema_name FROM {SYSTEM}.duckdb_schemas()", where=f"{where}: listing databases")
    return any(r[0].lower() == name.lower() for r in rows)


def bigquery_create(st: BigQueryCreateModel) -> CreateModel:
    """BigQuery ML's CREATE MODEL ... OPTIONS (model_type = 'matrix_factorization', ...) AS query."""
    where = f"CREATE MODEL {st.name} OPTIONS"
    given = {k.lower(): v for k, v in st.options.items()}
    model_type = str(given.pop("model_type", "")).lower()
    if model_type != "matrix_factorization":
        raise OptionError(f"{where}: option model_type must be 'matrix_factorization' (the one recommender "
                          f"model type), got {model_type or 'none'!r}")
    feedback = str(given.pop("feedback_type", "explicit")).lower()
    if feedback not in FEEDBACK_ENGINES:
        raise OptionError(f"{where}: option feedback_type must be 'explicit' or 'implicit', got {feedback!r}")
    options: dict[str, Any] = {"engine": FEEDBACK_ENGINES[feedback]}
    rating = given.pop("rating_col", None)
    if feedback == "explicit":
        options["rating"] = rating or "rating"  # BigQuery's default rating_col
        if "wals_alpha" in given:
            raise OptionError(f"{where}: option wals_alpha applies to feedback_type = 'implicit' only")
    elif rating is not None:
        options["weight"] = rating  # implicit: the column is a confidence, scaled by wals_alpha
    split = given.pop("data_split_method", None)
    if split is not None:
        if str(split).lower() not in _SPLITS:
            raise OptionError(f"{where}: option data_split_method must be one of "
                              f"{', '.join(map(repr, _SPLITS))}, got {split!r}")
        options["evaluation"] = _SPLITS[str(split).lower()]
    for key, value in given.items():
        if key not in BIGQUERY_OPTIONS:
            raise OptionError(f"{where}: option {key!r} is not supported; supported: "
                              + ", ".join(["model_type", "feedback_type", "rating_col", "data_split_method",
                                           *BIGQUERY_OPTIONS]))
        options[BIGQUERY_OPTIONS[key]] = value
    if "test_size" in options:
        options.setdefault("evaluation", True)
    return CreateModel(st.name, Source(query=st.query), None, options, replace=st.replace,
                       if_not_exists=st.if_not_exists, text=st.text, line=st.line, col=st.col)


@contextlib.contextmanager
def bigquery_names(st: BigQueryCreateModel) -> Iterator[None]:
    """Errors about a mapped option name the option as the user wrote it (num_factors, not
    no_components)."""
    try:
        yield
    except (OptionError, ColumnError) as exc:
        message = str(exc)
        written = {k.lower() for k in st.options}
        rating = "rating" if str(st.options.get("feedback_type", "explicit")).lower() == "explicit" else "weight"
        for theirs, ours in {**BIGQUERY_OPTIONS, "rating_col": rating}.items():
            if theirs in written:
                message = re.sub(rf"\boption {ours}\b", f"option {theirs} ({ours} in sqlrec)", message)
        if message == str(exc):
            raise
        raise type(exc)(message) from None


PREDICT_OPTIONS = (
    opts.Option("predict_type", str, None, "predict_user, predict_item or predict_simitem",
                choices=("predict_user", "predict_item", "predict_simitem")),
    opts.Option("nrec", int, None, "rows returned (default: the model's n_recommendations)", low=1, high=100_000),
)
# predict_type -> (recommender_type, the id option, what the score column is called)
_PREDICT_KINDS = {"predict_user": ("user_item", "user_id", "score"),
                  "predict_item": ("item_user", "item_id", "score"),
                  "predict_simitem": ("item_item", "item_id", "similarity")}


def _predict_options(st: PredictUsing, where: str) -> dict[str, Any]:
    given = dict(st.options)
    # ids keep the user's literal: the model's id type decides (Side.lookup)
    q = {k.lower(): given.pop(k) for k in list(given) if k.lower() in ("user_id", "item_id")}
    q.update(opts.resolve(given, PREDICT_OPTIONS, f"{where} OPTIONS"))
    if q["predict_type"] is None:
        raise OptionError(f"{where} OPTIONS: option predict_type is required "
                          "('predict_user', 'predict_item' or 'predict_simitem')")
    kind, id_option, _ = _PREDICT_KINDS[q["predict_type"]]
    other = "item_id" if id_option == "user_id" else "user_id"
    if q.get(id_option) is None:
        raise OptionError(f"{where} OPTIONS: predict_type = {q['predict_type']!r} needs option {id_option}")
    if q.get(other) is not None:
        raise OptionError(f"{where} OPTIONS: option {other} does not apply to predict_type = "
                          f"{q['predict_type']!r} (it takes {id_option})")
    return q


def predict_using(session: Session, catalog: Catalog, st: PredictUsing) -> pa.Table:
    """ThanoSQL's PREDICT USING: the top nrec rows for one user or item, labelled with the
    model's item_names column read from the AS query."""
    where = f"PREDICT USING {st.name}"
    q = _predict_options(st, where)
    kind, id_option, score = _PREDICT_KINDS[q["predict_type"]]
    sql = parse_select(st.query, f"{where}: the AS query")
    model = catalog.load(st.name, where)
    k = model.n_recommendations(q["nrec"])
    rows = model.recommend(kind, [q[id_option]], k, exclude_seen=kind != "item_item", where=where)
    target = rows.column(1)
    column = model.user_col if kind == "item_user" else model.item_col
    out = {column: target}
    label = model.settings.item_names
    if label is not None and kind != "item_user":
        got = session.rows(f"SELECT {quote_ident(model.item_col)}, {SYSTEM}.any_value({quote_ident(label)}) FROM ({sql}) AS t "
                           "GROUP BY 1",
                           where=f"{where}: reading item_names column {label!r} from the AS query")
        labels = dict(got)
        out[label] = pa.array([labels.get(v) for v in target.to_pylist()])
    out[score] = rows.column(2)
    return pa.table(out)
