"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) on the `implicit` library, behind the handler interface.

The interaction matrix is the confidence matrix C: every positive pair's weight (repeats, the
`weight` column, or 1 for a rated pair above threshold) after the chosen `weighting`, times
`alpha`; missing pairs have confidence 1 and preference 0, as in the paper. A pair rated below
the threshold counts as `below_threshold_weight` of a positive. The default 0 learns from
positives only, as svd and popularity do and as implicit itself is given them; on the MovieLens
sample 0.3 was worth +4% precision@10 (a watched but unloved movie still predicts what a user
watches next), but where a low rating marks the other taste it blurs the groups, so it is left to
the user and to tune = true, which searches it. implicit's CPU model
(`implicit.cpu.als.AlternatingLeastSquares`, conjugate-gradient solver) does the fit; the
handler keeps only the two factor matrices, so scoring is sqlrec's own (U·V, biases zero) and a
stored model is plain arrays: loading and querying one does not even need implicit installed.

Names: sqlrec's (`no_components`, `epochs`) with implicit's (`factors`, `iterations`) accepted
as aliases, so early stopping, progress bars and learning curves read the same option for every
engine.

GPU: implicit's CUDA model (`implicit.gpu.als`) exists only in builds compiled with CUDA (the
PyPI wheel is CPU-only; `implicit.gpu.HAS_CUDA` says which). It trains the same model and hands
back factors through `.to_cpu()`; this handler uses the CPU model, which is what was tested.

implicit is an optional extra (`pip install 'sqlrec[als]'`, see pyproject.toml);
`check_available` turns its absence into an error naming the option.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlrec.lazy import sparse as sp

from sqlrec.engines.training_data import TrainingData
from sqlrec.errors import OptionError
from sqlrec.sql.options import Option
from sqlrec.engines.base import EpochCallback, FactorsWithoutBiases, Handler, below_threshold_option, interactions
from sqlrec.engines.space import COMPONENTS, Param

WEIGHTINGS = ("raw", "log1p", "bm25", "tfidf")

# Defaults measured on the MovieLens sample (ratings >= 4, per-user holdout, bench/README.md):
# implicit's own (100 factors, regularization 0.01, alpha 1: precision@10 0.122 on seed 1) rank
# below PureSVD (0.156); a grid on another seed (d 32-128, regularization 0.01-50, alpha 0.5-40)
# put the plateau at regularization / alpha ~ 10 (0.187 there), and 64 factors are as good as 128.
OPTIONS: tuple[Option, ...] = (
    Option("no_components", int, 64, "latent factors", low=1, high=4096, aliases=("factors",)),
    Option("regularization", float, 10.0, "L2 penalty on the factors", low=0.0),
    Option("alpha", float, 1.0, "confidence scale: confidence = alpha x (weighted) interaction value",
           low=0.0, low_open=True),
    Option("epochs", int, 15, "ALS iterations (each solves users, then items)", low=1, high=10_000,
           aliases=("iterations",)),
    Option("weighting", str, "raw", "interaction values before alpha: raw, log1p, bm25 or tfidf "
           "(implicit.nearest_neighbours' bm25_weight / tfidf_weight, per item)", choices=WEIGHTINGS),
    Option("bm25_k1", float, 100.0, "weighting = 'bm25': K1", low=0.0),
    Option("bm25_b", float, 0.8, "weighting = 'bm25': B", low=0.0, high=1.0),
    below_threshold_option(0.0),
)

# What tune = true searches, in the order of the m.trials columns: regularization and alpha
# around the measured plateau (regularization / alpha ~ 10 on MovieLens, see the defaults above).
SEARCH_SPACE: dict[str, Param] = {
    "no_components": Param("int", *COMPONENTS, log=True),
    "regularization": Param("float", 0.01, 100.0, log=True),
    "alpha": Param("float", 0.1, 50.0, log=True),
    "weighting": Param("choice", choices=WEIGHTINGS),
    "epochs": Param("int", 5, 40),
    "below_threshold_weight": Param("float", 0.0, 1.0),
}


def _implicit_als() -> Any:
    """implicit's CPU ALS class, or None when implicit is not installed."""
    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError:
        return None
    return AlternatingLeastSquares


