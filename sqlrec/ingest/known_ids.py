"""Catalogue ids (CREATE options `items` and `users`): ids a model knows before their first interaction.

A training query only holds ids that have interactions, so an item added to the shop today
would be unknown until it is bought. `items = 'SELECT movieId FROM movies'` (or a table name)
adds every id of the catalogue to the model's id map, after the feature sources have added
theirs. An added id is trained as any id that has no positive pairs: with features it is
represented by its metadata alone (it gets no identity weight, see sqlrec.ingest.features), so it is
scored and recommended from its features at once; without features it is known (no cold-start
error, pair scores, FINETUNE trains it as soon as it has interactions) but scored as an item
nobody liked yet, below the liked ones.

The catalogue query's id column is the one named like the model's id column, or its only column;
ids are cast to the training id type and one that does not convert is an error naming the option.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow as pa
from sqlrec.lazy import sparse as sp

from sqlrec.engines.training_data import TrainingData
from sqlrec.ingest.data import find_column
from sqlrec.errors import ColumnError, TrainingDataError
from sqlrec.ingest.features.spec import source_query
from sqlrec.store.session import SYSTEM, Session
from sqlrec.sql import quote_ident
from sqlrec.sql.types import check_type


def extend(session: Session, data: TrainingData, id_columns: dict[str, str], options: dict[str, Any],
           where: str) -> tuple[TrainingData, dict[str, int]]:
    """TrainingData with the catalogue ids of options users / items appended to the id maps (feature
    matrices padded with empty rows), and how many each side gained."""
    added: dict[str, int] = {}
    for side in ("user", "item"):
        option = f"{side}s"
        if options.get(option) is None:
            continue
        ids = data.ids(side)
        new = _new_ids(session, options[option], option, id_columns[side], data.id_type(side), ids, where)
        added[side] = len(new)
        if not len(new):
            continue
        changes: dict[str, Any] = {option: pa.concat_arrays([ids, new.cast(ids.type)])}
        matrix = data.user_features if side == "user" else data.item_features
        if matrix is not None:
            changes[f"{side}_features"] = sp.vstack(
                [matrix, sp.csr_matrix((len(new), matrix.shape[1]), dtype=matrix.dtype)]).tocsr()
        data = dataclasses.replace(data, **changes)
    return data, added


def _new_ids(session: Session, value: Any, option: str, id_col: str, id_type: str, ids: pa.Array,
             where: str) -> pa.Array:
    """The catalogue's distinct ids that `ids` does not hold, in id order."""
    sql = source_query(value, option, where)
    label = f"{where}: the {option} query failed"
    columns = list(session.columns(sql, where=label))
    col = find_column(columns, id_col) or (columns[0] if len(columns) == 1 else None)
    if col is None:
        raise ColumnError(f"{where}: option {option}: the query has no column {id_col!r} (the model's id column) "
                          f"and more than one column; its columns are: {', '.join(columns)}")
    type_ = check_type(id_type)
    if type_ is None:
        raise ColumnError(f"{where}: option {option}: unsupported id type {id_type!r}")
    q = quote_ident(col)
    # The catalogue query runs once: its ids in a temp table, checked, then compared.
    with session.temp_table("catalogue_ids", f"SELECT {q} AS raw, TRY_CAST({q} AS {type_}) AS id "
                            f"FROM ({sql}) WHERE {q} IS NOT NULL", where=label) as got, \
            session.registered("known_ids", pa.table({"id": ids})) as known:
        # DuckDB's own functions (SYSTEM): the file may carry macros of these names.
        bad = session.one(f"SELECT {SYSTEM}.count_star(), {SYSTEM}.any_value(raw)::VARCHAR FROM {got} WHERE id IS NULL", where=label)
        if bad and bad[0]:
            raise TrainingDataError(f"{where}: option {option}: {bad[0]} value(s) of column {col!r} do not convert "
                                    f"to the model's {id_col} type {type_} (e.g. {bad[1]!r})")
        table = session.arrow(f"SELECT DISTINCT id FROM {got} WHERE id NOT IN (SELECT CAST(id AS {type_}) "
                              f"FROM {known}) ORDER BY 1", where=label)
    return table.column(0).combine_chunks()
