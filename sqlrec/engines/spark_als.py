"""Spark MLlib's ALS (engine = 'spark_als'): the factors are learnt on a Spark cluster and come
back as two matrices, stored and scored exactly like engine 'als'.

sqlrec reads the training query in DuckDB as for every engine (id maps, duplicates, threshold:
sqlrec.ingest.data) and hands Spark only integer pairs: (user index, item index, value) as an Arrow
table, so Spark's ids are sqlrec's own dense indices and the factors it returns
(`userFactors` / `itemFactors`, one row per index) are put back in index order. An index
Spark has no row for (a user whose pairs were all held out) gets a zero vector. What is stored
is plain arrays: querying, DESCRIBE, EVALUATE, embeddings and batch joins never start Spark.

implicit_prefs = true (the default) is Hu, Koren & Volinsky's implicit feedback, as engine
'als': every positive pair's value (repeats, the `weight` column, or 1 for a rated pair above
threshold) is a confidence 1 + alpha x value. implicit_prefs = false fits the rating values of
every rated pair (option rating needed), and pair scores then predict ratings.

Names: sqlrec's (`no_components`, `epochs`, `regularization`) with Spark's (`rank`, `maxIter`,
`regParam`, `implicitPrefs`) accepted as aliases. Unlike the implicit library, Spark scales
regParam by each user's and item's number of interactions (ALS-WR), so the two engines'
regularization values are not comparable.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from sqlrec.engines.training_data import TrainingData
from sqlrec.errors import OptionError
from sqlrec.sql.options import Option
from sqlrec.spark import runtime as spark
from sqlrec.engines.base import EpochCallback, FactorsWithoutBiases, Handler

WHAT = "option engine = 'spark_als'"

# Defaults: Spark's own (rank 10, regParam 0.1, maxIter 10) with the factor count of engine
# 'als'; regParam measured on the MovieLens sample (bench/README.md, spark_als).
OPTIONS: tuple[Option, ...] = (
    Option("no_components", int, 64, "latent factors (Spark's rank)", low=1, high=4096, aliases=("factors", "rank")),
    Option("regularization", float, 0.1, "L2 penalty, scaled by each row's number of interactions (Spark's "
           "regParam)", low=0.0, aliases=("regparam", "reg_param")),
    Option("alpha", float, 1.0, "implicit_prefs: confidence = 1 + alpha x interaction value", low=0.0),
    Option("epochs", int, 10, "ALS iterations (Spark's maxIter)", low=1, high=10_000,
           aliases=("iterations", "maxiter", "max_iter")),
    Option("implicit_prefs", bool, True, "true: interaction values are confidences (implicit feedback); false: "
           "fit the rating values (needs option rating)", aliases=("implicitprefs",)),
    Option("nonnegative", bool, False, "non-negative factors (Spark's nonnegative)"),
    Option("num_blocks", int, None, "blocks each side is split into (Spark's numUserBlocks / numItemBlocks; "
           "default: the session's default parallelism)", low=1, high=100_000),
    Option("spark_master", str, None, f"Spark master URL (default: ${spark.MASTER_ENV}, else "
           f"'{spark.DEFAULT_MASTER}')"),
)


def training_pairs(data: TrainingData, mask: np.ndarray, implicit: bool) -> pa.Table:
    """(user, item, value) of the pairs Spark learns from, as sqlrec's integer indices."""
    if implicit:
        keep = mask & data.positive
        values = data.weight[keep]
    else:
        if data.rating is None:
            raise OptionError(f"{WHAT}: implicit_prefs = false fits rating values and needs option rating "
                              f"(the column holding them, e.g. rating = 'rating')")
        keep = mask
        values = data.rating[keep]
    return pa.table({"user": pa.array(data.rows[keep], pa.int32()), "item": pa.array(data.cols[keep], pa.int32()),
                     "value": pa.array(np.asarray(values, np.float32))})


def collect_factors(frame: Any, n: int, rank: int) -> np.ndarray:
    """Spark's (id, features) factor rows as an (n, rank) float32 matrix in index order; ids
    without a row get zeros."""
    table = frame.toArrow()
    ids = np.asarray(table.column("id").to_numpy(), np.int64)
    values = table.column("features").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    out = np.zeros((n, rank), np.float32)
    out[ids] = np.asarray(values, np.float32).reshape(len(ids), rank)
    return out


