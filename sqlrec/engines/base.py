"""The one small interface every model engine implements.

A handler sees arrays, never SQL: the engine hands it a training set (TrainingData plus the
mask of pairs to learn from) and asks back for its state as named numpy arrays, which the
catalog stores. Every engine scores as U[u]·V[i] + bu[u] + bi[i], so one scoring module
serves them all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
from sqlrec.lazy import sparse as sp

from sqlrec.engines.space import Param
from sqlrec.engines.training_data import TrainingData
from sqlrec.sql.options import Option

EpochCallback = Callable[[int, int], None]  # (epoch done, total); may raise to cancel


def below_threshold_option(default: float) -> Option:
    """The option of the implicit engines that learn from pairs rated below the threshold."""
    return Option("below_threshold_weight", float, default,
                  "with threshold: a pair rated below it counts as this share of a positive (a watched but "
                  "unloved item still says what a user watches; 0: such pairs are not learned from)",
                  low=0.0, high=1.0)


def interactions(data: TrainingData, mask: np.ndarray, below_weight: float = 0.0) -> sp.csr_matrix:
    """Users x items float64 values of the pairs in `mask`: a positive's weight (repeats, the weight
    column, or 1), a below-threshold pair's weight times `below_weight` (0: left out)."""
    share = np.where(data.positive, 1.0, float(below_weight))
    keep = mask & (share > 0)
    return data.matrix(mask=keep, values=data.weight.astype(np.float64) * share)


class Handler(ABC):
    engine: ClassVar[str]
    # The engine's own model parameters (USING names, types, defaults); sqlrec's CREATE-level
    # options (columns, features, evaluation...) are sqlrec.sql.options' tables, never a handler's.
    params_spec: ClassVar[tuple[Option, ...]] = ()
    recommender_types: ClassVar[tuple[str, ...]]
    # True: the handler learns feature embeddings (sqlrec.ingest.features), fit reads
    # data.user_features / data.item_features and feature_factors(side) returns them.
    supports_features: ClassVar[bool] = False
    # Stored arrays only training needs (FINETUNE's optimizer state): a stored model is opened
    # without them, from_arrays then gets `load_rest`, which arrays() calls for them on first use.
    training_only_arrays: ClassVar[tuple[str, ...]] = ()
    # True: the engine learns rating values (explicit feedback); CREATE MODEL needs option rating.
    needs_rating: ClassVar[bool] = False
    # What tune = true searches (sqlrec.exec.tuning): parameter name (one of params_spec's) ->
    # range, in the order of the m.trials columns. Empty: nothing to search; the engine then gets
    # one trial with the given parameters (a yardstick among tune_engines), and tune = true alone
    # refuses it. The order and ranges fix the trials a seed draws: changing them changes results.
    search_space: ClassVar[Mapping[str, Param]] = {}
    # True: FINETUNE trains a stored model further on the new pairs only: from_arrays(arrays()),
    # grow() for the new ids, then fit with the params' epochs. False: FINETUNE refits on the
    # stored training query plus the new rows. (A model with features is always refit: the new
    # ids have no rows in its stored feature matrices.)
    incremental_finetune: ClassVar[bool] = False
    # Parameters that are columns of the sqlrec.metrics view (compare models with SQL), typed by
    # their option's kind; "epochs_trained" (every model records it) is an INTEGER.
    summary_params: ClassVar[tuple[str, ...]] = ()
    # False: every key gets the same ranking (one score per target), which an approximate index
    # cannot speed up: CREATE MODEL refuses approximate = true.
    personalised: ClassVar[bool] = True

    # Bytes a fit holds per factor value (ids x no_components): the factors in the engine's dtype,
    # the copies fit and save make, and state kept beside them. For training_bytes' estimate.
    bytes_per_factor: ClassVar[int] = 16

    def __init__(self, params: dict[str, Any]):
        self.params = params

    @classmethod
    def training_bytes(cls, params: dict[str, Any], rows: tuple[int, int]) -> int:
        """About the bytes a fit with `params` allocates when its user and item factor matrices
        have `rows` rows (ids, plus features for a hybrid model); sqlrec.exec.training refuses a
        fit above its memory budget before any engine allocates. On the generous side; 0:
        nothing grows with the parameters."""
        d = params.get("no_components")
        return (rows[0] + rows[1]) * int(d) * cls.bytes_per_factor if isinstance(d, int) else 0

    @classmethod
    def data_bounds(cls, params: dict[str, Any], shape: tuple[int, int]) -> dict[str, tuple[int, str]]:
        """Upper bounds the training data's (users, items) puts on parameters: name -> (most, why)."""
        return {}

    @classmethod
    def check_available(cls, where: str) -> None:
        """Raise an OptionError naming the engine when a library it trains with is missing."""

    @classmethod
    def learns_ratings(cls, params: dict[str, Any]) -> bool:
        """Whether a model of these parameters fits rating values (needs_rating, or an engine
        option such as spark_als' implicit_prefs = false)."""
        return cls.needs_rating

    @abstractmethod
    def fit(self, data: TrainingData, mask: np.ndarray, *, num_threads: int, on_epoch: EpochCallback) -> None:
        """Learn from the pairs of `data` selected by `mask` (bool per pair)."""

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """The whole state, enough for from_arrays to rebuild an identical model."""

    @classmethod
    @abstractmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray],
                    load_rest: Callable[[], dict[str, np.ndarray]] | None = None) -> "Handler":
        """Rebuild from arrays(); with load_rest, training_only_arrays are left out of `arrays`."""

    @abstractmethod
    def user_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(vectors float32 (n_users, d), biases float32 (n_users,))."""

    @abstractmethod
    def item_factors(self) -> tuple[np.ndarray, np.ndarray]:
        ...

    def fold_in(self, side: str, targets: np.ndarray, positives: np.ndarray) -> np.ndarray | None:
        """The engine's own vector for a new id of `side` ('user' or 'item') from the indices of its
        positive targets on the other side (whose vectors are `targets`), or None: sqlrec's generic
        closed form (coldstart.fold_in) then folds it in."""
        return None

    def grow(self, n_users: int, n_items: int) -> None:
        """Add rows for new users and items before an incremental FINETUNE (incremental_finetune);
        known rows keep their state."""
        raise NotImplementedError(f"engine {self.engine!r} has no incremental fine-tuning")

    def rating_range(self) -> tuple[float, float] | None:
        """(lowest, highest) training rating for engines whose score predicts a rating, else None."""
        return None

    def describe(self) -> dict[str, Any]:
        """Learned-model facts for DESCRIBE m.model (beyond params)."""
        return {}

    @property
    def epochs(self) -> int:
        return 0


class FactorsWithoutBiases:
    """Mixin for engines whose state is two factor matrices and no biases (svd, als): the shared
    scoring then computes U·V exactly."""

    user_vecs: np.ndarray
    item_vecs: np.ndarray

    def user_factors(self) -> tuple[np.ndarray, np.ndarray]:
        return self.user_vecs, np.zeros(len(self.user_vecs), np.float32)

    def item_factors(self) -> tuple[np.ndarray, np.ndarray]:
        return self.item_vecs, np.zeros(len(self.item_vecs), np.float32)
