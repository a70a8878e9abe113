"""Feature sources as SQL: the source's SELECT, its id column and layout, the kind of every
column (with one statistics pass for '|' lists, numeric ranges and bucket edges), and the SQL
that turns a source into (id, feature, value) rows. No Python loop ever touches a data row."""

from __future__ import annotations

import re
from typing import Any

from sqlrec.ingest.data import find_column
from sqlrec.errors import ColumnError, OptionError
from sqlrec.store.session import SYSTEM, Session
from sqlrec.sql import parse_select
from sqlrec.sql.quoting import quote_ident, quote_literal
from sqlrec.sql.types import element_type, is_numeric, type_class

FEATURE_KINDS = ("identity", "categorical", "multi", "list", "numeric", "bucket", "weight")

_QUERY_START = re.compile(r"^\s*(\(|select\b|with\b|from\b|values\b|table\b|pivot\b|unpivot\b)", re.I)
_TABLE_NAME = re.compile(r'^\s*("[^"]+"|[A-Za-z_][\w$]*)(\s*\.\s*("[^"]+"|[A-Za-z_][\w$]*)){0,2}\s*$')
# The kind of a wide-format column by its type class; a class not listed here (temporal,
# struct, map, blob, ...) is not a feature column.
_WIDE_KINDS = {"int": "numeric", "float": "numeric", "text": "categorical", "bool": "categorical",
               "list": "list"}
_SCALAR_CLASSES = ("int", "float", "text", "bool")


def source_query(value: Any, option: str, where: str) -> str:
    """The SELECT of a feature source given as a table name or a quoted query."""
    if not isinstance(value, str) or not value.strip():
        raise OptionError(f"{where}: option {option} must be a table name or a quoted SELECT, got {value!r}")
    if _QUERY_START.match(value):
        return parse_select(value, f"{where}: option {option}")
    if not _TABLE_NAME.match(value):
        raise OptionError(
            f"{where}: option {option} = {value!r} is neither a table name nor a query "
            f"(quote a query: {option} = 'SELECT id, ... FROM ...')")
    return f"SELECT * FROM {value.strip()}"


def id_column(columns: dict[str, str], id_col: str, id_type: str, option: str, where: str) -> str:
    """The source's spelling of the model's id column, checked against the model's id type."""
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


def layout(columns: dict[str, str], id_col: str) -> str:
    """'long' for (id, feature[, value]) sources, else 'wide'."""
    rest = [c.lower() for c in columns if c != id_col]
    return "long" if rest in (["feature"], ["feature", "value"]) else "wide"


def _long_spec(columns: dict[str, str], id_col: str, option: str, where: str) -> dict[str, Any]:
    names = [c for c in columns if c != id_col]
    value = names[1] if len(names) > 1 else None
    vclass = type_class(columns[value]) if value else None
    if value and vclass not in _SCALAR_CLASSES:
        raise ColumnError(f"{where}: column {value!r} of the {option} source has unsupported type "
                          f"{columns[value]}; a long-format value must be a number or text")
    kind = "weight" if vclass in ("int", "float") else "categorical"
    return {"name": names[0], "value": value, "kind": kind, "type": columns[names[0]]}


def _wide_kind(name: str, type_name: str, bucket_numeric: int | None, option: str, where: str) -> str:
    cls = type_class(type_name)
    if cls == "list" and type_class(element_type(type_name)) not in _SCALAR_CLASSES:
        cls = None
    kind = _WIDE_KINDS.get(cls or "")
    if kind is None:
        raise ColumnError(
            f"{where}: column {name!r} of the {option} source has unsupported type {type_name}; "
            "feature columns must be text, numbers, booleans or lists of those "
            f"(cast it in the query, e.g. CAST({name} AS VARCHAR) or year({name}))")
    return "bucket" if kind == "numeric" and bucket_numeric else kind


def column_specs(session: Session, src: str, columns: dict[str, str], id_col: str, source_layout: str,
                 bucket_numeric: int | None, option: str, where: str) -> list[dict[str, Any]]:
    """Per source column: its kind and, for numbers, the training range or bucket edges."""
    if source_layout == "long":
        return [_long_spec(columns, id_col, option, where)]
    specs = [{"name": name, "kind": _wide_kind(name, type_name, bucket_numeric, option, where), "type": type_name}
             for name, type_name in columns.items() if name != id_col]
    if specs:
        _statistics(session, src, specs, bucket_numeric, f"{where}: the {option} statistics query failed")
    return specs


