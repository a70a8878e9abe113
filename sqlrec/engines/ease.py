"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"), computed from an SVD so it is a
factor model like every other engine.

EASE learns item-item weights B = argmin ||X - XB||² + λ||B||² with diag(B) = 0, in closed form:
P = (XᵀX + λI)⁻¹, B = -P / diag(P) off the diagonal. Inverting the items x items matrix costs
O(items³) time and items² memory (9,066 MovieLens items: 24 s; 59k: out of reach). With the SVD
X = U Σ Vᵀ, P = V (Σ² + λ)⁻¹ Vᵀ + (I - VVᵀ)/λ, and for every pair the user has not seen
    (XB)[u, i] = (U Σ g Vᵀ)[u, i] / P[i, i],   g = σ² / (λ (σ² + λ)),
so the scores are U·V with user vectors U Σ √g and item vectors V √g / diag(P). When the rank kept
is the matrix's rank (at most min(users, items); the MovieLens sample's 671 users) this is EASE
exactly (scores equal to float rounding, tested against the inverse) in about a second; a lower
rank (`no_components`; by default 256 above 1,024 users and items) is the rank-d approximation,
the tail's 1/(σ² + λ) read as 1/λ.
Pairs the user has seen score differently from EASE's zero diagonal, but lists leave them out.

