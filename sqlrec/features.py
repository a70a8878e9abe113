"""User and item features from SQL: a feature source -> a feature vocabulary + a sparse matrix.

A feature source is a table name or a quoted SELECT. Its id column is the column named like the
model's user/item id column (normally the first one); every other column becomes features by
its DuckDB type:

=====================  =================================================================
text (VARCHAR, ENUM,   one categorical feature per value, named ``column=value``; text
UUID, BOOLEAN)         holding ``a|b|c`` gives one feature per element (``genres=Drama``)
LIST / ARRAY           one feature per element (``tags=space``)
numbers                one feature named ``column``, weight min-max scaled to [0, 1] over
                       the training rows (values outside that range at query time are
                       clamped); with ``bucket_numeric = N`` instead N quantile buckets,
                       one categorical feature each (``year=[1990,1995)``)
NULL                   no feature
=====================  =================================================================

Long format is accepted too: a source whose columns are (id, feature) or (id, feature, value)
-- the second column named ``feature``. A numeric value is the feature's weight as given; a
text value makes the feature ``feature=value`` with weight 1.

Several rows for one id add their features up (a repeated feature keeps its largest weight).
Identity features come first (one per user/item, as in LightFM's hybrid examples) unless
``user_identity`` / ``item_identity`` = false. Each row is scaled to sum to 1, as LightFM's own
Dataset does. A user/item with no interactions gets no identity weight: its identity
embedding would never be trained, so it is represented by its metadata alone, exactly like an
id that is only added to the source after training.

DuckDB does the work (casting, splitting, unnesting, scaling, bucketing, the id join); Python
only receives flat arrays. The column rules, the scaling ranges, the bucket edges and the
vocabulary are kept in a JSON spec so that query-time sources map to the very same features.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from .data import find_column, finish_pending, in_database, query_columns, quote_ident
from .errors import ColumnError, OptionError, TrainingDataError, wrap_duckdb

KINDS = ("identity", "categorical", "multi", "list", "numeric", "bucket", "weight")

_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
             "UINTEGER", "UBIGINT", "UHUGEINT", "INT1", "INT2", "INT4", "INT8", "INT")
_FLOATS = ("FLOAT", "DOUBLE", "REAL", "DECIMAL", "NUMERIC")
_QUERY_START = re.compile(r"^\s*(\(|select\b|with\b|from\b|values\b|table\b|pivot\b|unpivot\b)", re.I)
_TABLE_NAME = re.compile(r'^\s*("[^"]+"|[A-Za-z_][\w$]*)(\s*\.\s*("[^"]+"|[A-Za-z_][\w$]*)){0,2}\s*$')


@dataclass
class FeatureSet:
    """One side's features at training time."""

    side: str  # "user" or "item"
    spec: dict[str, Any]  # JSON-able: maps any later source to the same features
    matrix: sp.csr_matrix  # (n_entities, n_identity + n_features) float32, rows normalised
    new_ids: pa.Array  # ids found only in the features, appended to the model's id map