def _statistics(session: Session, src: str, specs: list[dict[str, Any]], bucket_numeric: int | None,
                where: str) -> None:
    """One pass of statistics for every column: '|' presence, numeric ranges, quantiles."""
    stats = []
    for s in specs:
        c = quote_ident(s["name"])
        if s["kind"] == "categorical":
            stats.append(f"{SYSTEM}.ifnull({SYSTEM}.bool_or({SYSTEM}.contains(CAST({c} AS VARCHAR), '|')), false)")
        elif s["kind"] in ("numeric", "bucket"):
            x = f"CAST({c} AS DOUBLE)"
            ok = f"FILTER (WHERE {SYSTEM}.isfinite({x}))"
            probs = [i / bucket_numeric for i in range(1, bucket_numeric)] if s["kind"] == "bucket" else []
            quant = f"{SYSTEM}.quantile_cont({x}, {_list(map(repr, probs))}) {ok}" if probs else "NULL"
            stats.append(f"{SYSTEM}.list_value({SYSTEM}.min({x}) {ok}, {SYSTEM}.max({x}) {ok}), {quant}")
        else:
            stats.append("NULL")
    row = session.one(f"SELECT {', '.join(stats)} FROM {src}", where=where)
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


def _list(elements: Any) -> str:
    """A list of SQL expressions, built by DuckDB's own list_value (`[...]` calls list_value, and the
    file may carry a macro of that name)."""
    return f"{SYSTEM}.list_value({', '.join(elements)})"


def bucket_names(name: str, edges: list[float]) -> list[str]:
    last = len(edges) - 2
    return [f"{name}=[{edges[b]:g},{edges[b + 1]:g}{']' if b == last else ')'}" for b in range(last + 1)]


def _long_rows(src: str, s: dict[str, Any]) -> str:
    f = f"CAST({quote_ident(s['name'])} AS VARCHAR)"
    if s["value"] is None:
        return (f"SELECT __id AS id, 0 AS col_no, {f} AS feature, 1.0::DOUBLE AS value FROM {src} "
                f"WHERE {f} IS NOT NULL")
    if s["kind"] == "weight":
        v = f"CAST({quote_ident(s['value'])} AS DOUBLE)"
        return f"SELECT __id, 0, {f}, {v} FROM {src} WHERE {f} IS NOT NULL AND {SYSTEM}.isfinite({v})"
    v = f"CAST({quote_ident(s['value'])} AS VARCHAR)"
    return (f"SELECT __id, 0, {SYSTEM}.concat({f}, '=', {v}), 1.0::DOUBLE FROM {src} "
            f"WHERE {f} IS NOT NULL AND {v} IS NOT NULL")


