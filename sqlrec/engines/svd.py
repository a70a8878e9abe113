"""PureSVD baseline (Cremonesi et al., 2010): a truncated SVD of the interaction matrix.

R ≈ U Σ Vᵀ with R the users x items matrix of positives (value: the pair's weight, i.e. the
number of repeats, the weight column, or 1 for rated pairs); missing entries are zeros, which
is what makes PureSVD a strong top-N baseline. The factors are stored split evenly,
users U Σ^½ and items V Σ^½, so the shared scoring (U·V, zero biases) gives exactly U Σ Vᵀ,
and item_item / user_user cosine similarity reads the singular directions weighted alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlrec.lazy import sparse as sp

from sqlrec.engines.training_data import TrainingData
from sqlrec.sql.options import Option
from sqlrec.engines.base import EpochCallback, FactorsWithoutBiases, Handler
from sqlrec.engines.space import Param

OPTIONS: tuple[Option, ...] = (
    Option("no_components", int, 50, "singular vectors kept (at most min(n_users, n_items))",
           low=1, high=4096),
)

# Below this many matrix cells a dense LAPACK SVD is exact and as fast as ARPACK.
_DENSE_CELLS = 4_000_000


def truncated_svd(matrix: sp.csr_matrix, rank: int, random_state: int | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(U (m, r), s (r,) descending, V (n, r)) of the best rank-r approximation, signs fixed so
    that each column of V has its largest-magnitude entry positive (SVD signs are arbitrary;
    fixing them makes stored factors reproducible)."""
    m, n = matrix.shape
    rank = max(0, min(rank, min(m, n)))
    if rank == 0 or matrix.nnz == 0:
        return np.zeros((m, rank)), np.zeros(rank), np.zeros((n, rank))
    if rank >= min(m, n) - 1 or m * n <= _DENSE_CELLS:
        u, s, vt = np.linalg.svd(matrix.toarray(), full_matrices=False)
        u, s, vt = u[:, :rank], s[:rank], vt[:rank]
    else:
        from scipy.sparse.linalg import svds  # here: ARPACK's import costs ~0.05 s that plain SQL skips

        u, s, vt = svds(matrix.astype(np.float64), k=rank, random_state=random_state)
        order = np.argsort(-s, kind="stable")
        u, s, vt = u[:, order], s[order], vt[order]
    v = vt.T
    flip = np.sign(v[np.argmax(np.abs(v), axis=0), np.arange(rank)])
    flip[flip == 0] = 1.0
    return u * flip, s, v * flip


def svd_bytes(shape: tuple[int, int], rank: int) -> int:
    """About the bytes truncated_svd allocates: the dense matrix and its SVD where it goes dense,
    else ARPACK's float64 Lanczos vectors and the factors with their copies."""
    m, n = shape
    rank = max(0, min(rank, min(m, n)))
    if rank >= min(m, n) - 1 or m * n <= _DENSE_CELLS:
        return 8 * (m * n + (m + n) * min(m, n)) * 2
    return 8 * (m + n) * max(2 * rank + 1, 20) * 3


class SVDHandler(FactorsWithoutBiases, Handler):
    """score(u, i) = (U Σ Vᵀ)[u, i]: the rank-d reconstruction of the user's row."""

    engine = "svd"
    params_spec = OPTIONS
    search_space = {"no_components": Param("int", 4, 512, log=True)}
    recommender_types = ("user_item", "item_user", "item_item", "user_user")

    @classmethod
    def training_bytes(cls, params: dict[str, Any], rows: tuple[int, int]) -> int:
        d = params.get("no_components")
        return svd_bytes(rows, int(d)) if isinstance(d, int) else 0

    def fit(self, data: TrainingData, mask: np.ndarray, *, num_threads: int, on_epoch: EpochCallback) -> None:
        keep = mask & data.positive
        matrix = sp.csr_matrix((data.weight[keep].astype(np.float64), (data.rows[keep], data.cols[keep])),
                               shape=data.shape)
        rank = min(int(self.params["no_components"]), min(data.shape))
        u, s, v = truncated_svd(matrix, rank, self.params.get("random_state"))
        root = np.sqrt(s)
        self.user_vecs = (u * root).astype(np.float32)
        self.item_vecs = (v * root).astype(np.float32)
        self.singular_values = s.astype(np.float32)
        total = float(np.sum(matrix.data ** 2))
        self.energy = np.array([float(np.sum(s ** 2)) / total if total > 0 else 0.0], np.float32)
        on_epoch(1, 1)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"user_vecs": self.user_vecs, "item_vecs": self.item_vecs,
                "singular_values": self.singular_values, "energy": self.energy}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> "SVDHandler":
        h = cls(params)
        h.user_vecs, h.item_vecs = arrays["user_vecs"], arrays["item_vecs"]
        h.singular_values, h.energy = arrays["singular_values"], arrays["energy"]
        return h

    def describe(self) -> dict[str, Any]:
        s = self.singular_values
        return {"components_used": int(len(s)),
                "explained_energy": round(float(self.energy[0]), 6),  # share of ||R||² the rank-d fit keeps
                "top_singular_values": [round(float(x), 4) for x in s[:5]]}

    @property
    def epochs(self) -> int:
        return 1
