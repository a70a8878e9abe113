"""One known key's recommendations (a user's query by its id), scored by scoring.top_one.

Model.recommend's general path looks keys up in bulk, scores known, cold and unknown keys apart
and orders several keys' lists: for one known key that bookkeeping costs about as much as
scoring it. Here the same rows come from the same GEMV and selection (bit for bit:
tests/test_onekey.py), as the Arrow table recommend returns, or as numpy columns for
sqlrec.exec.plans: with the caches cold after the GEMV, DuckDB scans ten rows from numpy arrays
~0.15 ms sooner than from an Arrow table, and no table is built (bench/README, item 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from sqlrec.numeric import approx, scoring
from sqlrec.models import fallback
from sqlrec.numeric.lookups import few_positions, plain_ints, take

if TYPE_CHECKING:
    from sqlrec.models.model import RecommenderType, Model


def table(model: "Model", spec: "RecommenderType", value: Any, k: int, *, exclude_seen: bool, search: approx.Search | None,
          cancelled: Callable[[], bool] | None, where: str) -> pa.Table | None:
    """model.recommend(spec.name, [value], k, ...)'s table; None where its general path must answer
    (an unknown or catalogue-only key, similarity, an approximate index)."""
    top = _top(model, spec, value, k, exclude_seen, search, cancelled, where)
    if top is None:
        return None
    key_ids, cols, scores, ranks = top
    return pa.table([take(key_ids, np.zeros(len(ranks), np.int64)), take(model.side(spec.target).ids, cols),
                     pa.array(scores), pa.array(ranks)], names=model.columns(spec.name))


def columns(model: "Model", spec: "RecommenderType", value: Any, k: int, *, exclude_seen: bool, search: approx.Search | None,
            cancelled: Callable[[], bool] | None, where: str) -> dict[str, np.ndarray] | None:
    """table()'s rows as numpy columns, where DuckDB reads those as it reads the table's Arrow
    columns: integer ids without nulls, scores without NaN (DuckDB reads a numpy NaN as NULL).
    None otherwise, or where table() has none."""
    key, target = model.side(spec.key).ids, model.side(spec.target).ids
    if not (_plain(key) and _plain(target)):
        return None
    top = _top(model, spec, value, k, exclude_seen, search, cancelled, where)
    if top is None or np.isnan(top[2]).any():
        return None
    key_ids, cols, scores, ranks = top
    names = model.columns(spec.name)
    return {names[0]: np.repeat(key_ids.to_numpy(), len(ranks)), names[1]: target.to_numpy()[cols],
            names[2]: scores, names[3]: ranks}


def _plain(ids: pa.Array) -> bool:
    return pa.types.is_integer(ids.type) and not ids.null_count


def _top(model: "Model", spec: "RecommenderType", value: Any, k: int, exclude_seen: bool, search: approx.Search | None,
         cancelled: Callable[[], bool] | None, where: str
         ) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray] | None:
    """(the key id as the id column's type, target positions, scores, ranks int32) of the rows."""
    if spec.similarity or spec.name not in model.handler.recommender_types:
        return None
    key, target = model.side(spec.key), model.side(spec.target)
    if plain_ints([value], key.ids.type):  # the id at its position is the value, typed
        pos = few_positions(key.index, [value])
        key_ids = key.ids.slice(max(int(pos[0]), 0), 1)
    else:
        key_ids, pos = key.lookup([value], where)
    # after the look-up, as in the general path: an unknown key's error comes before the index's
    if (p := int(pos[0])) < 0 or fallback.blank(key, pos, pos >= 0)[0] or \
            model.approx.scorer(spec.name, search, False, where) is not scoring.top_k:
        return None
    (vectors, biases), seen = key.factors, key.seen
    model.n_scored += 1
    idx, val = scoring.top_one(
        np.ascontiguousarray(vectors[p:p + 1], np.float32), biases[p:p + 1], *target.factors, k,
        exclude=seen.indices[seen.indptr[p]:seen.indptr[p + 1]] if exclude_seen else None, cancelled=cancelled)
    keep = idx >= 0
    return key_ids, idx[keep], val[keep], np.flatnonzero(keep).astype(np.int32) + 1  # ranks as flatten_top_k's