The input is the interaction matrix of implicit engines: a positive's weight, and a pair rated
below the threshold at `below_threshold_weight` of it (the MovieLens measurements in bench/README.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlrec.lazy import sparse as sp
from threadpoolctl import threadpool_limits

from sqlrec.engines.training_data import TrainingData
from sqlrec.sql.options import Option
from sqlrec.engines.base import EpochCallback, FactorsWithoutBiases, Handler, below_threshold_option, interactions
from sqlrec.engines.space import Param
from sqlrec.engines.svd import svd_bytes, truncated_svd

# regularization and below_threshold_weight: the MovieLens sample's plateau (ratings >= 4, per-user
# holdout, 3 seeds; bench/README.md "Quality at equal budget"). The rank: exact up to EXACT_UP_TO
# users or items (the sample's 671 users: ~1 s); above it rank APPROX_RANK, as the SVD's cost grows
# fast with the rank (20k x 20k, 1.1M pairs: 11 s at 256 against 142 s at 1,024; P@10 on the
# sample 0.243 at 256 against 0.246 exact).
EXACT_UP_TO = 1024
APPROX_RANK = 256
OPTIONS: tuple[Option, ...] = (
    Option("regularization", float, 150.0, "L2 penalty λ on the item-item weights (grows with the data: "
           "hundreds on MovieLens)", low=0.0, low_open=True),
    Option("no_components", int, None, f"SVD rank kept (default: exact EASE when users or items are at most "
           f"{EXACT_UP_TO:,}, else {APPROX_RANK}); exact when users or items are at most this many, else the "
           f"rank-d approximation", low=1, high=8192),
    below_threshold_option(0.5),
)

# What tune = true searches: lambda spans MovieLens-sized (hundreds) to ML-20M-sized (~500-3000)
# data; the rank stays the user's (default: exact on small data), a larger one only costs time.
SEARCH_SPACE: dict[str, Param] = {
    "regularization": Param("float", 10.0, 5000.0, log=True),
    "below_threshold_weight": Param("float", 0.0, 1.0),
}


def rank_of(params: dict[str, Any], shape: tuple[int, int]) -> int:
    """The SVD rank a model of this shape keeps; min(shape) is exact EASE."""
    given, small = params.get("no_components"), min(shape)
    if given is None:
        return small if small <= EXACT_UP_TO else APPROX_RANK
    return min(int(given), small)


def full_svd(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(U, s, V) of every singular value above float64 noise, from the eigenvectors of the smaller
    side's Gram matrix: min(m, n)² memory, never the dense m x n matrix (800 users x 1M items would
    be 6.4 GB). Directions with σ² below 1e-10 of the largest are dropped: the formulas above read
    them as σ = 0, which moves a score by at most σ²/λ of its own size."""
    m, n = matrix.shape
    side = matrix if m <= n else matrix.T.tocsr()
    w, q = np.linalg.eigh((side @ side.T).toarray())
    keep = w > max(float(w[-1]), 0.0) * 1e-10 if len(w) else np.zeros(0, bool)
    w, q = w[keep][::-1], q[:, keep][:, ::-1]
    s = np.sqrt(w)
    other = np.asarray(side.T @ q) / s
    return (q, s, other) if m <= n else (other, s, q)


class EASEHandler(FactorsWithoutBiases, Handler):
    """score(u, i) = (X B)[u, i] for items the user has not seen: the user's row through the
    item-item weights."""

    engine = "ease"
    params_spec = OPTIONS
    search_space = SEARCH_SPACE
    recommender_types = ("user_item", "item_user", "item_item", "user_user")

    @classmethod
    def training_bytes(cls, params: dict[str, Any], rows: tuple[int, int]) -> int:
        rank = rank_of(params, rows)
        if rank < min(rows):
            return svd_bytes(rows, rank)
        # exact: the smaller side's float64 Gram matrix, eigh's copy and workspace, both sides' vectors
        return 8 * (3 * min(rows) ** 2 + 2 * (rows[0] + rows[1]) * min(rows))

    def __init__(self, params: dict[str, Any]):
        super().__init__(params)
        self.user_vecs = self.item_vecs = np.zeros((0, 0), np.float32)
        self.item_diag = self.singular_values = np.zeros(0, np.float32)

    def fit(self, data: TrainingData, mask: np.ndarray, *, num_threads: int, on_epoch: EpochCallback) -> None:
        p = self.params
        lam = float(p["regularization"])
        matrix = interactions(data, mask, p["below_threshold_weight"])
        rank = rank_of(p, data.shape)
        with threadpool_limits(limits=int(num_threads), user_api="blas"):  # num_threads holds for LAPACK too
            u, s, v = (full_svd(matrix) if rank == min(data.shape)  # exact EASE
                       else truncated_svd(matrix, rank, p.get("random_state")))
        g = np.sqrt(s ** 2 / (lam * (s ** 2 + lam)))
        v2 = v ** 2
        diag = (v2 / (s ** 2 + lam)).sum(axis=1) + np.clip(1.0 - v2.sum(axis=1), 0.0, None) / lam
        # C order, as a stored model is read back: the same layout gives the same float32 GEMM rounding.
        self.user_vecs = np.ascontiguousarray(u * (s * g), np.float32)
        self.item_vecs = np.ascontiguousarray(v * g / diag[:, None], np.float32)
        self.item_diag = diag.astype(np.float32)
        self.singular_values = s.astype(np.float32)
        on_epoch(1, 1)

    def fold_in(self, side: str, targets: np.ndarray, positives: np.ndarray) -> np.ndarray | None:
        """A new user's row through the weights: the sum of its items' V √g rows, each a positive
        of value 1. That is the vector training gives a user with the same positives. A new item
        has no column in B: sqlrec's generic fold-in serves it."""
        if side != "user":
            return None
        rows = np.unique(np.asarray(positives, np.int64))
        return (self.item_vecs[rows].astype(np.float64) * self.item_diag[rows, None]).sum(axis=0).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"user_vecs": self.user_vecs, "item_vecs": self.item_vecs, "item_diag": self.item_diag,
                "singular_values": self.singular_values}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], load_rest: Any = None
                    ) -> "EASEHandler":
        h = cls(params)
        h.user_vecs, h.item_vecs = arrays["user_vecs"], arrays["item_vecs"]
        h.item_diag, h.singular_values = arrays["item_diag"], arrays["singular_values"]
        return h

    def describe(self) -> dict[str, Any]:
        return {"components_used": int(len(self.singular_values)),
                "exact": rank_of(self.params, (len(self.user_vecs), len(self.item_vecs))) == min(
                    len(self.user_vecs), len(self.item_vecs))}

    @property
    def epochs(self) -> int:
        return 1
