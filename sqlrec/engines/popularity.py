"""Most-popular baseline: the same surface as LightFM, and the cold-start fallback."""

from __future__ import annotations

from typing import Any

import numpy as np

from sqlrec.engines.training_data import TrainingData
from sqlrec.engines.base import EpochCallback, Handler


def popularity_scores(data: TrainingData, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(item score, user activity): weighted positive counts scaled to [0, 1]."""
    keep = mask & data.positive
    items = np.bincount(data.cols[keep], weights=data.weight[keep], minlength=data.shape[1])
    users = np.bincount(data.rows[keep], weights=data.weight[keep], minlength=data.shape[0])
    return (_scale(items), _scale(users))


def _scale(x: np.ndarray) -> np.ndarray:
    top = x.max() if len(x) else 0.0
    return (x / top if top > 0 else x).astype(np.float32)


class PopularityHandler(Handler):
    """score(u, i) = popularity(i); item_user ranks users by activity."""

    engine = "popularity"
    recommender_types = ("user_item", "item_user")
    personalised = False
    # No search space: nothing to search, one trial, as a yardstick among tune_engines.

    def fit(self, data: TrainingData, mask: np.ndarray, *, num_threads: int, on_epoch: EpochCallback) -> None:
        self.item_score, self.user_score = popularity_scores(data, mask)
        on_epoch(1, 1)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"item_score": self.item_score, "user_score": self.user_score}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> "PopularityHandler":
        h = cls(params)
        h.item_score, h.user_score = arrays["item_score"], arrays["user_score"]
        return h

    def user_factors(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((len(self.user_score), 1), np.float32), self.user_score

    def item_factors(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((len(self.item_score), 1), np.float32), self.item_score

    @property
    def epochs(self) -> int:
        return 1
