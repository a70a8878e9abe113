"""FINETUNE: a model's next version trained further on new interactions.

An engine whose class says incremental_finetune (lightfm), on a model without features, is
fine-tuned incrementally: every known user's and item's state (for lightfm: vectors, biases and
optimizer accumulators) is the warm start, new users and items get rows from the handler's
grow() (LightFM's own initialisation), the id maps, seen pairs and popularity are extended, and
only the new interactions are trained on (plus, with ``replay``, a sample of the old pairs). The
other engines (popularity, svd, als...) and models with features are refit on the stored
training query plus the new rows: DESCRIBE m.versions says which in ``notes``.

Either way the new version's stored training query is the old one UNION ALL the new source, so a
later RETRAIN trains on everything the model has seen.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from sqlrec.lazy import sparse as sp

from sqlrec.numeric import approx
from sqlrec.ingest import data as data_mod
from sqlrec.exec import lifecycle, training
from sqlrec.sql import options as opts
from sqlrec.models.catalog import Catalog
from sqlrec.errors import ColumnError, OptionError, TrainingError, context
from sqlrec.models.model import Model
from sqlrec.store.session import Session
from sqlrec.sql import CreateModel, Finetune, Source, parse_select, quote_ident

Option = opts.Option
FINETUNE_OPTIONS: tuple[opts.Option, ...] = (
    Option("epochs", int, 5, "passes over the new interactions", low=1, high=100_000, aliases=("epoch",)),
    Option("replay", float, 0.0, "share of the old pairs trained on again with the new ones (0: none)",
           low=0.0, high=1.0),
    Option("num_threads", int, None, "training threads (default: the model's)", low=1, high=opts.thread_limit,
           aliases=("n_jobs",)),
    Option("verbose", bool, None, "progress bar (default: when output is a terminal)"),
    Option("keep_versions", int, None, "versions whose arrays are kept (default: the model's)", low=1, high=1000),
)
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}


def finetune(session: Session, catalog: Catalog, st: Finetune, cancelled: Callable[[], bool]) -> tuple[Model, str]:
    where = f"FINETUNE {st.name}"
    model = catalog.load(st.name, where)
    assert st.source is not None  # the grammar requires FROM
    source_db = model.info.source_database
    if (st.source.database or None) != (source_db or None):
        raise OptionError(f"{where}: the new rows must come from the training query's database "
                          f"({source_db or 'the current one'}), got {st.source.database or 'the current one'}")
    if any(k.lower() in ("evaluation", "tune") for k in st.options):
        raise OptionError(f"{where}: evaluation and tune do not apply to FINETUNE; measure the new version with "
                          f"EVALUATE MODEL {model.name} FROM (SELECT ...), or RETRAIN ... USING evaluation = true")
    new_sql = parse_select(st.source.select_sql(), f"{where}: FROM")
    union = _union_sql(model, lifecycle.stored_source(model, where).query or "", new_sql)
    handler_cls = type(model.handler)
    # Features: the new ids have no rows in the stored feature matrices, so such a model is refit.
    if not handler_cls.incremental_finetune or model.info.has_features:
        return _refit(session, catalog, st, model, union, where, cancelled)
    given = opts.resolve(st.options, FINETUNE_OPTIONS, where)
    started = time.perf_counter()
    new = _load_new(session, model, new_sql, st.source.database, where)
    grown, users, items = _grow_ids(model, new, where)
    train = _with_replay(grown, model.seen, given["replay"], model.params.get("random_state"))
    training.check_resources(handler_cls, model.params, grown, where)  # the grown model, before grow() allocates
    with context(where):  # arrays() reads the stored training state now: a damaged one is named here
        handler = handler_cls.from_arrays(dict(model.params, epochs=given["epochs"]), model.handler.arrays())
    handler.grow(len(users), len(items))
    num_threads = given["num_threads"] or opts.capped_threads(model.info.num_threads) or opts.default_threads()
    trainer = training.Trainer(train, num_threads, given["verbose"], cancelled)
    trainer.fit(handler, np.ones(len(train.rows), bool), f"fine-tuning {model.name}")
    seen = _pad(model.seen, grown.shape) + grown.seen()
    seen.data[:] = 1.0
    old = model.info
    info = old.replace(
        user=dataclasses.replace(old.user, n=len(users), n_new=len(users) - len(model.users)),
        item=dataclasses.replace(old.item, n=len(items), n_new=len(items) - len(model.items)),
        kind="finetune", num_threads=num_threads, n_pairs=int(seen.nnz), n_positives=int(old.n_positives or 0) + int(grown.positive.sum()),
        n_source_rows=int(old.n_source_rows or 0) + new.n_source_rows, source_sql=union,
        notes=f"incremental: warm start from version {model.version}, {given['epochs']} epochs on "
              f"{len(grown.rows)} new pairs" + (f" + {len(train.rows) - len(grown.rows)} replayed"
                                                if given["replay"] else ""))
    options = dict(model.options, **({"keep_versions": given["keep_versions"]} if given["keep_versions"] else {}))
    out = Model(name=model.name, engine=model.engine, options=options,
                params=dict(model.params, epochs_trained=handler.epochs), info=info, metrics={},
                users=users, items=items, seen=seen, popularity=_popularity(seen), handler=handler,
                train_seconds=time.perf_counter() - started)
    with context(where):
        approx.attach(out)  # the index follows the new factors and the new items
    catalog.save(out, where)
    return out, "finetuned"


def _refit(session: Session, catalog: Catalog, st: Finetune, model: Model, union: str, where: str,
           cancelled: Callable[[], bool]) -> tuple[Model, str]:
    """Engines without an incremental fit: a RETRAIN on the old training query plus the new rows."""
    unknown = [k for k in st.options if k.lower() not in ("num_threads", "n_jobs", "verbose", "keep_versions")]
    if unknown:
        raise OptionError(f"{where}: engine {model.engine!r}{' with features' if model.info.has_features else ''}"
                          f" is refit on the old and new rows; option {unknown[0]!r} does not apply "
                          "(use RETRAIN ... USING to change options)")
    create = CreateModel(name=model.name, source=Source(query=union, database=model.info.source_database),
                         options=lifecycle.stored_options(model, st.options), replace=True)
    out, _ = training.create(session, catalog, create, cancelled, kind="finetune",
                             notes=f"refit on the stored training query plus the new rows ({model.engine}"
                                   f"{' with features' if model.info.has_features else ''} has no incremental fit)")
    return out, "finetuned (refit)"


def _union_sql(model: Model, old_sql: str, new_sql: str) -> str:
    """The old training query UNION ALL the new rows, on the model's columns."""
    cols = [c for c in _columns(model).values() if c]
    select = ", ".join(quote_ident(c) for c in cols)
    return f"SELECT {select} FROM ({old_sql}) UNION ALL SELECT {select} FROM ({new_sql})"


