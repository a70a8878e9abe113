"""LightFM (hybrid matrix factorisation) behind the handler interface.

The whole training state (embeddings, biases and the adagrad/adadelta accumulators) is kept as
plain arrays, so a stored model can be rebuilt exactly and trained further (FINETUNE).

Hybrid models (item_features / user_features, see sqlrec.ingest.features) embed features, not ids: a
user's vector is its feature row times the feature embeddings. The feature matrices are stored
with the model and the representations are computed once (after training, or read back), so
scoring sees plain per-user / per-item factors either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sqlrec.lazy import sparse as sp

from sqlrec.engines.training_data import TrainingData
from sqlrec.sql.options import Option
from sqlrec.engines.base import EpochCallback, Handler
from sqlrec.engines.space import COMPONENTS, Param

STATE = tuple(
    f"{side}_{part}"
    for side in ("user", "item")
    for part in ("embeddings", "embedding_gradients", "embedding_momentum", "biases", "bias_gradients", "bias_momentum")
)

# Adagrad / adadelta accumulators: 58% of a model's bytes, needed by FINETUNE only.
OPTIMIZER_STATE = tuple(name for name in STATE if name.endswith(("_gradients", "_momentum")))

LOSSES = ("warp", "bpr", "logistic", "warp-kos")
SCHEDULES = ("adagrad", "adadelta")

# Defaults measured on the MovieLens sample (see README "Defaults"): LightFM's own defaults
# (10 components, logistic loss, 1 epoch) rank poorly for top-N; bench/defaults.py found the
# plateau (warp, lr 0.025, >= 50 epochs, >= 64 components) and these sit at its cheap end.
OPTIONS: tuple[Option, ...] = (
    Option("loss", str, "warp", "warp, bpr, logistic or warp-kos", choices=LOSSES),
    Option("no_components", int, 64, "embedding size", low=1, high=4096),
    Option("epochs", int, 50, "passes over the data", low=1, high=100_000, aliases=("epoch",)),
    Option("learning_rate", float, 0.025, "SGD step size", low=0.0, low_open=True),
    Option("learning_schedule", str, "adagrad", "adagrad or adadelta", choices=SCHEDULES),
    Option("item_alpha", float, 0.0, "L2 penalty on item features", low=0.0),
    Option("user_alpha", float, 0.0, "L2 penalty on user features", low=0.0),
    Option("max_sampled", int, 10, "WARP: negatives tried per positive", low=1),
    Option("k", int, 5, "warp-kos: k-th positive", low=1),
    Option("n", int, 10, "warp-kos: positives sampled", low=1),
    Option("rho", float, 0.95, "adadelta decay", low=0.0, high=1.0),
    Option("epsilon", float, 1e-6, "adadelta epsilon", low=0.0),
)


# What tune = true searches, in the order of the m.trials columns. Ranking losses only: logistic
# fits the sign of a rating, not the order of a top-N list.
SEARCH_SPACE: dict[str, Param] = {
    "no_components": Param("int", *COMPONENTS, log=True),
    "learning_rate": Param("float", 0.005, 0.1, log=True),
    "learning_schedule": Param("choice", choices=SCHEDULES),
    "loss": Param("choice", choices=tuple(loss for loss in LOSSES if loss != "logistic")),
    "item_alpha": Param("float_or_zero", 1e-7, 1e-3, log=True),  # or 0 (half the draws)
    "user_alpha": Param("float_or_zero", 1e-7, 1e-3, log=True),
    "epochs": Param("int", 10, 120),
}


_MODEL_PARAMS = ("no_components", "k", "n", "learning_schedule", "loss", "learning_rate", "rho",
                 "epsilon", "item_alpha", "user_alpha", "max_sampled")


class LightFMHandler(Handler):
    engine = "lightfm"
    params_spec = OPTIONS
    recommender_types = ("user_item", "item_user", "item_item", "user_user")
    supports_features = True
    training_only_arrays = OPTIMIZER_STATE
    search_space = SEARCH_SPACE
    incremental_finetune = True  # the optimizer state is stored: training goes on where it stopped
    summary_params = ("loss", "no_components", "epochs", "epochs_trained", "learning_rate", "learning_schedule",
                      "item_alpha", "user_alpha")

    # float32 embeddings with adagrad's or adadelta's two accumulators, the factors scoring reads
    # and the copies the catalog writes.
    bytes_per_factor = 32

    @classmethod
    def data_bounds(cls, params: dict[str, Any], shape: tuple[int, int]) -> dict[str, tuple[int, str]]:
        # WARP's rank estimate is (items - 1) / samples: past the item count a sample adds nothing
        # but time (max_sampled = 1e9 kept one positive sampling for minutes).
        # warp-kos samples n of a user's positives and ranks by the k-th: neither can exceed the items.
        why = {"max_sampled": "WARP learns nothing from more samples than items",
               "k": "warp-kos' k-th positive is one of them", "n": "warp-kos samples positives among them"}
        return {name: (max(shape[1], next(o.default for o in OPTIONS if o.name == name)),
                       f"the model's {shape[1]:,} items: {reason}") for name, reason in why.items()}

    def __init__(self, params: dict[str, Any]):
        super().__init__(params)
        # Imported here, not at module level, so that `import sqlrec`, the CLI and plain SQL never
        # load it (nor print its no-OpenMP warning): only a LightFM model needs it.
        from lightfm import LightFM

        self.model = LightFM(random_state=params.get("random_state"),
                             **{k: params[k] for k in _MODEL_PARAMS})
        self._epochs_done = 0
        self.features: dict[str, sp.csr_matrix | None] = {"user": None, "item": None}
        self._repr: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._load_rest: Callable[[], dict[str, np.ndarray]] | None = None

    def fit(self, data: TrainingData, mask: np.ndarray, *, num_threads: int, on_epoch: EpochCallback) -> None:
        interactions, weights = self.training_matrices(data, mask)
        self.features = {"user": data.user_features, "item": data.item_features}
        total = int(self.params["epochs"])
        for epoch in range(total):
            self.model.fit_partial(interactions, sample_weight=weights, epochs=1, num_threads=num_threads,
                                   user_features=self.features["user"], item_features=self.features["item"])
            self._repr = {}
            self._epochs_done += 1
            on_epoch(epoch + 1, total)

    def training_matrices(self, data: TrainingData, mask: np.ndarray) -> tuple[sp.coo_matrix, sp.coo_matrix | None]:
        """Interactions LightFM expects: positives = 1; logistic also gets -1 for below-threshold rows."""
        if self.params["loss"] == "logistic":
            keep = mask
            values = np.where(data.positive[keep], 1.0, -1.0).astype(np.float32)
        else:
            keep = mask & data.positive
            values = np.ones(int(keep.sum()), np.float32)
        shape = data.shape
        inter = sp.coo_matrix((values, (data.rows[keep], data.cols[keep])), shape=shape)
        weight = data.weight[keep]
        # Sample weights cost a pass per epoch and are unsupported by warp-kos: only when they matter.
        if self.params["loss"] == "warp-kos" or np.all(weight == 1.0):
            return inter, None
        return inter, sp.coo_matrix((weight.astype(np.float32), (inter.row, inter.col)), shape=shape)

    def arrays(self) -> dict[str, np.ndarray]:
        if self._load_rest is not None:  # opened for scoring: the optimizer state is read now
            rest = self._load_rest()
            for name in OPTIMIZER_STATE:
                setattr(self.model, name, np.asarray(rest[name], dtype=np.float32))
            self._load_rest = None
        out = {name: getattr(self.model, name) for name in STATE}
        for side, matrix in self.features.items():
            if matrix is None:
                continue
            m = sp.csr_matrix(matrix)
            out[f"{side}_features_indptr"] = m.indptr.astype(np.int64)
            out[f"{side}_features_indices"] = m.indices.astype(np.int32)
            out[f"{side}_features_data"] = m.data.astype(np.float32)
            out[f"{side}_features_shape"] = np.asarray(m.shape, np.int64)
            # Precomputed so that loading a model needs no sparse product before scoring.
            vecs, bias = self._factors(side)
            out[f"{side}_repr"], out[f"{side}_repr_bias"] = vecs, bias
        return out

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray],
                    load_rest: Callable[[], dict[str, np.ndarray]] | None = None) -> "LightFMHandler":
        h = cls(params)
        h._load_rest = load_rest
        for name in STATE:
            if load_rest is None:
                setattr(h.model, name, np.array(arrays[name], dtype=np.float32))  # writable: trained further
            elif name not in OPTIMIZER_STATE:
                # Scoring only reads: the stored buffers as they are (no copy); FINETUNE trains on a
                # handler rebuilt from arrays(), which copies.
                setattr(h.model, name, np.asarray(arrays[name], dtype=np.float32))
        h._epochs_done = int(params.get("epochs_trained", params["epochs"]))
        for side in ("user", "item"):
            if f"{side}_features_shape" in arrays:
                h.features[side] = sp.csr_matrix(
                    (arrays[f"{side}_features_data"], arrays[f"{side}_features_indices"],
                     arrays[f"{side}_features_indptr"]), shape=tuple(arrays[f"{side}_features_shape"]))
                h._repr[side] = (arrays[f"{side}_repr"], arrays[f"{side}_repr_bias"])
        return h

    def grow(self, n_users: int, n_items: int) -> None:
        """Add rows for new users and items (FINETUNE), initialised as LightFM's own _initialize
        does: embeddings uniform in [-0.5, 0.5) / no_components from the model's random state,
        zero biases and momentum, and adagrad's accumulators at 1. Known rows keep their state."""
        d = self.model.no_components
        start = 1.0 if self.model.learning_schedule == "adagrad" else 0.0
        for side, n in (("user", n_users), ("item", n_items)):
            extra = n - len(getattr(self.model, f"{side}_embeddings"))
            if extra <= 0:
                continue
            fresh = {
                "embeddings": ((self.model.random_state.rand(extra, d) - 0.5) / d).astype(np.float32),
                "embedding_gradients": np.full((extra, d), start, np.float32),
                "embedding_momentum": np.zeros((extra, d), np.float32),
                "biases": np.zeros(extra, np.float32), "bias_gradients": np.full(extra, start, np.float32),
                "bias_momentum": np.zeros(extra, np.float32),
            }
            for part, rows in fresh.items():
                name = f"{side}_{part}"
                setattr(self.model, name, np.concatenate([getattr(self.model, name), rows]))
        self._repr = {}

    def _factors(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        emb, bias = self.feature_factors(side)
        matrix = self.features[side]
        if matrix is None:
            return emb, bias
        if side not in self._repr:
            self._repr[side] = (np.ascontiguousarray(matrix @ emb, dtype=np.float32),
                                np.asarray(matrix @ bias, dtype=np.float32))
        return self._repr[side]

    def feature_factors(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings, biases) per feature: identity features first, then the metadata ones."""
        if side == "user":
            return self.model.user_embeddings, self.model.user_biases
        return self.model.item_embeddings, self.model.item_biases

    def user_factors(self) -> tuple[np.ndarray, np.ndarray]:
        return self._factors("user")

    def item_factors(self) -> tuple[np.ndarray, np.ndarray]:
        return self._factors("item")

    def describe(self) -> dict[str, Any]:
        out = {"epochs_trained": self._epochs_done, "no_components": self.model.no_components}
        for side, matrix in self.features.items():
            if matrix is not None:
                out[f"n_{side}_feature_embeddings"] = int(matrix.shape[1])
        return out

    @property
    def epochs(self) -> int:
        return self._epochs_done
