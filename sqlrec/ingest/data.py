"""Training data: SQL -> dense id maps + interaction arrays, with DuckDB doing the mapping.

The training query runs once into a temp table; DuckDB assigns dense indices to distinct ids
(ordered by id, so the same data always gives the same matrix) and aggregates duplicates.
Python only receives flat numpy arrays, never loops over rows.

Duplicate (user, item) rows: without `rating` they add up (count, or the sum of `weight`);
with `rating` the latest row by `timestamp` wins, or the highest rating when there is no
timestamp.

Every function this SQL calls is DuckDB's own (`SYSTEM`, operators too: `a - 1` is the function
"-", count(*) is count_star()): a database file may carry macros of those names, and the
unqualified name would run the file's macro first. The training query itself is the user's.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from sqlrec.lazy import sparse as sp

from sqlrec.engines.training_data import TrainingData
from sqlrec.errors import ColumnError, OptionError, TrainingDataError
from sqlrec.store.session import SYSTEM, Session
from sqlrec.sql.quoting import quote_ident
from sqlrec.sql.types import check_type, is_numeric, type_class

# Binary floating-point types: never accepted as ids (DECIMAL is exact and may be one).
BINARY_FLOATS = frozenset({"FLOAT", "DOUBLE", "REAL", "FLOAT4", "FLOAT8"})


def _base_type(type_name: str) -> str:
    return type_name.strip().upper().split("(")[0].strip()


@dataclass
class Columns:
    user: str
    item: str
    rating: str | None = None
    weight: str | None = None
    timestamp: str | None = None


def find_column(columns: Iterable[str], name: str) -> str | None:
    """The query's spelling of column `name`: exact first, else case-insensitive, as DuckDB matches."""
    columns = list(columns)
    if name in columns:
        return name
    return next((c for c in columns if c.lower() == name.lower()), None)


def resolve_column(columns: dict[str, str], name: str, option: str, where: str) -> str:
    """The query's spelling of a column named by an option (matched case-insensitively, as DuckDB)."""
    found = find_column(columns, name)
    if found is not None:
        return found
    raise ColumnError(
        f"{where}: column {name!r} (option {option}) is not in the training query; "
        f"its columns are: {', '.join(columns)}"
    )



def _epoch_us(col: str, type_name: str) -> str:
    if type_class(type_name) == "time":
        return f"{SYSTEM}.epoch_us(CAST({col} AS TIMESTAMP))"
    return f"TRY_CAST({col} AS BIGINT)"


def _check_types(types: dict[str, str], cols: Columns, where: str) -> None:
    for option, col in (("user_id", cols.user), ("item_id", cols.item)):
        if check_type(types[col]) is None:
            raise ColumnError(f"{where}: column {col!r} (option {option}) has type {types[col]}, which cannot be "
                              f"a model id; cast it in the query (CAST({col} AS VARCHAR) AS {col})")
        if _base_type(types[col]) in BINARY_FLOATS:
            # A float column is a measurement (a rating, a price), never an identifier: ids compared
            # for equality after rounding would silently merge or split users and items.
            raise ColumnError(f"{where}: column {col!r} (option {option}{' or PREDICT' * (option == 'item_id')}) "
                              f"has type {types[col]}, a measurement rather than an id; name the {option[:4]} "
                              f"id column (a rating or weight column goes in option rating or weight)")
    for option, col in (("rating", cols.rating), ("weight", cols.weight)):
        if col is not None and not is_numeric(types[col]):
            raise ColumnError(f"{where}: column {col!r} (option {option}) must be numeric, it is {types[col]}")
    if cols.timestamp is not None and type_class(types[cols.timestamp]) not in ("int", "float", "time"):
        raise ColumnError(f"{where}: column {cols.timestamp!r} (option timestamp) must be a timestamp, date or "
                          f"number, it is {types[cols.timestamp].upper()}")