def arrow(duck: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """A query's rows as Arrow (a pending result, only ever a finished statement's, is dropped)."""
    finish_pending(duck)
    return duck.sql(sql).to_arrow_table()


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def type_class(type_name: str) -> str | None:
    """'int', 'float', 'text', 'bool', 'list' or None (unsupported) for a DuckDB type name."""
    t = type_name.strip().upper()
    if re.search(r"\[\d*\]$", t):
        return "list"
    base = re.split(r"[(\s]", t, maxsplit=1)[0]
    if base in _INTEGERS:
        return "int"
    if base in _FLOATS:
        return "float"
    if base in ("VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "ENUM", "UUID"):
        return "text"
    if base in ("BOOLEAN", "BOOL"):
        return "bool"
    return None


def _element_type(type_name: str) -> str:
    return re.sub(r"\[\d*\]$", "", type_name.strip())


def source_sql(value: Any, option: str, where: str) -> str:
    """The SELECT of a feature source given as a table name or a quoted query."""
    if not isinstance(value, str) or not value.strip():
        raise OptionError(f"{where}: option {option} must be a table name or a quoted SELECT, got {value!r}")
    if _QUERY_START.match(value):
        return value.strip().rstrip(";")
    if not _TABLE_NAME.match(value):
        raise OptionError(
            f"{where}: option {option} = {value!r} is neither a table name nor a query "
            f"(quote a query: {option} = 'SELECT id, ... FROM ...')")
    return f"SELECT * FROM {value.strip()}"


def _id_column(columns: dict[str, str], id_col: str, id_type: str, option: str, where: str) -> str:
    col = find_column(columns, id_col)
    if col is None:
        raise ColumnError(
            f"{where}: the {option} source has no column {id_col!r} (the model's id column, which "
            f"names whose features a row holds); its columns are: {', '.join(columns)}")
    have, want = type_class(columns[col]), type_class(id_type)
    same = columns[col].upper() == id_type.upper() or (have == want and have in ("int", "text"))
    if not same:
        raise ColumnError(
            f"{where}: column {col!r} of the {option} source is {columns[col]} but the model's "
            f"{id_col} is {id_type}; cast it (CAST({col} AS {id_type}) AS {id_col})")
    return col


def _layout(columns: dict[str, str], id_column: str) -> str:
    rest = [c.lower() for c in columns if c != id_column]
    return "long" if rest in (["feature"], ["feature", "value"]) else "wide"


def _column_specs(duck: duckdb.DuckDBPyConnection, src: str, columns: dict[str, str], id_column: str,
                  layout: str, bucket_numeric: int | None, option: str, where: str) -> list[dict[str, Any]]:
    """Per source column: its kind and, for numbers, the training range or bucket edges."""
    if layout == "long":
        names = [c for c in columns if c != id_column]
        value = names[1] if len(names) > 1 else None
        vclass = type_class(columns[value]) if value else None
        if value and (vclass is None or vclass == "list"):
            raise ColumnError(f"{where}: column {value!r} of the {option} source has unsupported type "
                              f"{columns[value]}; a long-format value must be a number or text")
        kind = "weight" if vclass in ("int", "float") else "categorical"
        return [{"name": names[0], "value": value, "kind": kind, "type": columns[names[0]]}]
    specs: list[dict[str, Any]] = []
    for name, type_name in columns.items():
        if name == id_column:
            continue
        cls = type_class(type_name)
        if cls == "list" and type_class(_element_type(type_name)) not in ("int", "float", "text", "bool"):
            cls = None
        if cls is None:
            raise ColumnError(
                f"{where}: column {name!r} of the {option} source has unsupported type {type_name}; "
                "feature columns must be text, numbers, booleans or lists of those "
                f"(cast it in the query, e.g. CAST({name} AS VARCHAR) or year({name}))")
        kind = {"int": "numeric", "float": "numeric", "text": "categorical", "bool": "categorical",
                "list": "list"}[cls]
        if kind == "numeric" and bucket_numeric:
            kind = "bucket"
        specs.append({"name": name, "kind": kind, "type": type_name})
    # One pass of statistics for every column: '|' presence, numeric ranges, quantiles.
    stats = []
    for s in specs:
        c = quote_ident(s["name"])
        if s["kind"] == "categorical":
            stats.append(f"coalesce(bool_or(contains(CAST({c} AS VARCHAR), '|')), false)")
        elif s["kind"] in ("numeric", "bucket"):
            x = f"CAST({c} AS DOUBLE)"
            ok = f"FILTER (WHERE isfinite({x}))"
            probs = [i / bucket_numeric for i in range(1, bucket_numeric)] if s["kind"] == "bucket" else []
            quant = f"quantile_cont({x}, {probs}) {ok}" if probs else "NULL"
            stats.append(f"[min({x}) {ok}, max({x}) {ok}], {quant}")
        else:
            stats.append("NULL")
    if specs:
        row = duck.execute(f"SELECT {', '.join(stats)} FROM {src}").fetchone()
        pos = 0
        for s in specs:
            if s["kind"] == "categorical":
                if row[pos]:
                    s["kind"] = "multi"
                pos += 1
            elif s["kind"] in ("numeric", "bucket"):
                lo, hi = row[pos] if row[pos] is not None else (None, None)
                s["lo"], s["hi"] = lo, hi
                if s["kind"] == "bucket" and lo is not None:
                    inner = sorted({float(q) for q in (row[pos + 1] or []) if lo < q < hi})
                    s["edges"] = [lo, *inner, hi]
                pos += 2
            else:
                pos += 1
    return specs


def _bucket_names(name: str, edges: list[float]) -> list[str]:
    last = len(edges) - 2
    return [f"{name}=[{edges[b]:g},{edges[b + 1]:g}{']' if b == last else ')'}" for b in range(last + 1)]


def _rows_sql(src: str, specs: list[dict[str, Any]], layout: str) -> str:
    """SELECT id, col_no, feature, value: one row per (id, feature), zero weights dropped."""
    parts = []
    if layout == "long":
        s = specs[0]
        f = f"CAST({quote_ident(s['name'])} AS VARCHAR)"
        if s["value"] is None:
            parts.append(f"SELECT __id AS id, 0 AS col_no, {f} AS feature, 1.0::DOUBLE AS value FROM {src} "
                         f"WHERE {f} IS NOT NULL")
        elif s["kind"] == "weight":
            v = f"CAST({quote_ident(s['value'])} AS DOUBLE)"
            parts.append(f"SELECT __id, 0, {f}, {v} FROM {src} WHERE {f} IS NOT NULL AND isfinite({v})")
        else:
            v = f"CAST({quote_ident(s['value'])} AS VARCHAR)"
            parts.append(f"SELECT __id, 0, {f} || '=' || {v}, 1.0::DOUBLE FROM {src} "
                         f"WHERE {f} IS NOT NULL AND {v} IS NOT NULL")
    for j, s in enumerate(specs if layout == "wide" else []):
        # "label" is the model's spelling of the column, when a query-time source spells it otherwise.
        label = s.get("label", s["name"])
        c, prefix = quote_ident(s["name"]), _lit(label + "=")
        if s["kind"] in ("categorical", "multi"):
            parts.append(
                f"SELECT __id, {j}, {prefix} || trim(x), 1.0::DOUBLE FROM (SELECT __id, "
                f"unnest(string_split(CAST({c} AS VARCHAR), '|')) AS x FROM {src} WHERE {c} IS NOT NULL) "
                "WHERE trim(x) <> ''")
        elif s["kind"] == "list":
            parts.append(
                f"SELECT __id, {j}, {prefix} || trim(CAST(x AS VARCHAR)), 1.0::DOUBLE FROM (SELECT __id, "
                f"unnest({c}) AS x FROM {src} WHERE {c} IS NOT NULL) WHERE x IS NOT NULL "
                "AND trim(CAST(x AS VARCHAR)) <> ''")
        elif s.get("lo") is None:
            continue  # every value NULL at training: the column has no feature
        elif s["kind"] == "numeric":
            x, lo, hi = f"CAST({c} AS DOUBLE)", float(s["lo"]), float(s["hi"])
            # A constant column cannot be scaled: it is one feature every row has.
            scaled = f"least(greatest(({x} - {lo!r}) / {hi - lo!r}, 0.0), 1.0)" if hi > lo else "1.0::DOUBLE"
            parts.append(f"SELECT __id, {j}, {_lit(label)}, {scaled} FROM {src} WHERE isfinite({x})")
        else:  # bucket
            x, edges = f"CAST({c} AS DOUBLE)", [float(e) for e in s["edges"]]
            n_buckets = len(edges) - 1
            inner = edges[1:-1]
            bucket = " + ".join(["1", *(f"({x} >= {e!r})::INTEGER" for e in inner)])
            names = "[" + ", ".join(_lit(n) for n in _bucket_names(label, edges)) + "]"
            parts.append(f"SELECT __id, {j}, {names}[least({bucket}, {n_buckets})], 1.0::DOUBLE "
                         f"FROM {src} WHERE isfinite({x})")
    if not parts:
        return "SELECT NULL AS id, 0 AS col_no, ''::VARCHAR AS feature, 0.0::DOUBLE AS value WHERE false"
    union = " UNION ALL ".join(parts)
    return (f"SELECT id, feature, min(col_no) AS col_no, max(value) AS value FROM "
            f"(SELECT * FROM ({union}) AS u(id, col_no, feature, value)) "
            "GROUP BY id, feature HAVING max(value) <> 0")


def _normalise(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to sum to 1 (by absolute weight), as LightFM's Dataset does."""
    sums = np.asarray(abs(matrix).sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ matrix, dtype=np.float32)


class _Temp:
    """Temp tables and registered views with unique names, dropped on exit."""

    def __init__(self, duck: duckdb.DuckDBPyConnection):
        self.duck, self.tables, self.views = duck, [], []
        self.tag = uuid.uuid4().hex[:12]

    def name(self, what: str) -> str:
        return f"__sqlrec_feat_{what}_{self.tag}"

    def table(self, what: str, sql: str) -> str:
        name = self.name(what)
        self.duck.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        self.tables.append(name)
        return name

    def register(self, what: str, table: pa.Table) -> str:
        name = self.name(what)
        self.duck.register(name, table)
        self.views.append(name)
        return name

    def __enter__(self) -> "_Temp":
        return self

    def __exit__(self, *exc: Any) -> None:
        for name in self.tables:
            try:
                self.duck.execute(f"DROP TABLE IF EXISTS {name}")
            except duckdb.Error:
                pass
        for name in self.views:
            try:
                self.duck.unregister(name)
            except duckdb.Error:
                pass


def _load_source(tmp: _Temp, sql: str, id_column: str, id_type: str, option: str, where: str,
                 database: str | None) -> str:
    try:
        with in_database(tmp.duck, database, where):
            tmp.duck.execute(
                f"CREATE TEMP TABLE {tmp.name('src')} AS SELECT CAST({quote_ident(id_column)} AS {id_type}) "
                f"AS __id, * FROM ({sql}) WHERE {quote_ident(id_column)} IS NOT NULL")
    except duckdb.Error as exc:
        raise wrap_duckdb(exc, f"{where}: the {option} query failed") from exc
    tmp.tables.append(tmp.name("src"))
    return tmp.name("src")


def build(duck: duckdb.DuckDBPyConnection, value: Any, *, side: str, id_col: str, id_type: str,
          ids: pa.Array, identity: bool, bucket_numeric: int | None, where: str,
          database: str | None = None) -> FeatureSet:
    """Features of one side at training time, aligned to `ids` (the interaction id map) plus any
    ids that only the feature source has (appended, ordered by id)."""
    option = f"{side}_features"
    sql = source_sql(value, option, where)
    columns = query_columns(duck, sql, where, database, option)
    id_column = _id_column(columns, id_col, id_type, option, where)
    layout = _layout(columns, id_column)
    with _Temp(duck) as tmp:
        src = _load_source(tmp, sql, id_column, id_type, option, where, database)
        n_rows = duck.execute(f"SELECT count(*) FROM {src}").fetchone()[0]
        if n_rows == 0:
            raise TrainingDataError(f"{where}: the {option} source returned no rows (with a non-NULL {id_column})")
        specs = _column_specs(duck, src, columns, id_column, layout, bucket_numeric, option, where)
        rows = tmp.table("rows", _rows_sql(src, specs, layout))
        known = tmp.register("ids", pa.table({"idx": pa.array(np.arange(len(ids), dtype=np.int32)), "id": ids}))
        idmap = tmp.table("map", (
            f"SELECT CAST(id AS {id_type}) AS id, idx FROM {known} "
            f"UNION ALL SELECT id, ({len(ids)} + row_number() OVER (ORDER BY id) - 1)::INTEGER FROM "
            f"(SELECT DISTINCT __id AS id FROM {src} WHERE __id NOT IN (SELECT CAST(id AS {id_type}) FROM {known}))"))
        vocab = tmp.table("vocab", (
            "SELECT feature, min(col_no) AS col_no, (row_number() OVER (ORDER BY min(col_no), feature) - 1)::INTEGER AS j "
            f"FROM {rows} GROUP BY feature"))
        names = duck.execute(f"SELECT feature, col_no FROM {vocab} ORDER BY j").fetchall()
        new_ids = arrow(duck, f"SELECT id FROM {idmap} WHERE idx >= {len(ids)} ORDER BY idx"
                        ).column(0).combine_chunks()
        entries = duck.execute(
            f"SELECT m.idx, v.j, r.value FROM {rows} r JOIN {idmap} m ON r.id = m.id "
            f"JOIN {vocab} v ON r.feature = v.feature").fetchnumpy()

    n_entities, n_meta = len(ids) + len(new_ids), len(names)
    n_identity = n_entities if identity else 0
    meta = sp.csr_matrix(
        (np.asarray(entries["value"], np.float32), (np.asarray(entries["idx"], np.int64),
                                                      np.asarray(entries["j"], np.int64))),
        shape=(n_entities, n_meta))
    if identity:
        # Only ids with interactions keep an identity weight (see the module docstring).
        diag = np.zeros(n_entities, np.float32)
        diag[: len(ids)] = 1.0
        matrix = sp.hstack([sp.diags(diag), meta], format="csr")
    else:
        matrix = meta.tocsr()
    matrix = _normalise(matrix)
    has = meta.tocsc()
    kinds = [specs[c]["kind"] for _, c in names]
    spec = {
        "source": value, "sql": sql, "database": database, "id_column": id_column, "layout": layout,
        "identity": bool(identity), "n_identity": n_identity, "bucket_numeric": bucket_numeric,
        "columns": specs,
        "names": [n for n, _ in names], "kinds": kinds,
        "n_entities": np.diff(has.indptr).astype(int).tolist(),
        "n_source_rows": int(n_rows), "n_feature_only": len(new_ids),
        "n_without_features": int((meta.getnnz(axis=1) == 0).sum()),
    }
    return FeatureSet(side=side, spec=spec, matrix=matrix, new_ids=new_ids)


def rows_for(duck: duckdb.DuckDBPyConnection, spec: dict[str, Any], value: Any, *, option: str, id_col: str,
             id_type: str, wanted: pa.Array | None, where: str,
             database: str | None = None) -> tuple[pa.Array, sp.csr_matrix]:
    """Metadata feature rows (no identity, each row summing to 1) of the ids in a source, mapped
    through a trained model's spec; features the model does not know are dropped.

    wanted: restrict to these ids (same order, zero rows for ids without features);
    None: every id in the source, ordered by id.
    """
    sql = source_sql(value, option, where)
    columns = query_columns(duck, sql, where, database, option)
    id_column = _id_column(columns, id_col, id_type, option, where)
    specs = spec["columns"]
    if spec["layout"] == "long":
        if _layout(columns, id_column) != "long":
            raise ColumnError(f"{where}: the model's {option} are in long format (id, feature[, value]); "
                              f"the source's columns are: {', '.join(columns)}")
        given = {c.lower(): c for c in columns if c != id_column}
        specs = [dict(specs[0], name=given["feature"], value=given.get("value") if specs[0]["value"] else None)]
    else:
        by_lower = {s["name"].lower(): s for s in specs}
        extra = [c for c in columns if c != id_column and c.lower() not in by_lower]
        if extra:
            raise ColumnError(
                f"{where}: column {extra[0]!r} of the {option} source is not a feature column of the model; "
                f"its {option} columns are: {', '.join(s['name'] for s in specs) or '(none)'}")
        present = {c.lower(): c for c in columns if c != id_column}
        # Columns the source leaves out simply give no feature; names follow the model's spelling.
        specs = [dict(s, name=present[s["name"].lower()], label=s["name"])
                 for s in specs if s["name"].lower() in present]
        for s in specs:
            if s["kind"] == "list" and type_class(columns[s["name"]]) != "list":
                raise ColumnError(f"{where}: column {s['name']!r} of the {option} source must be a list "
                                  f"(as at training), it is {columns[s['name']]}")
            if s["kind"] in ("numeric", "bucket") and type_class(columns[s["name"]]) not in ("int", "float"):
                raise ColumnError(f"{where}: column {s['name']!r} of the {option} source must be a number "
                                  f"(as at training), it is {columns[s['name']]}")
    with _Temp(duck) as tmp:
        src = _load_source(tmp, sql, id_column, id_type, option, where, database)
        if wanted is not None:
            keys = tmp.register("want", pa.table({"pos": pa.array(np.arange(len(wanted), dtype=np.int64)),
                                                  "id": wanted}))
            ids_sql = f"SELECT CAST(id AS {id_type}) AS id, pos FROM {keys}"
        else:
            ids_sql = f"SELECT id, (row_number() OVER (ORDER BY id) - 1) AS pos FROM (SELECT DISTINCT __id AS id FROM {src})"
        idmap = tmp.table("map", ids_sql)
        vocab = tmp.register("vocab", pa.table({
            "feature": pa.array(spec["names"], pa.string()),
            "j": pa.array(np.arange(len(spec["names"]), dtype=np.int64))}))
        rows_sql = _rows_sql(src, specs, spec["layout"])
        try:
            ids = arrow(duck, f"SELECT id FROM {idmap} ORDER BY pos").column(0).combine_chunks()
            entries = duck.execute(
                f"SELECT m.pos, v.j, r.value FROM ({rows_sql}) r JOIN {idmap} m ON r.id = m.id "
                f"JOIN {vocab} v ON r.feature = v.feature").fetchnumpy()
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, f"{where}: reading the {option} source failed") from exc
    matrix = sp.csr_matrix(
        (np.asarray(entries["value"], np.float32), (np.asarray(entries["pos"], np.int64),
                                                      np.asarray(entries["j"], np.int64))),
        shape=(len(ids), len(spec["names"])))
    return ids, _normalise(matrix)


def attach(duck: duckdb.DuckDBPyConnection, data: Any, id_columns: dict[str, str], options: dict[str, Any],
           where: str) -> tuple[Any, dict[str, dict[str, Any]]]:
    """TrainingData with the feature matrices of the sides that have a source (ids found only in
    a source appended to the id maps), and the JSON specs stored in the model's info.

    Sources run in the current database, whatever the training query's FROM db: qualify a
    table (db.table) to read it from an attached one.
    """
    import dataclasses

    specs: dict[str, dict[str, Any]] = {}
    changes: dict[str, Any] = {}
    for side in ("user", "item"):
        value = options.get(f"{side}_features")
        if value is None:
            if options.get(f"{side}_identity") is False:
                raise OptionError(f"{where}: option {side}_identity = false needs option {side}_features "
                                  f"(without features a {side} has nothing but its identity)")
            continue
        ids = data.users if side == "user" else data.items
        fs = build(duck, value, side=side, id_col=id_columns[side],
                   id_type=data.user_type if side == "user" else data.item_type, ids=ids,
                   identity=options.get(f"{side}_identity", True) is not False,
                   bucket_numeric=options.get("bucket_numeric"), where=where)
        if len(fs.new_ids):
            changes[f"{side}s"] = pa.concat_arrays([ids, fs.new_ids.cast(ids.type)])
        changes[f"{side}_features"] = fs.matrix
        specs[side] = fs.spec
    if options.get("bucket_numeric") is not None and not specs:
        raise OptionError(f"{where}: option bucket_numeric needs option item_features or user_features")
    return (dataclasses.replace(data, **changes) if changes else data), specs


# --- describable attributes (DESCRIBE m.features, SELECT * FROM m.feature_embeddings) ---------


def _sides(model: Any) -> list[tuple[str, int, dict[str, Any] | None]]:
    specs = model.info.get("features") or {}
    return [(side, model.info[f"n_{side}s"], specs.get(side)) for side in ("user", "item")]


def describe_table(model: Any) -> pa.Table:
    """One row per feature: side, feature, kind, n_entities (users/items having it). Ids known
    only from a feature source are counted in DESCRIBE m.info (n_items_only_in_features)."""
    rows: list[tuple[Any, ...]] = []
    for side, n, spec in _sides(model):
        if spec is None:
            rows.append((side, "identity", "identity", n))
            continue
        if spec["identity"]:
            rows.append((side, "identity", "identity", n - spec["n_feature_only"]))
        rows += zip([side] * len(spec["names"]), spec["names"], spec["kinds"], spec["n_entities"])
    cols = list(zip(*rows)) if rows else [[], [], [], []]
    return pa.table({
        "side": pa.array(cols[0], pa.string()), "feature": pa.array(cols[1], pa.string()),
        "kind": pa.array(cols[2], pa.string()), "n_entities": pa.array(cols[3], pa.int64()),
    })


def embeddings_table(model: Any) -> pa.Table:
    """side, feature, kind, bias, vector FLOAT[] of every metadata feature (identity features are
    the users' and items' own vectors: see m.user_embeddings / m.item_embeddings)."""
    parts = []
    for side, _, spec in _sides(model):
        if spec is None or not hasattr(model.handler, "feature_factors"):
            continue
        emb, bias = model.handler.feature_factors(side)
        emb = np.ascontiguousarray(emb[spec["n_identity"]:], np.float32)
        bias = np.asarray(bias[spec["n_identity"]:], np.float32)
        n, d = emb.shape
        parts.append(pa.table({
            "side": pa.array([side] * n, pa.string()),
            "feature": pa.array(spec["names"], pa.string()),
            "kind": pa.array(spec["kinds"], pa.string()),
            "bias": pa.array(bias),
            "vector": pa.ListArray.from_arrays(pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32)),
                                               pa.array(emb.reshape(-1))),
        }))
    if not parts:
        return pa.table({"side": pa.array([], pa.string()), "feature": pa.array([], pa.string()),
                         "kind": pa.array([], pa.string()), "bias": pa.array([], pa.float32()),
                         "vector": pa.array([], pa.list_(pa.float32()))})
    return pa.concat_tables(parts)


def info_rows(model: Any) -> list[tuple[str, Any]]:
    """DESCRIBE m.info lines of a hybrid model: its sources and the ids only they know."""
    rows: list[tuple[str, Any]] = []
    for side, _, spec in _sides(model):
        if spec is not None:
            rows += [(f"{side}_features", spec["source"]), (f"n_{side}_features", len(spec["names"])),
                     (f"n_{side}s_only_in_features", spec["n_feature_only"]),
                     (f"n_{side}s_without_features", spec["n_without_features"])]
    return rows