def _wide_rows(src: str, j: int, s: dict[str, Any]) -> str | None:
    """One column's (id, col_no, feature, value) rows; None when it has no feature."""
    # "label" is the model's spelling of the column, when a query-time source spells it otherwise.
    label = s.get("label", s["name"])
    c, prefix = quote_ident(s["name"]), quote_literal(label + "=")
    if s["kind"] in ("categorical", "multi"):
        return (f"SELECT __id, {j}, {SYSTEM}.concat({prefix}, {SYSTEM}.trim(x)), 1.0::DOUBLE FROM (SELECT __id, "
                f"unnest({SYSTEM}.string_split(CAST({c} AS VARCHAR), '|')) AS x FROM {src} WHERE {c} IS NOT NULL) "
                f"WHERE {SYSTEM}.trim(x) <> ''")
    if s["kind"] == "list":
        return (f"SELECT __id, {j}, {SYSTEM}.concat({prefix}, {SYSTEM}.trim(CAST(x AS VARCHAR))), 1.0::DOUBLE "
                f"FROM (SELECT __id, unnest({c}) AS x FROM {src} WHERE {c} IS NOT NULL) WHERE x IS NOT NULL "
                f"AND {SYSTEM}.trim(CAST(x AS VARCHAR)) <> ''")
    if s.get("lo") is None:
        return None  # every value NULL at training: the column has no feature
    x = f"CAST({c} AS DOUBLE)"
    if s["kind"] == "numeric":
        lo, hi = float(s["lo"]), float(s["hi"])
        # A constant column cannot be scaled: it is one feature every row has.
        scaled = (f"{SYSTEM}.least({SYSTEM}.greatest({SYSTEM}.divide({SYSTEM}.subtract({x}, {lo!r}), {hi - lo!r}), "
                  "0.0), 1.0)" if hi > lo else "1.0::DOUBLE")
        return f"SELECT __id, {j}, {quote_literal(label)}, {scaled} FROM {src} WHERE {SYSTEM}.isfinite({x})"
    edges = [float(e) for e in s["edges"]]  # bucket
    # 1 + the number of inner edges at or below x: list_sum of a list, as `+` is a function too.
    inner = [f"({x} >= {e!r})::INTEGER" for e in edges[1:-1]]
    bucket = f"{SYSTEM}.add(1, {SYSTEM}.list_sum({_list(inner)})::INTEGER)" if inner else "1"
    names = _list(quote_literal(n) for n in bucket_names(label, edges))
    return (f"SELECT __id, {j}, {SYSTEM}.list_extract({names}, {SYSTEM}.least({bucket}, {len(edges) - 1})), "
            f"1.0::DOUBLE FROM {src} WHERE {SYSTEM}.isfinite({x})")


def rows_sql(src: str, specs: list[dict[str, Any]], source_layout: str) -> str:
    """SELECT id, feature, col_no, value: one row per (id, feature), zero weights dropped."""
    if source_layout == "long":
        parts = [_long_rows(src, specs[0])]
    else:
        parts = [p for j, s in enumerate(specs) if (p := _wide_rows(src, j, s)) is not None]
    if not parts:
        return "SELECT NULL AS id, 0 AS col_no, ''::VARCHAR AS feature, 0.0::DOUBLE AS value WHERE false"
    union = " UNION ALL ".join(parts)
    return (f"SELECT id, feature, {SYSTEM}.min(col_no) AS col_no, {SYSTEM}.max(value) AS value FROM "
            f"(SELECT * FROM ({union}) AS u(id, col_no, feature, value)) "
            f"GROUP BY id, feature HAVING {SYSTEM}.max(value) <> 0")


def query_specs(spec: dict[str, Any], columns: dict[str, str], id_col: str, option: str,
                where: str) -> list[dict[str, Any]]:
    """A trained spec's column rules mapped onto a query-time source's columns (its spelling)."""
    specs = spec["columns"]
    if spec["layout"] == "long":
        if layout(columns, id_col) != "long":
            raise ColumnError(f"{where}: the model's {option} are in long format (id, feature[, value]); "
                              f"the source's columns are: {', '.join(columns)}")
        given = {c.lower(): c for c in columns if c != id_col}
        return [dict(specs[0], name=given["feature"], value=given.get("value") if specs[0]["value"] else None)]
    by_lower = {s["name"].lower(): s for s in specs}
    extra = [c for c in columns if c != id_col and c.lower() not in by_lower]
    if extra:
        raise ColumnError(
            f"{where}: column {extra[0]!r} of the {option} source is not a feature column of the model; "
            f"its {option} columns are: {', '.join(s['name'] for s in specs) or '(none)'}")
    present = {c.lower(): c for c in columns if c != id_col}
    # Columns the source leaves out simply give no feature; names follow the model's spelling.
    mapped = [dict(s, name=present[s["name"].lower()], label=s["name"])
              for s in specs if s["name"].lower() in present]
    for s in mapped:
        type_name = columns[s["name"]]
        if s["kind"] == "list" and type_class(type_name) != "list":
            raise ColumnError(f"{where}: column {s['name']!r} of the {option} source must be a list "
                              f"(as at training), it is {type_name}")
        if s["kind"] in ("numeric", "bucket") and not is_numeric(type_name):
            raise ColumnError(f"{where}: column {s['name']!r} of the {option} source must be a number "
                              f"(as at training), it is {type_name}")
    return mapped