def _value_checks(cols: Columns, types: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """(option, column, SQL counting the bad values, what a good value is) for every value column."""
    checks = []
    for option, col in (("rating", cols.rating), ("weight", cols.weight)):
        if col is not None:
            c = quote_ident(col)
            checks.append((option, col, f"{SYSTEM}.count_star() FILTER ({c} IS NOT NULL AND NOT {SYSTEM}.ifnull({SYSTEM}.isfinite("
                                        f"TRY_CAST({c} AS FLOAT)), false))", "a finite 32-bit float"))
    if cols.timestamp is not None:
        c = quote_ident(cols.timestamp)
        checks.append(("timestamp", cols.timestamp,
                       f"{SYSTEM}.count_star() FILTER ({c} IS NOT NULL AND {_epoch_us(c, types[cols.timestamp])} IS NULL)",
                       "a finite time (or a 64-bit integer)"))
    return checks


def _profile(session: Session, src: str, cols: Columns, types: dict[str, str], where: str) -> int:
    """Row count, after refusing NULL ids and values that cannot be used (out of range, NaN)."""
    u, i = quote_ident(cols.user), quote_ident(cols.item)
    checks = _value_checks(cols, types)
    row = session.one(f"SELECT {SYSTEM}.count_star(), {SYSTEM}.count_star() FILTER ({u} IS NULL), "
                      f"{SYSTEM}.count_star() FILTER ({i} IS NULL)"
                      + "".join(f", {sql}" for _, _, sql, _ in checks) + f" FROM {src}", where=where)
    n_rows, null_u, null_i = row[:3]
    if n_rows == 0:
        raise TrainingDataError(f"{where}: the training query returned no rows")
    for col, nulls in ((cols.user, null_u), (cols.item, null_i)):
        if nulls:
            raise TrainingDataError(f"{where}: column {col!r} is NULL in {nulls} of {n_rows} rows; "
                                    f"filter them out (WHERE {col} IS NOT NULL) or fill them")
    for (option, col, _, good), bad in zip(checks, row[3:]):
        if bad:
            raise TrainingDataError(f"{where}: column {col!r} (option {option}) has {bad} values that are not "
                                    f"{good} (out of range, NaN or infinite); filter or cast them in the query")
    return int(n_rows)


def _aggregates(cols: Columns, types: dict[str, str]) -> list[str]:
    """Per (user, item) pair: weight, rating, timestamp (see the module docstring for the rules)."""
    r = quote_ident(cols.rating) if cols.rating else None
    w = f"CAST({quote_ident(cols.weight)} AS FLOAT)" if cols.weight else None
    t = _epoch_us(quote_ident(cols.timestamp), types[cols.timestamp]) if cols.timestamp else None
    if r is None:
        agg = [f"{SYSTEM}.sum({w})::FLOAT AS weight" if w else f"{SYSTEM}.count_star()::FLOAT AS weight",
               "NULL::FLOAT AS rating"]
        return agg + [f"{SYSTEM}.max({t}) AS ts" if t else "NULL::BIGINT AS ts"]
    if t is not None:
        return [f"{SYSTEM}.arg_max({w or '1'}, {t})::FLOAT AS weight",
                f"{SYSTEM}.arg_max(CAST({r} AS FLOAT), {t}) AS rating", f"{SYSTEM}.max({t}) AS ts"]
    return [f"{SYSTEM}.max({w or '1'})::FLOAT AS weight", f"{SYSTEM}.max(CAST({r} AS FLOAT)) AS rating",
            "NULL::BIGINT AS ts"]


def load(session: Session, sql: str, cols: Columns, threshold: float | None, where: str,
         database: str | None = None, midpoint_default: bool = False) -> TrainingData:
    """Run the training query (inside `database` when given, as MindsDB's FROM db (SELECT ...)).
    `midpoint_default`: a rating column without threshold gets the midpoint threshold (see
    rating_midpoint); TrainingData.threshold says which threshold applied."""
    with ExitStack() as stack:
        src = stack.enter_context(session.temp_table("src", sql, where=f"{where}: the training query failed",
                                                     database=database))
        types = session.columns(f"SELECT * FROM {src}", where=where)
        _check_types(types, cols, where)
        n_rows = _profile(session, src, cols, types, where)
        u, i = quote_ident(cols.user), quote_ident(cols.item)
        umap, imap = (stack.enter_context(session.temp_table(
            what, f"SELECT id, {SYSTEM}.subtract({SYSTEM}.row_number() OVER (ORDER BY id), 1)::INTEGER AS idx "
                  f"FROM (SELECT DISTINCT {col} AS id FROM {src})", where=where)) for what, col in (("u", u), ("i", i)))
        rating_filter = f"WHERE {quote_ident(cols.rating)} IS NOT NULL" if cols.rating else ""
        pairs = session.numpy(
            f"SELECT um.idx AS row, im.idx AS col, {', '.join(_aggregates(cols, types))} FROM {src} s "
            f"JOIN {umap} um ON s.{u} = um.id JOIN {imap} im ON s.{i} = im.id {rating_filter} "
            f"GROUP BY ALL ORDER BY row, col", where=where)
        users, items = (session.arrow(f"SELECT id FROM {m} ORDER BY idx", where=where).column(0).combine_chunks()
                        for m in (umap, imap))
    rows = np.asarray(pairs["row"], np.int32)
    if len(rows) == 0:
        raise TrainingDataError(f"{where}: every row has a NULL rating (column {cols.rating!r})")
    rating = None if cols.rating is None else _dense(pairs["rating"], np.float32)
    if rating is not None and threshold is None and midpoint_default:
        threshold = rating_midpoint(rating)
    positive = np.ones(len(rows), bool) if threshold is None or rating is None else rating >= threshold
    if not positive.any():
        raise TrainingDataError(
            f"{where}: no rows left after threshold = {threshold:g} "
            f"(ratings range {float(rating.min()):g} to {float(rating.max()):g}); lower the threshold")
    return TrainingData(
        users=users, items=items, user_type=types[cols.user], item_type=types[cols.item], rows=rows,
        cols=np.asarray(pairs["col"], np.int32), weight=_dense(pairs["weight"], np.float32), rating=rating,
        timestamp=None if cols.timestamp is None else _dense(pairs["ts"], np.int64), positive=positive,
        n_source_rows=n_rows, threshold=None if rating is None else threshold)


def rating_midpoint(rating: np.ndarray) -> float:
    """The threshold of a rating column given without one: the middle of the ratings' range
    ((0.5 + 5) / 2 = 2.75 on MovieLens, so 3 stars and up are positives; 5.5 on a 1-10 scale).
    Measured against ratings as weights and ratings ignored (bench/rating_semantics.py): the best
    precision@10 on lightfm and als alike. Rounded to 4 digits so that it reads as written."""
    return round((float(rating.min()) + float(rating.max())) / 2, 4)


def _dense(values: Any, dtype: Any) -> np.ndarray:
    if np.ma.isMaskedArray(values):
        values = values.filled(0)
    return np.asarray(values, dtype)
