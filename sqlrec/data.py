"""Training data: SQL -> dense id maps + interaction arrays, with DuckDB doing the mapping.

The training query runs once into a temp table; DuckDB assigns dense indices to distinct ids
(ordered by id, so the same data always gives the same matrix) and aggregates duplicates.
Python only receives flat numpy arrays, never loops over rows.

Duplicate (user, item) rows: without `rating` they add up (count, or the sum of `weight`);
with `rating` the latest row by `timestamp` wins, or the highest rating when there is no
timestamp.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from .errors import ColumnError, TrainingDataError, wrap_duckdb


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
    # Hybrid models (sqlrec.features): (n_users, n_user_features) / (n_items, n_item_features),
    # rows normalised; None = identity features only (plain collaborative filtering).
    user_features: sp.csr_matrix | None = None
    item_features: sp.csr_matrix | None = None

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


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def source_sql(table: str | None, query: str | None) -> str:
    return f"SELECT * FROM {table}" if table is not None else query  # type: ignore[return-value]


def query_columns(duck: duckdb.DuckDBPyConnection, sql: str, where: str, database: str | None = None,
                  what: str = "training") -> dict[str, str]:
    """Column name -> DuckDB type of a query (run in `database`, if given), without running it."""
    with in_database(duck, database, where):
        try:
            desc = duck.execute(f"DESCRIBE {sql}").fetchall()
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, f"{where}: the {what} query failed") from exc
    return {row[0]: row[1] for row in desc}


def finish_pending(duck: duckdb.DuckDBPyConnection) -> None:
    """Drop any unfinished result: DuckDB >= 2.0 refuses (un)register and new relations while
    one is pending."""
    if hasattr(duck, "abort"):
        try:
            duck.abort()
        except duckdb.Error:
            pass


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


def load(
    duck: duckdb.DuckDBPyConnection,
    sql: str,
    cols: Columns,
    threshold: float | None,
    where: str,
    database: str | None = None,
) -> TrainingData:
    """Run the training query (inside `database` when given, as MindsDB's FROM db (SELECT ...))."""
    tag = uuid.uuid4().hex[:12]
    src, umap, imap = f"__sqlrec_src_{tag}", f"__sqlrec_u_{tag}", f"__sqlrec_i_{tag}"
    try:
        with in_database(duck, database, where):
            try:
                duck.execute(f"CREATE TEMP TABLE {src} AS {sql}")
            except duckdb.Error as exc:
                raise wrap_duckdb(exc, f"{where}: the training query failed") from exc
        types = {r[0]: r[1] for r in duck.execute(f"DESCRIBE {src}").fetchall()}
        u, i = quote_ident(cols.user), quote_ident(cols.item)
        n_rows, null_u, null_i = duck.execute(
            f"SELECT count(*), count(*) FILTER ({u} IS NULL), count(*) FILTER ({i} IS NULL) FROM {src}"
        ).fetchone()
        if n_rows == 0:
            raise TrainingDataError(f"{where}: the training query returned no rows")
        for col, nulls in ((cols.user, null_u), (cols.item, null_i)):
            if nulls:
                raise TrainingDataError(
                    f"{where}: column {col!r} is NULL in {nulls} of {n_rows} rows; "
                    f"filter them out (WHERE {col} IS NOT NULL) or fill them"
                )
        _check_numeric(types, cols, where)

        for table, col in ((umap, u), (imap, i)):
            duck.execute(
                f"CREATE TEMP TABLE {table} AS SELECT id, (row_number() OVER (ORDER BY id) - 1)::INTEGER AS idx "
                f"FROM (SELECT DISTINCT {col} AS id FROM {src})"
            )

        r = quote_ident(cols.rating) if cols.rating else None
        w = f"CAST({quote_ident(cols.weight)} AS FLOAT)" if cols.weight else None
        t = _epoch_us(quote_ident(cols.timestamp), types[cols.timestamp]) if cols.timestamp else None
        if r is None:
            agg = [f"sum({w})::FLOAT AS weight" if w else "count(*)::FLOAT AS weight", "NULL::FLOAT AS rating"]
            agg.append(f"max({t}) AS ts" if t else "NULL::BIGINT AS ts")
        elif t is not None:
            agg = [
                f"arg_max({w or '1'}, {t})::FLOAT AS weight",
                f"arg_max(CAST({r} AS FLOAT), {t}) AS rating",
                f"max({t}) AS ts",
            ]
        else:
            agg = [f"max({w or '1'})::FLOAT AS weight", f"max(CAST({r} AS FLOAT)) AS rating", "NULL::BIGINT AS ts"]
        rating_filter = f"WHERE {r} IS NOT NULL" if r else ""
        pairs = duck.execute(
            f"SELECT um.idx AS row, im.idx AS col, {', '.join(agg)} FROM {src} s "
            f"JOIN {umap} um ON s.{u} = um.id JOIN {imap} im ON s.{i} = im.id {rating_filter} "
            f"GROUP BY ALL ORDER BY row, col"
        ).fetchnumpy()
        users = duck.sql(f"SELECT id FROM {umap} ORDER BY idx").to_arrow_table().column(0).combine_chunks()
        items = duck.sql(f"SELECT id FROM {imap} ORDER BY idx").to_arrow_table().column(0).combine_chunks()
    finally:
        for table in (src, umap, imap):
            try:
                duck.execute(f"DROP TABLE IF EXISTS {table}")
            except duckdb.Error:
                pass

    rows = np.asarray(pairs["row"], np.int32)
    if len(rows) == 0:
        raise TrainingDataError(f"{where}: every row has a NULL rating (column {cols.rating!r})")
    rating = None if r is None else _dense(pairs["rating"], np.float32)
    positive = np.ones(len(rows), bool) if threshold is None or rating is None else rating >= threshold
    if not positive.any():
        raise TrainingDataError(
            f"{where}: no rows left after threshold = {threshold:g} "
            f"(ratings range {float(rating.min()):g} to {float(rating.max()):g}); lower the threshold"
        )
    return TrainingData(
        users=users,
        items=items,
        user_type=types[cols.user],
        item_type=types[cols.item],
        rows=rows,
        cols=np.asarray(pairs["col"], np.int32),
        weight=_dense(pairs["weight"], np.float32),
        rating=rating,
        timestamp=None if t is None else _dense(pairs["ts"], np.int64),
        positive=positive,
        n_source_rows=int(n_rows),
    )


@contextmanager
def in_database(duck: duckdb.DuckDBPyConnection, database: str | None, where: str) -> Iterator[None]:
    """Run the body with `database` (an ATTACHed one) as the default catalog, then switch back."""
    if database is None:
        yield
        return
    catalog, schema = duck.execute("SELECT current_database(), current_schema()").fetchone()
    try:
        duck.execute(f"USE {quote_ident(database)}")
    except duckdb.Error as exc:
        raise wrap_duckdb(exc, f"{where}: database {database!r} is not attached (ATTACH it first)") from exc
    try:
        yield
    finally:
        duck.execute(f"USE {quote_ident(catalog)}.{quote_ident(schema)}")


def _dense(values, dtype) -> np.ndarray:
    if np.ma.isMaskedArray(values):
        values = values.filled(0)
    return np.asarray(values, dtype)


def _epoch_us(col: str, type_name: str) -> str:
    upper = type_name.upper()
    if upper.startswith("TIMESTAMP") or upper == "DATE":
        return f"epoch_us(CAST({col} AS TIMESTAMP))"
    return f"CAST({col} AS BIGINT)"


def _check_numeric(types: dict[str, str], cols: Columns, where: str) -> None:
    numeric = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL",
               "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "REAL")
    for option, col in (("rating", cols.rating), ("weight", cols.weight)):
        if col is not None and not types[col].upper().startswith(numeric):
            raise ColumnError(f"{where}: column {col!r} (option {option}) must be numeric, it is {types[col]}")
    if cols.timestamp is not None:
        kind = types[cols.timestamp].upper()
        if not (kind.startswith(numeric) or kind.startswith("TIMESTAMP") or kind == "DATE"):
            raise ColumnError(
                f"{where}: column {cols.timestamp!r} (option timestamp) must be a timestamp, date or number, it is {kind}"
            )
