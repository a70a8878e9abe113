"""Explicit ratings: biased matrix factorisation by alternating least squares, in numpy.

r̂(u, i) = μ + b_u + b_i + p_u·q_i, fitted to the rating values of every training pair (below
the threshold too: a 1-star rating is information here, not a non-event), minimising squared
error plus λ n (‖p‖² + b²) per row, n being the row's number of ratings (weighted-λ
regularisation, Zhou et al. 2008: one λ fits light and heavy raters alike). With the other
side fixed each row's [p, b] has a closed form, (XᵀX + λ n I)⁻¹ Xᵀy; the Gram matrices of all
rows come from one sparse product with the other side's per-row outer products, and the solves
run batched in one np.linalg.solve, so no Python loop runs over users or items.

The stored factors fold μ into the user biases, so the shared scoring (U·V + bu + bi) is the
predicted rating itself: recommendations rank by it, and pair scoring clipped to the training
ratings' range (rating_range) is the prediction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlrec.lazy import sparse as sp

from sqlrec.engines.training_data import TrainingData
from sqlrec.sql.options import Option
from sqlrec.engines.base import EpochCallback, Handler

# Defaults measured on the MovieLens sample (bench/rating.py, 20% random split).
OPTIONS: tuple[Option, ...] = (
    Option("no_components", int, 16, "latent factors", low=1, high=512, aliases=("factors",)),
    Option("regularization", float, 0.2, "L2 penalty per rating of the row (weighted-λ)", low=0.0,
           low_open=True),
    Option("epochs", int, 15, "ALS iterations (each solves users, then items)", low=1, high=1000,
           aliases=("iterations",)),
)


def solve_rows(ratings: sp.csr_matrix, other: np.ndarray, reg: float) -> np.ndarray:
    """Every row's least-squares [p, b] against the fixed side `other` = [q, 1] (n, d + 1):
    rows of `ratings` hold the targets (rating minus what is fixed) at the rated columns."""
    d1 = other.shape[1]
    outer = (other[:, :, None] * other[:, None, :]).reshape(len(other), d1 * d1)
    indicator = ratings.copy()
    indicator.data = np.ones_like(indicator.data)
    gram = np.asarray(indicator @ outer).reshape(ratings.shape[0], d1, d1)
    counts = np.asarray(indicator.sum(axis=1)).ravel()
    gram += (reg * np.maximum(counts, 1.0))[:, None, None] * np.eye(d1)
    rhs = np.asarray(ratings @ other)
    return np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]


class ExplicitHandler(Handler):
    """score(u, i) = μ + b_u + b_i + p_u·q_i: the predicted rating."""

    engine = "explicit"
    params_spec = OPTIONS
    bytes_per_factor = 24  # float64 solves beside the float32 factors
    recommender_types = ("user_item", "item_user", "item_item", "user_user")
    needs_rating = True
    # No search space: the trials rank by top-N metrics, which a rating model is not fitted for
    # (its goal is RMSE); one trial with the given parameters.

    def __init__(self, params: dict[str, Any]):
        super().__init__(params)
        self._epochs_done = 0
        d = int(params["no_components"])
        self.user_vecs = self.item_vecs = np.zeros((0, d), np.float32)
        self.user_bias = self.item_bias = np.zeros(0, np.float32)
        self.range = np.zeros(2, np.float32)

    def fit(self, data: TrainingData, mask: np.ndarray, *, num_threads: int, on_epoch: EpochCallback) -> None:
        rating = np.asarray(data.rating, np.float64)[mask]
        rows, cols = data.rows[mask], data.cols[mask]
        mu = float(rating.mean()) if len(rating) else 0.0
        d, reg, total = int(self.params["no_components"]), float(self.params["regularization"]), int(self.params["epochs"])
        rng = np.random.default_rng(self.params.get("random_state"))
        p = rng.normal(0.0, 0.1, (data.shape[0], d))
        q = rng.normal(0.0, 0.1, (data.shape[1], d))
        bu, bi = np.zeros(data.shape[0]), np.zeros(data.shape[1])
        ones_u, ones_i = np.ones((data.shape[0], 1)), np.ones((data.shape[1], 1))
        for epoch in range(total):
            target = rating - mu - bi[cols]
            w = solve_rows(sp.csr_matrix((target, (rows, cols)), shape=data.shape), np.hstack([q, ones_i]), reg)
            p, bu = w[:, :d], w[:, d]
            target = rating - mu - bu[rows]
            w = solve_rows(sp.csr_matrix((target, (cols, rows)), shape=data.shape[::-1]), np.hstack([p, ones_u]), reg)
            q, bi = w[:, :d], w[:, d]
            self._store(p, q, bu + mu, bi)
            self._epochs_done = epoch + 1
            on_epoch(epoch + 1, total)
        low, high = (float(rating.min()), float(rating.max())) if len(rating) else (0.0, 0.0)
        self.range = np.array([low, high], np.float32)

    def _store(self, p: np.ndarray, q: np.ndarray, bu: np.ndarray, bi: np.ndarray) -> None:
        self.user_vecs, self.item_vecs = p.astype(np.float32), q.astype(np.float32)
        self.user_bias, self.item_bias = bu.astype(np.float32), bi.astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"user_vecs": self.user_vecs, "item_vecs": self.item_vecs, "user_bias": self.user_bias,
                "item_bias": self.item_bias, "rating_range": self.range}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> "ExplicitHandler":
        h = cls(params)
        h._store(arrays["user_vecs"], arrays["item_vecs"], arrays["user_bias"], arrays["item_bias"])
        h.range = np.asarray(arrays["rating_range"], np.float32)
        h._epochs_done = int(params.get("epochs_trained", params["epochs"]))
        return h

    def user_factors(self) -> tuple[np.ndarray, np.ndarray]:
        return self.user_vecs, self.user_bias

    def item_factors(self) -> tuple[np.ndarray, np.ndarray]:
        return self.item_vecs, self.item_bias

    def rating_range(self) -> tuple[float, float] | None:
        return float(self.range[0]), float(self.range[1])

    def describe(self) -> dict[str, Any]:
        return {"epochs_trained": self._epochs_done, "factors": int(self.user_vecs.shape[1]),
                "rating_range": [float(x) for x in self.range]}

    @property
    def epochs(self) -> int:
        return self._epochs_done
