"""Training data: SQL -> dense id maps + interaction arrays, with DuckDB doing the mapping.

The training query runs once into a temp table; DuckDB assigns dense indices to distinct ids
(ordered by id, so the same data always gives the same matrix) and aggregates duplicates.
Python only receives flat numpy arrays, never loops over rows.

Duplicate (user, item) rows: without `rating` they add up (count, or the sum of `weight`);
with `rating` the latest row by `timestamp` wins, or the highest rating when there is no
timestamp.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from sqlrec.errors import ColumnError, OptionError, TrainingDataError
from sqlrec.store.session import Session
from sqlrec.sql.quoting import quote_ident
from sqlrec.sql.types import check_type, is_numeric, type_class

# Binary floating-point types: never accepted as ids (DECIMAL is exact and may be one).
BINARY_FLOATS = frozenset({"FLOAT", "DOUBLE", "REAL", "FLOAT4", "FLOAT8"})


def _base_type(type_name: str) -> str:
    return type_name.strip().upper().split("(")[0].strip()

if TYPE_CHECKING:  # data is imported by the handlers, which the model imports
    from sqlrec.models.model import Model


@dataclass
class Columns:
    user: str
    item: str
    rating: str | None = None
    weight: str | None = None
    timestamp: str | None = None


@dataclass
class TrainingData:
    users: pa.Array  # id of each user index
    items: pa.Array
    user_type: str  # DuckDB type name of the id columns
    item_type: str
    rows: np.ndarray  # int32 user index of each distinct (user, item) pair, sorted by (row, col)
    cols: np.ndarray  # int32
    weight: np.ndarray  # float32 repeats / summed weight / kept row's weight
    rating: np.ndarray | None  # float32 kept rating
    timestamp: np.ndarray | None  # int64 epoch microseconds of the kept / latest row
    positive: np.ndarray  # bool: rating >= threshold (all True without threshold)
    n_source_rows: int
    # Hybrid models (sqlrec.ingest.features): (n_users, n_user_features) / (n_items, n_item_features),
    # rows normalised; None = identity features only (plain collaborative filtering).
    user_features: sp.csr_matrix | None = None
    item_features: sp.csr_matrix | None = None
    threshold: float | None = None  # the rating threshold that made `positive` (given or the midpoint)

    def ids(self, side: str) -> pa.Array:
        return self.users if side == "user" else self.items

    def id_type(self, side: str) -> str:
        return self.user_type if side == "user" else self.item_type

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.users), len(self.items))

    def matrix(self, mask: np.ndarray | None = None, values: np.ndarray | None = None) -> sp.csr_matrix:
        """CSR users x items of the selected pairs (all pairs by default) with the given values."""
        rows, cols = self.rows, self.cols
        data = np.ones(len(rows), np.float32) if values is None else np.asarray(values)
        if mask is not None:
            rows, cols, data = rows[mask], cols[mask], data[mask]
        indptr = np.zeros(self.shape[0] + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=self.shape[0]), out=indptr[1:])
        return sp.csr_matrix((data, cols, indptr), shape=self.shape)

    def seen(self) -> sp.csr_matrix:
        """Every pair in the training query, below-threshold ratings included."""
        return self.matrix()


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
        return f"epoch_us(CAST({col} AS TIMESTAMP))"
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
            checks.append((option, col, f"count(*) FILTER ({c} IS NOT NULL AND NOT coalesce(isfinite("
                                        f"TRY_CAST({c} AS FLOAT)), false))", "a finite 32-bit float"))
    if cols.timestamp is not None:
        c = quote_ident(cols.timestamp)
        checks.append(("timestamp", cols.timestamp,
                       f"count(*) FILTER ({c} IS NOT NULL AND {_epoch_us(c, types[cols.timestamp])} IS NULL)",
                       "a finite time (or a 64-bit integer)"))
    return checks


def _profile(session: Session, src: str, cols: Columns, types: dict[str, str], where: str) -> int:
    """Row count, after refusing NULL ids and values that cannot be used (out of range, NaN)."""
    u, i = quote_ident(cols.user), quote_ident(cols.item)
    checks = _value_checks(cols, types)
    row = session.one(f"SELECT count(*), count(*) FILTER ({u} IS NULL), count(*) FILTER ({i} IS NULL)"
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
        agg = [f"sum({w})::FLOAT AS weight" if w else "count(*)::FLOAT AS weight", "NULL::FLOAT AS rating"]
        return agg + [f"max({t}) AS ts" if t else "NULL::BIGINT AS ts"]
    if t is not None:
        return [f"arg_max({w or '1'}, {t})::FLOAT AS weight", f"arg_max(CAST({r} AS FLOAT), {t}) AS rating",
                f"max({t}) AS ts"]
    return [f"max({w or '1'})::FLOAT AS weight", f"max(CAST({r} AS FLOAT)) AS rating", "NULL::BIGINT AS ts"]


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
            what, f"SELECT id, (row_number() OVER (ORDER BY id) - 1)::INTEGER AS idx "
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


# --- EVALUATE MODEL m FROM (test query) --------------------------------------------------------


def evaluation_pairs(session: Session, model: "Model", sql: str, database: str | None, threshold: float | None,
               where: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(user indices, item indices, counts) of a test query's positive rows whose ids the model
    knows; `threshold` (the statement's, else the model's) applies to the model's rating column."""
    columns = list(session.columns(sql, where=f"{where}: the test query failed", database=database))

    def column(name: str, what: str) -> str:
        found = find_column(columns, name)
        if found is None:
            raise ColumnError(f"{where}: the test query has no column {name!r} ({what}); "
                              f"its columns are: {', '.join(columns)}")
        return found

    ucol = column(model.user_col, "the model's user id")
    icol = column(model.item_col, "the model's item id")
    rating = model.info.get("rating_col")
    rcol = find_column(columns, rating) if rating else None
    given = threshold is not None
    threshold = threshold if given else model.options.get("threshold")
    if given and rcol is None:
        raise OptionError(f"{where}: option threshold needs the model's rating column {rating or '(none)'!r} "
                          f"in the test query; its columns are: {', '.join(columns)}")
    keep = (f"coalesce({quote_ident(rcol)} >= {float(threshold)!r}, false)"
            if rcol is not None and threshold is not None else "true")
    with session.in_database(database, where):
        got = session.arrow(f"SELECT {quote_ident(ucol)} AS u, {quote_ident(icol)} AS i, {keep} AS keep FROM ({sql})",
                            where=f"{where}: the test query failed")
    rows = got.filter(got.column("keep"))
    (_, upos), (_, ipos) = (model.side(s).lookup(rows.column(c).to_pylist(), where) for s, c in (("user", "u"), ("item", "i")))
    bad_u, bad_i = upos < 0, ipos < 0
    counts = {
        "n_rows": int(got.num_rows),
        "n_unknown_users": len(set(rows.column("u").filter(pa.array(bad_u)).to_pylist())),
        "n_unknown_items": len(set(rows.column("i").filter(pa.array(bad_i)).to_pylist())),
        "n_ignored_rows": int((bad_u | bad_i).sum()),
        "n_below_threshold": int(got.num_rows - len(rows)),
    }
    ok = ~(bad_u | bad_i)
    return upos[ok], ipos[ok], counts


def test_ratings(session: Session, model: "Model", sql: str, database: str | None,
                 where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(user indices, item indices, ratings) of a test query's rated rows whose ids the model
    knows, every rating (no threshold); None when the query lacks the model's rating column."""
    columns = list(session.columns(sql, where=f"{where}: the test query failed", database=database))
    rating = model.info.get("rating_col")
    rcol = find_column(columns, rating) if rating else None
    ucol, icol = find_column(columns, model.user_col), find_column(columns, model.item_col)
    if rcol is None or ucol is None or icol is None:
        return None
    with session.in_database(database, where):
        got = session.arrow(f"SELECT {quote_ident(ucol)} AS u, {quote_ident(icol)} AS i, "
                            f"CAST({quote_ident(rcol)} AS DOUBLE) AS r FROM ({sql}) WHERE {quote_ident(rcol)} IS NOT NULL",
                            where=f"{where}: the test query failed")
    (_, upos), (_, ipos) = (model.side(s).lookup(got.column(c).to_pylist(), where) for s, c in (("user", "u"), ("item", "i")))
    ok = (upos >= 0) & (ipos >= 0)
    return upos[ok], ipos[ok], np.asarray(got.column("r").to_numpy(zero_copy_only=False), np.float64)[ok]
