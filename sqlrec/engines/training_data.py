"""What every engine is handed to learn from: id maps and interaction arrays, no SQL.

sqlrec.ingest.data builds it from the training query; engines, model selection and tuning read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from sqlrec.lazy import sparse as sp


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
