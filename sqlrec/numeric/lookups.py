"""Look-ups for a few keys (one user's query), where the general tools' fixed costs dominate:
pandas' get_indexer builds arrays (~45 us for one key against ~8 us of hash look-ups),
scipy's fancy row indexing of a CSR matrix costs ~0.1 ms a call, and pyarrow's compute
functions (cast, take) ~20-30 us each behind their Python wrappers."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlrec.lazy import sparse as sp

if TYPE_CHECKING:  # pandas is only named in annotations here: `import sqlrec` and plain SQL never load it
    import pandas as pd

FEW_KEYS = 16


def few_positions(index: pd.Index, values: Sequence[Any]) -> np.ndarray:
    """Position of each value in a unique index, -1 where absent."""
    return np.array([_position(index, v) for v in values], np.int64)


def _position(index: pd.Index, value: Any) -> int:
    try:
        found = index.get_loc(value)
    except KeyError:
        return -1
    return int(found) if isinstance(found, (int, np.integer)) else -1


def csr_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """matrix[rows], by hand for a few rows."""
    if len(rows) > FEW_KEYS:
        return matrix[rows]
    ptr = matrix.indptr
    starts, ends = ptr[rows], ptr[np.asarray(rows) + 1]
    spans = [np.arange(a, b) for a, b in zip(starts, ends)]
    take = np.concatenate(spans) if spans else np.zeros(0, np.int64)
    indptr = np.concatenate([[0], np.cumsum(ends - starts)]).astype(matrix.indptr.dtype)
    return sp.csr_matrix((matrix.data[take], matrix.indices[take], indptr), shape=(len(rows), matrix.shape[1]))


def plain_ints(values: Sequence[Any], type_: pa.DataType) -> bool:
    """Whether every value is a Python int within integer type_'s range: then an Arrow array of
    type_ holds exactly these values, and building one (~40 us with cold caches) is not needed
    to know it."""
    bounds = _int_bounds(type_)
    return bounds is not None and all(type(v) is int and bounds[0] <= v <= bounds[1] for v in values)


@functools.cache
def _int_bounds(type_: pa.DataType) -> tuple[int, int] | None:
    if not pa.types.is_integer(type_):
        return None
    info = np.iinfo(type_.to_pandas_dtype())
    return int(info.min), int(info.max)


def typed(values: list[Any], type_: pa.DataType) -> pa.Array:
    """values as an Arrow array of type_, failing as pyarrow's cast fails (plain ints need no cast)."""
    if plain_ints(values, type_):
        return pa.array(values, type_)
    return pa.array(values).cast(type_)


def cast_or_none(values: list[Any], type_: pa.DataType) -> pa.Array | None:
    """typed(values, type_), None where the values cannot have that type."""
    try:
        return typed(values, type_) if values else pa.array([], type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError):
        return None


def take(ids: pa.Array, positions: np.ndarray) -> pa.Array:
    """ids.take(positions); integer ids without nulls through their numpy view."""
    if pa.types.is_integer(ids.type) and not ids.null_count:
        return pa.array(ids.to_numpy()[positions], ids.type)
    return ids.take(pa.array(positions))
