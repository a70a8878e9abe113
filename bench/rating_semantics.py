"""What `rating` without `threshold` should mean: precision@10 of the candidate readings.

The MovieLens sample, a per-user 20% holdout of all rated pairs (seeded, drawn in SQL); the
test positives are the held-out ratings >= 4 (what a user liked), ranked among the items the
user did not rate in training, through EVALUATE MODEL ... FROM. Candidates train on the same
training rows:

  ignored     rating given but unused: every rated pair one positive (sqlrec before issue 10)
  weights     every rated pair a positive weighted by its rating (weight = 'rating')
  midpoint    rating >= the scale's midpoint ((min + max) / 2) positives, the rest seen only
  threshold 4 the explicit choice the benchmarks make (rating >= 4), for reference

    python bench/rating_semantics.py [--seeds 1 2] [--engines lightfm als]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402

import sqlrec  # noqa: E402
from sqlrec.frontend.demo import load_movielens  # noqa: E402

COMMON = "user_id = 'userId', verbose = false, num_threads = 1"


def candidates(midpoint: float) -> list[tuple[str, str]]:
    return [("ignored", "item_id = 'movieId'"),
            ("weights", "weight = 'rating'"),
            (f"midpoint ({midpoint:g})", f"rating = 'rating', threshold = {midpoint!r}"),
            ("threshold 4", "rating = 'rating', threshold = 4")]


def split(con: sqlrec.Connection, seed: int) -> None:
    """train / test: per user, the 20% of rated pairs with the smallest seeded hash are held out."""
    con.execute(f"""CREATE OR REPLACE TABLE ranked AS SELECT *,
        row_number() OVER (PARTITION BY userId ORDER BY hash(userId, movieId, {seed})) AS r,
        count(*) OVER (PARTITION BY userId) AS n FROM ratings""")
    con.execute("CREATE OR REPLACE TABLE train AS SELECT userId, movieId, rating FROM ranked WHERE r > n * 0.2")
    con.execute("CREATE OR REPLACE TABLE test AS SELECT userId, movieId, rating FROM ranked WHERE r <= n * 0.2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--engines", nargs="+", default=["lightfm", "als"])
    args = ap.parse_args()
    con = sqlrec.connect()
    load_movielens(con)
    lo, hi = con.execute("SELECT min(rating), max(rating) FROM ratings").fetchone()
    print(machine())
    print(f"| engine | reading | precision@10 | recall@10 | AUC | train s |  (mean of seeds {args.seeds})")
    print("|---|---|---:|---:|---:|---:|")
    for engine in args.engines:
        for label, opts in candidates((lo + hi) / 2):
            rows = []
            for seed in args.seeds:
                split(con, seed)
                t0 = time.perf_counter()
                con.execute(f"CREATE OR REPLACE MODEL m FROM train PREDICT movieId USING engine = '{engine}', "
                            f"{COMMON}, random_state = {seed}, {opts}")
                seconds = time.perf_counter() - t0
                got = con.execute("EVALUATE MODEL m FROM (SELECT userId, movieId FROM test WHERE rating >= 4) "
                                  "USING k = 10").df().iloc[0]
                rows.append((got["precision_at_k"], got["recall_at_k"], got["auc"], seconds))
            mean = [sum(c) / len(c) for c in zip(*rows)]
            print(f"| {engine} | {label} | {mean[0]:.4f} | {mean[1]:.4f} | {mean[2]:.4f} | {mean[3]:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
