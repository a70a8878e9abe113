"""Feature matrices: at training time (``build``, and ``attach`` for both sides of a
TrainingData) and at query time (``rows_for``, through a trained model's spec).

Every DuckDB call goes through a Session with a label naming the option at fault; the source
runs once into a temp table, and the temp tables and registered id maps are dropped on exit.
"""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from sqlrec.lazy import sparse as sp

from sqlrec.engines.training_data import TrainingData
from sqlrec.errors import ColumnError, TrainingDataError
from sqlrec.store.session import SYSTEM, Session
from sqlrec.sql.quoting import quote_ident
from sqlrec.sql.types import check_type
from sqlrec.ingest.features import weighting
from sqlrec.ingest.features.spec import column_specs, id_column, layout, query_specs, rows_sql, source_query


@dataclass
class FeatureSet:
    """One side's features at training time."""

    side: str  # "user" or "item"
    spec: dict[str, Any]  # JSON-able: maps any later source to the same features
    matrix: sp.csr_matrix  # (n_entities, n_identity + n_features) float32, rows normalised
    new_ids: pa.Array  # ids found only in the features, appended to the model's id map


def _id_type(id_type: str, option: str, where: str) -> str:
    """The model's id type, only as an allow-listed type name: it is written into CAST(... AS ...)."""
    checked = check_type(id_type)
    if checked is None:
        raise ColumnError(f"{where}: the {option} source cannot be matched: unsupported id type {id_type!r} "
                          "(the model's id column must have a plain DuckDB type)")
    return checked


def _columns(session: Session, sql: str, option: str, where: str, database: str | None) -> dict[str, str]:
    with session.in_database(database, where):
        return session.columns(sql, where=f"{where}: the {option} query failed")


def _load_source(session: Session, stack: ExitStack, sql: str, id_col: str, id_type: str, option: str,
                 where: str, database: str | None) -> str:
    """A temp table of the source's rows with a non-NULL id, the id cast to the model's type as __id.
    sqlrec's SQL over the source calls DuckDB's own functions only (SYSTEM, operators too): the
    file may carry macros of those names."""
    c = quote_ident(id_col)
    with session.in_database(database, where):
        return stack.enter_context(session.temp_table(
            "feat_src", f"SELECT CAST({c} AS {id_type}) AS __id, * FROM ({sql}) WHERE {c} IS NOT NULL",
            where=f"{where}: the {option} query failed"))


