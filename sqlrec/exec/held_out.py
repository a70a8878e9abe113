"""EVALUATE MODEL m FROM (test query): the test query's rows as the model's user and item indices."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from sqlrec.errors import ColumnError, OptionError
from sqlrec.ingest.data import find_column
from sqlrec.models.model import Model
from sqlrec.sql.quoting import quote_ident
from sqlrec.store.session import SYSTEM, Session


def evaluation_pairs(session: Session, model: Model, sql: str, database: str | None, threshold: float | None,
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
    rating = model.info.rating_col
    rcol = find_column(columns, rating) if rating else None
    given = threshold is not None
    threshold = threshold if given else model.settings.threshold
    if given and rcol is None:
        raise OptionError(f"{where}: option threshold needs the model's rating column {rating or '(none)'!r} "
                          f"in the test query; its columns are: {', '.join(columns)}")
    # DuckDB's own ifnull (SYSTEM): the file may carry a macro named like it (or coalesce).
    keep = (f"{SYSTEM}.ifnull({quote_ident(rcol)} >= {float(threshold)!r}, false)"
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


def evaluation_ratings(session: Session, model: Model, sql: str, database: str | None,
                 where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(user indices, item indices, ratings) of a test query's rated rows whose ids the model
    knows, every rating (no threshold); None when the query lacks the model's rating column."""
    columns = list(session.columns(sql, where=f"{where}: the test query failed", database=database))
    rating = model.info.rating_col
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