class SparkALSHandler(FactorsWithoutBiases, Handler):
    """score(u, i) = U[u]·V[i], with U and V learnt by Spark MLlib's ALS."""

    engine = "spark_als"
    params_spec = OPTIONS
    recommender_types = ("user_item", "item_user", "item_item", "user_user")
    # No search space: each trial would be a Spark job (seconds of scheduling even for small
    # data); one trial with the given parameters.

    @classmethod
    def check_available(cls, where: str) -> None:
        spark.check_available(WHAT, where)

    @classmethod
    def learns_ratings(cls, params: dict[str, Any]) -> bool:
        return params.get("implicit_prefs") is False

    def __init__(self, params: dict[str, Any]):
        super().__init__(params)
        self.user_vecs = self.item_vecs = np.zeros((0, int(params["no_components"])), np.float32)
        self.range = np.zeros(2, np.float32)
        self._grams: dict[str, np.ndarray] = {}  # YᵀY of the other side's factors, per fold-in side

    def fit(self, data: TrainingData, mask: np.ndarray, *, num_threads: int, on_epoch: EpochCallback) -> None:
        where = "training engine 'spark_als'"
        self.check_available(where)
        p, rank, total = self.params, int(self.params["no_components"]), int(self.params["epochs"])
        self._grams = {}
        pairs = training_pairs(data, mask, bool(p["implicit_prefs"]))
        values = pairs.column("value").to_numpy()
        self.range = np.array([values.min(), values.max()] if len(values) else [0, 0], np.float32)
        master = spark.resolve_master(p.get("spark_master"), where)
        session = spark.get_session(master, where)
        with spark.spark_errors(f"{where} on {master!r}"):
            from pyspark.ml.recommendation import ALS

            blocks = int(p.get("num_blocks") or session.sparkContext.defaultParallelism)
            seed = p.get("random_state")
            als = ALS(rank=rank, maxIter=total, regParam=float(p["regularization"]), alpha=float(p["alpha"]),
                      implicitPrefs=bool(p["implicit_prefs"]), nonnegative=bool(p["nonnegative"]),
                      numUserBlocks=blocks, numItemBlocks=blocks, userCol="user", itemCol="item",
                      ratingCol="value", **({} if seed is None else {"seed": int(seed)}))
            fitted = als.fit(session.createDataFrame(pairs))
            self.user_vecs = collect_factors(fitted.userFactors, data.shape[0], rank)
            self.item_vecs = collect_factors(fitted.itemFactors, data.shape[1], rank)
        on_epoch(total, total)  # Spark runs all iterations as one job: no per-epoch callback

    def fold_in(self, side: str, targets: np.ndarray, positives: np.ndarray) -> np.ndarray | None:
        """The half-step Spark's implicit ALS takes for one row, the other side fixed, each given
        pair of value 1 (confidence 1 + alpha), regParam scaled by the row's count as Spark does
        (equal to float tolerance to Spark's own last user step: tested):
            u = (YᵀY + alpha Σ_i y_i y_iᵀ + λ n I)⁻¹ (1 + alpha) Σ_i y_i
        Explicit models (the ratings are not given) and nonnegative ones (Spark solves NNLS) fold
        in by sqlrec's generic closed form instead."""
        if self.learns_ratings(self.params) or self.params["nonnegative"]:
            return None
        y = np.asarray(targets, np.float64)
        if side not in self._grams:
            self._grams[side] = y.T @ y
        p = y[np.unique(np.asarray(positives, np.int64))]
        alpha, reg = float(self.params["alpha"]), float(self.params["regularization"])
        lhs = self._grams[side] + alpha * (p.T @ p) + reg * len(p) * np.eye(y.shape[1])
        return np.linalg.solve(lhs, (1.0 + alpha) * p.sum(axis=0)).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"user_vecs": self.user_vecs, "item_vecs": self.item_vecs, "value_range": self.range}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> "SparkALSHandler":
        h = cls(params)
        h.user_vecs, h.item_vecs, h.range = arrays["user_vecs"], arrays["item_vecs"], arrays["value_range"]
        return h

    def rating_range(self) -> tuple[float, float] | None:
        return (float(self.range[0]), float(self.range[1])) if self.learns_ratings(self.params) else None

    def describe(self) -> dict[str, Any]:
        return {"epochs_trained": int(self.params.get("epochs_trained", self.params["epochs"])),
                "factors": int(self.user_vecs.shape[1]),
                "feedback": "explicit" if self.learns_ratings(self.params) else "implicit"}

    @property
    def epochs(self) -> int:
        return int(self.params["epochs"])
