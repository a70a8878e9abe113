"""Rating prediction: RMSE / MAE of engine = 'explicit' against Surprise's baselines.

The MovieLens sample, a seeded 20% random split of the rated pairs drawn in SQL; test rows
whose user or item is not in train are dropped (every lane then predicts the same rows).
Lanes, all trained on the same train rows and scored on the same test rows:

  global mean    the train ratings' mean for every pair
  BaselineOnly   μ + b_u + b_i by Surprise's ALS formula (reg_i 10, reg_u 15, 10 epochs), numpy
  Surprise SVD   surprise.SVD() defaults (only when scikit-surprise is installed)
  sqlrec         CREATE MODEL ... USING engine = 'explicit' (defaults), EVALUATE MODEL ... FROM test

    python bench/rating.py [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402

import sqlrec  # noqa: E402
from sqlrec.frontend.demo import load_movielens  # noqa: E402


def split(con: sqlrec.Connection, seed: int) -> None:
    con.execute(f"CREATE OR REPLACE TABLE s AS SELECT userId, movieId, rating, "
                f"hash(userId, movieId, {seed}) % 5 = 0 AS test FROM ratings")
    con.execute("CREATE OR REPLACE TABLE train AS SELECT userId, movieId, rating FROM s WHERE NOT test")
    con.execute("CREATE OR REPLACE TABLE test AS SELECT userId, movieId, rating FROM s WHERE test "
                "AND userId IN (SELECT userId FROM train) AND movieId IN (SELECT movieId FROM train)")


def errors(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    err = np.asarray(pred, np.float64) - truth
    return float(np.sqrt(np.mean(err ** 2))), float(np.mean(np.abs(err)))


def baseline_only(train, test, epochs: int = 10, reg_u: float = 15.0, reg_i: float = 10.0) -> np.ndarray:
    """Surprise's BaselineOnly (method 'als'): alternate the closed-form bias updates."""
    users, items = np.unique(train.userId, return_inverse=True), np.unique(train.movieId, return_inverse=True)
    u, i, r = users[1], items[1], train.rating.to_numpy(np.float64)
    mu = r.mean()
    bu, bi = np.zeros(len(users[0])), np.zeros(len(items[0]))
    for _ in range(epochs):
        bi = np.bincount(i, r - mu - bu[u], len(bi)) / (reg_i + np.bincount(i, minlength=len(bi)))
        bu = np.bincount(u, r - mu - bi[i], len(bu)) / (reg_u + np.bincount(u, minlength=len(bu)))
    tu, ti = np.searchsorted(users[0], test.userId), np.searchsorted(items[0], test.movieId)
    return np.clip(mu + bu[tu] + bi[ti], r.min(), r.max())


def surprise_svd(train, test, seed: int) -> np.ndarray | None:
    try:
        from surprise import SVD, Dataset, Reader
    except ImportError:
        return None
    data = Dataset.load_from_df(train[["userId", "movieId", "rating"]], Reader(rating_scale=(0.5, 5.0)))
    algo = SVD(random_state=seed)
    algo.fit(data.build_full_trainset())
    return np.array([algo.predict(u, i).est for u, i in zip(test.userId, test.movieId)])


def run(con: sqlrec.Connection, seed: int) -> dict[str, tuple[float, float, float]]:
    split(con, seed)
    train, test = con.execute("SELECT * FROM train").df(), con.execute("SELECT * FROM test").df()
    truth = test.rating.to_numpy(np.float64)
    out = {"global mean": (*errors(np.full(len(truth), train.rating.mean()), truth), 0.0)}
    t0 = time.perf_counter()
    out["BaselineOnly (Surprise's formula)"] = (*errors(baseline_only(train, test), truth), time.perf_counter() - t0)
    t0 = time.perf_counter()
    svd = surprise_svd(train, test, seed)
    if svd is not None:
        out["Surprise SVD (defaults)"] = (*errors(svd, truth), time.perf_counter() - t0)
    t0 = time.perf_counter()
    con.execute("CREATE OR REPLACE MODEL stars FROM train PREDICT movieId USING engine = 'explicit', "
                f"user_id = 'userId', rating = 'rating', random_state = {seed}, verbose = false")
    seconds = time.perf_counter() - t0
    got = con.execute("EVALUATE MODEL stars FROM test").df().iloc[0]
    out["sqlrec engine = 'explicit'"] = (float(got["rmse"]), float(got["mae"]), seconds)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    con = sqlrec.connect()
    load_movielens(con)
    runs = [run(con, s) for s in args.seeds]
    print(machine())
    print(f"| lane | RMSE | MAE | RMSE vs BaselineOnly | fit s |  (mean of seeds {args.seeds})")
    print("|---|---:|---:|---:|---:|")
    base = np.mean([r["BaselineOnly (Surprise's formula)"][0] for r in runs])
    for lane in runs[0]:
        rmse, mae, secs = (float(np.mean([r[lane][j] for r in runs])) for j in range(3))
        print(f"| {lane} | {rmse:.4f} | {mae:.4f} | {rmse / base:.3f} | {secs:.2f} |")


if __name__ == "__main__":
    main()