def _sparse(entries: dict[str, np.ndarray], row: str, shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((np.asarray(entries["value"], np.float32),
                          (np.asarray(entries[row], np.int64), np.asarray(entries["j"], np.int64))), shape=shape)


def _training_rows(session: Session, stack: ExitStack, src: str, specs: list[dict[str, Any]],
                   source_layout: str, id_type: str, ids: pa.Array, option: str, where: str):
    """(feature names with their column numbers, ids only the source has, (idx, j, value) entries)."""
    label = f"{where}: the {option} features query failed"
    n = len(ids)
    rows = stack.enter_context(session.temp_table("feat_rows", rows_sql(src, specs, source_layout), where=label))
    known = stack.enter_context(session.registered(
        "feat_ids", pa.table({"idx": pa.array(np.arange(n, dtype=np.int32)), "id": ids})))
    idmap = stack.enter_context(session.temp_table("feat_map", (
        f"SELECT CAST(id AS {id_type}) AS id, idx FROM {known} "
        f"UNION ALL SELECT id, {SYSTEM}.add({n - 1}, {SYSTEM}.row_number() OVER (ORDER BY id))::INTEGER FROM "
        f"(SELECT DISTINCT __id AS id FROM {src} WHERE __id NOT IN (SELECT CAST(id AS {id_type}) FROM {known}))"),
        where=label))
    vocab = stack.enter_context(session.temp_table("feat_vocab", (
        f"SELECT feature, {SYSTEM}.min(col_no) AS col_no, {SYSTEM}.subtract({SYSTEM}.row_number() OVER "
        f"(ORDER BY {SYSTEM}.min(col_no), feature), 1)::INTEGER AS j "
        f"FROM {rows} GROUP BY feature"), where=label))
    names = session.rows(f"SELECT feature, col_no FROM {vocab} ORDER BY j", where=label)
    new_ids = session.arrow(f"SELECT id FROM {idmap} WHERE idx >= {n} ORDER BY idx", where=label
                            ).column(0).combine_chunks()
    entries = session.numpy(f"SELECT m.idx, v.j, r.value FROM {rows} r JOIN {idmap} m ON r.id = m.id "
                            f"JOIN {vocab} v ON r.feature = v.feature", where=label)
    return names, new_ids, entries


def build(session: Session, value: Any, *, side: str, id_col: str, id_type: str, ids: pa.Array,
          identity: bool, bucket_numeric: int | None, where: str, database: str | None = None,
          feature_weight: float | str | None = None, feature_values: str = "raw") -> FeatureSet:
    """Features of one side at training time, aligned to `ids` (the interaction id map) plus any
    ids that only the feature source has (appended, ordered by id); weighting: see
    sqlrec.ingest.features.weighting."""
    option = f"{side}_features"
    sql = source_query(value, option, where)
    id_type = _id_type(id_type, option, where)
    columns = _columns(session, sql, option, where, database)
    id_name = id_column(columns, id_col, id_type, option, where)
    source_layout = layout(columns, id_name)
    with ExitStack() as stack:
        src = _load_source(session, stack, sql, id_name, id_type, option, where, database)
        n_rows = session.one(f"SELECT {SYSTEM}.count_star() FROM {src}", where=f"{where}: the {option} query failed")[0]
        if n_rows == 0:
            raise TrainingDataError(f"{where}: the {option} source returned no rows (with a non-NULL {id_name})")
        specs = column_specs(session, src, columns, id_name, source_layout, bucket_numeric, option, where)
        names, new_ids, entries = _training_rows(session, stack, src, specs, source_layout, id_type, ids,
                                                 option, where)
    n_entities = len(ids) + len(new_ids)
    meta = weighting.transform(_sparse(entries, "idx", (n_entities, len(names))), feature_values)
    diag = None
    if identity:
        # Only ids with interactions keep an identity weight (see the package docstring).
        diag = np.zeros(n_entities, np.float32)
        diag[: len(ids)] = 1.0
    spec = {
        "source": value, "sql": sql, "database": database, "id_column": id_name, "layout": source_layout,
        "identity": bool(identity), "n_identity": n_entities if identity else 0,
        "bucket_numeric": bucket_numeric, "columns": specs,
        "feature_weight": feature_weight, "feature_values": feature_values,
        "names": [n for n, _ in names], "kinds": [specs[c]["kind"] for _, c in names],
        "n_entities": np.diff(meta.tocsc().indptr).astype(int).tolist(),
        "n_source_rows": int(n_rows), "n_feature_only": len(new_ids),
        "n_without_features": int((meta.getnnz(axis=1) == 0).sum()),
    }
    return FeatureSet(side=side, spec=spec, matrix=weighting.combine(diag, meta, feature_weight), new_ids=new_ids)


def rows_for(session: Session, spec: dict[str, Any], value: Any, *, option: str, id_col: str, id_type: str,
             wanted: pa.Array | None, where: str, database: str | None = None) -> tuple[pa.Array, sp.csr_matrix]:
    """Metadata feature rows (no identity, each row summing to 1) of the ids in a source, mapped
    through a trained model's spec; features the model does not know are dropped.

    wanted: restrict to these ids (same order, zero rows for ids without features);
    None: every id in the source, ordered by id.
    """
    sql = source_query(value, option, where)
    id_type = _id_type(id_type, option, where)
    columns = _columns(session, sql, option, where, database)
    id_name = id_column(columns, id_col, id_type, option, where)
    specs = query_specs(spec, columns, id_name, option, where)
    label = f"{where}: reading the {option} source failed"
    with ExitStack() as stack:
        src = _load_source(session, stack, sql, id_name, id_type, option, where, database)
        if wanted is not None:
            keys = stack.enter_context(session.registered("feat_want", pa.table({
                "pos": pa.array(np.arange(len(wanted), dtype=np.int64)), "id": wanted})))
            ids_sql = f"SELECT CAST(id AS {id_type}) AS id, pos FROM {keys}"
        else:
            ids_sql = (f"SELECT id, {SYSTEM}.subtract({SYSTEM}.row_number() OVER (ORDER BY id), 1) AS pos FROM "
                       f"(SELECT DISTINCT __id AS id FROM {src})")
        idmap = stack.enter_context(session.temp_table("feat_map", ids_sql, where=label))
        vocab = stack.enter_context(session.registered("feat_vocab", pa.table({
            "feature": pa.array(spec["names"], pa.string()),
            "j": pa.array(np.arange(len(spec["names"]), dtype=np.int64))})))
        ids = session.arrow(f"SELECT id FROM {idmap} ORDER BY pos", where=label).column(0).combine_chunks()
        entries = session.numpy(
            f"SELECT m.pos, v.j, r.value FROM ({rows_sql(src, specs, spec['layout'])}) r "
            f"JOIN {idmap} m ON r.id = m.id JOIN {vocab} v ON r.feature = v.feature", where=label)
    meta = weighting.transform(_sparse(entries, "pos", (len(ids), len(spec["names"]))),
                               spec.get("feature_values", "raw"))
    return ids, weighting.normalise(meta)


def attach(session: Session, data: TrainingData, id_columns: dict[str, str], options: dict[str, Any],
           where: str) -> tuple[TrainingData, dict[str, dict[str, Any]]]:
    """TrainingData with the feature matrices of the sides that have a source (ids found only in
    a source appended to the id maps), and the JSON specs stored in the model's info.

    Sources run in the current database, whatever the training query's FROM db: qualify a
    table (db.table) to read it from an attached one.
    """
    specs: dict[str, dict[str, Any]] = {}
    changes: dict[str, Any] = {}
    for side in ("user", "item"):
        value = options.get(f"{side}_features")
        if value is None:
            continue  # the cross-option rules (sqlrec.sql.options) were checked before training
        ids = data.ids(side)
        fs = build(session, value, side=side, id_col=id_columns[side], id_type=data.id_type(side), ids=ids,
                   identity=options.get(f"{side}_identity", True) is not False,
                   bucket_numeric=options.get("bucket_numeric"), where=where,
                   feature_weight=options.get("feature_weight"), feature_values=options.get("feature_values") or "raw")
        if len(fs.new_ids):
            changes[f"{side}s"] = pa.concat_arrays([ids, fs.new_ids.cast(ids.type)])
        changes[f"{side}_features"] = fs.matrix
        specs[side] = fs.spec
    return (dataclasses.replace(data, **changes) if changes else data), specs