def confidence(data: TrainingData, mask: np.ndarray, params: dict[str, Any]) -> sp.csr_matrix:
    """Users x items values of the pairs in `mask`, weighted as `params` say (before alpha)."""
    # Models stored before below_threshold_weight existed learned from positives only.
    matrix = interactions(data, mask, params.get("below_threshold_weight", 0.0))
    how = params["weighting"]
    if how == "log1p":
        matrix.data = np.log1p(matrix.data)
    elif how in ("bm25", "tfidf"):
        from implicit.nearest_neighbours import bm25_weight, tfidf_weight

        # implicit weights documents = rows; its examples weight the items x users matrix.
        items_users = matrix.T.tocsr()
        weighted = (bm25_weight(items_users, K1=params["bm25_k1"], B=params["bm25_b"]) if how == "bm25"
                    else tfidf_weight(items_users))
        matrix = sp.csr_matrix(weighted).T.tocsr()
    matrix.eliminate_zeros()
    return matrix.astype(np.float32)


class ALSHandler(FactorsWithoutBiases, Handler):
    """score(u, i) = U[u]·V[i]: the preference ALS reconstructs."""

    engine = "als"
    params_spec = OPTIONS
    search_space = SEARCH_SPACE
    recommender_types = ("user_item", "item_user", "item_item", "user_user")

    @classmethod
    def check_available(cls, where: str) -> None:
        if _implicit_als() is None:
            raise OptionError(f"{where}: option engine = 'als' needs the implicit library, which is not "
                              f"installed; install sqlrec[als] (pip install 'sqlrec[als]')")

    def __init__(self, params: dict[str, Any]):
        super().__init__(params)
        self._epochs_done = 0
        self._grams: dict[str, np.ndarray] = {}  # YᵀY of the other side's factors, per fold-in side
        self.user_vecs = self.item_vecs = np.zeros((0, int(params["no_components"])), np.float32)

    def fit(self, data: TrainingData, mask: np.ndarray, *, num_threads: int, on_epoch: EpochCallback) -> None:
        self.check_available("training engine 'als'")
        from threadpoolctl import threadpool_limits

        p, total = self.params, int(self.params["epochs"])
        self._grams = {}
        cui = confidence(data, mask, p)
        # implicit runs its own threads and asks for BLAS on one (else it warns and runs ~10x slower).
        with threadpool_limits(limits=1, user_api="blas"):
            model = _implicit_als()(factors=int(p["no_components"]), regularization=float(p["regularization"]),
                                    alpha=float(p["alpha"]), iterations=total, num_threads=int(num_threads),
                                    random_state=p.get("random_state"))

            def callback(iteration: int, seconds: float, loss: float | None) -> None:
                self.user_vecs, self.item_vecs = model.user_factors, model.item_factors
                self._epochs_done = iteration + 1
                on_epoch(iteration + 1, total)

            model.fit(cui, show_progress=False, callback=callback)
        self.user_vecs = np.ascontiguousarray(model.user_factors, np.float32)
        self.item_vecs = np.ascontiguousarray(model.item_factors, np.float32)

    def fold_in(self, side: str, targets: np.ndarray, positives: np.ndarray) -> np.ndarray:
        """One ALS half-step for the new id, the other side fixed: the normal equations implicit's
        `recalculate_user` solves (equal to float tolerance: tested), in numpy from the stored
        factors, so folding in needs no implicit. A given pair's value is 1 (log1p: log 2); bm25 and
        tfidf weight by training statistics that are not stored, so there it is 1 as well.
            u = (YᵀY + λI + Σ_i (c_i - 1) y_i y_iᵀ)⁻¹ Σ_i c_i y_i,   c_i = alpha × value
        (YᵀY over every target is the part of the confidence-1 missing pairs; cached per side.)"""
        y = np.asarray(targets, np.float64)
        if side not in self._grams:
            self._grams[side] = y.T @ y
        p = y[np.unique(np.asarray(positives, np.int64))]
        value = float(np.log1p(1.0)) if self.params["weighting"] == "log1p" else 1.0
        c = float(self.params["alpha"]) * value
        lhs = self._grams[side] + float(self.params["regularization"]) * np.eye(y.shape[1]) + (c - 1.0) * (p.T @ p)
        return np.linalg.solve(lhs, c * p.sum(axis=0)).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"user_vecs": self.user_vecs, "item_vecs": self.item_vecs}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> "ALSHandler":
        h = cls(params)
        h.user_vecs, h.item_vecs = arrays["user_vecs"], arrays["item_vecs"]
        h._epochs_done = int(params.get("epochs_trained", params["epochs"]))
        return h

    def describe(self) -> dict[str, Any]:
        return {"epochs_trained": self._epochs_done, "factors": int(self.user_vecs.shape[1])}

    @property
    def epochs(self) -> int:
        return self._epochs_done