def _columns(model: Model) -> dict[str, str | None]:
    """The model's training columns, by the option that named them (None: not used)."""
    info = model.info
    return {"user_id": info.user.column, "item_id": info.item.column, "rating": info.rating_col,
            "weight": info.weight_col, "timestamp": info.timestamp_col}


def _family(type_name: str) -> str:
    return "integer" if type_name.upper() in _INTEGERS else type_name.upper()


def _load_new(session: Session, model: Model, sql: str, database: str | None, where: str) -> data_mod.TrainingData:
    columns = session.columns(sql, where=f"{where}: the query of the new rows failed", database=database)
    found: dict[str, str | None] = {}
    for option, name in _columns(model).items():
        if name is not None and data_mod.find_column(columns, name) is None:
            raise ColumnError(f"{where}: the new rows have no column {name!r} (the model's {option}); "
                              f"their columns are: {', '.join(columns)}")
        found[option] = name and data_mod.find_column(columns, name)
    cols = data_mod.Columns(user=found["user_id"], item=found["item_id"], rating=found["rating"],
                            weight=found["weight"], timestamp=found["timestamp"])
    new = data_mod.load(session, sql, cols, model.settings.threshold, where, database)
    if len(new.rows) == 0:
        raise TrainingError(f"{where}: the new rows are empty; nothing to fine-tune on, nothing was saved")
    for side in ("user", "item"):
        have, got = model.info.side(side).type, new.id_type(side)
        if _family(have) != _family(got):
            raise ColumnError(f"{where}: column {model.info.side(side).column!r} of the new rows is {got} but the "
                              f"model's {side} ids are {have}; cast it in the query")
    return new


def _grow_ids(model: Model, new: data_mod.TrainingData, where: str
              ) -> tuple[data_mod.TrainingData, pa.Array, pa.Array]:
    """The new rows on the model's id maps extended by the new users and items (appended)."""
    import pandas as pd  # here, not at module level: `import sqlrec` and plain SQL never need it

    maps = []
    for old, ids in ((model.users, new.users), (model.items, new.items)):
        ids = ids.cast(old.type)
        pos = np.asarray(pd.Index(old.to_pandas()).get_indexer(ids.to_pandas()), np.int64)
        unseen = pos < 0
        pos[unseen] = len(old) + np.arange(int(unseen.sum()))
        maps.append((pa.concat_arrays([old, ids.filter(pa.array(unseen))]), pos))
    (users, upos), (items, ipos) = maps
    rows, cols = upos[new.rows].astype(np.int32), ipos[new.cols].astype(np.int32)
    order = np.lexsort((cols, rows))
    pick = (lambda a: None if a is None else a[order])
    grown = dataclasses.replace(new, users=users, items=items, rows=rows[order], cols=cols[order],
                                weight=new.weight[order], rating=pick(new.rating), timestamp=pick(new.timestamp),
                                positive=new.positive[order], user_type=model.info.user.type,
                                item_type=model.info.item.type)
    return grown, users, items


def _with_replay(grown: data_mod.TrainingData, seen: sp.csr_matrix, share: float, seed: Any) -> data_mod.TrainingData:
    """The new pairs plus a random `share` of the old pairs (as positives of weight 1)."""
    if not share:
        return grown
    old = seen.tocoo()
    rng = np.random.default_rng(seed)
    take = rng.random(old.nnz) < share
    rows = np.concatenate([grown.rows, old.row[take].astype(np.int32)])
    cols = np.concatenate([grown.cols, old.col[take].astype(np.int32)])
    n = int(take.sum())
    order = np.lexsort((cols, rows))
    extra = (lambda a, fill: None if a is None else np.concatenate([a, np.full(n, fill, a.dtype)])[order])
    return dataclasses.replace(
        grown, rows=rows[order], cols=cols[order],
        weight=np.concatenate([grown.weight, np.ones(n, np.float32)])[order],
        rating=extra(grown.rating, np.nan), timestamp=extra(grown.timestamp, 0),
        positive=np.concatenate([grown.positive, np.ones(n, bool)])[order])


def _pad(matrix: sp.csr_matrix, shape: tuple[int, int]) -> sp.csr_matrix:
    m = matrix.tocoo()
    return sp.csr_matrix((m.data.astype(np.float32), (m.row, m.col)), shape=shape)


def _popularity(seen: sp.csr_matrix) -> np.ndarray:
    """Item popularity after fine-tuning: pairs per item over old and new rows, scaled to [0, 1]."""
    counts = np.asarray(seen.sum(axis=0)).ravel()
    top = counts.max() if len(counts) else 0.0
    return (counts / top if top > 0 else counts).astype(np.float32)
