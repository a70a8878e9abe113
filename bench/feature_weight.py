"""Feature weighting on the MovieLens sample: do item features help, or drown the identity?

Item features are genres plus a generated tags-like multi-valued feature with counts (each movie
gets Poisson(12) tags from a 400-tag vocabulary with Zipf popularity, each with a count from a
geometric distribution), given in long format (movieId, feature, value). Lanes differ in the
options of sqlrec.ingest.features.weighting: LightFM's own scaling (every feature of a row alike) or
`feature_weight` (the metadata's share of a row), and `feature_values` raw / log.

Warm: precision@10 with evaluation = true, split = 'user' (per-user 20% holdout), against the
same model without features (target: features cost at most 2% of it). Cold: every rating of
20% of the movies held out, the cold movies ranked for each user from features alone (AUC, as
bench/coldstart.py). Reference: pure CF, whose cold AUC is 0.5 (the cold movies are unknown).

    python bench/feature_weight.py [--epochs 50 --seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402
from coldstart import ranked_metrics  # noqa: E402

import sqlrec  # noqa: E402
from sqlrec.frontend.demo import load_movielens  # noqa: E402

FEATURES = ("SELECT movieId, feature, value FROM (SELECT movieId, 'genre=' || unnest(string_split(genres, '|')) "
            "AS feature, 1.0 AS value FROM movies UNION ALL SELECT movieId, 'tag=' || tag, n FROM tags)")


def make_tags(con, seed: int) -> None:
    rng = np.random.default_rng(seed)
    movies = [r[0] for r in con.execute("SELECT movieId FROM movies ORDER BY movieId").fetchall()]
    popularity = 1.0 / np.arange(1, 401) ** 1.1
    popularity /= popularity.sum()
    rows = []
    for movie in movies:
        for tag in set(rng.choice(400, rng.poisson(12), p=popularity).tolist()):
            rows.append((movie, f"t{tag}", float(rng.geometric(0.3))))
    con.register("tags_df", pd.DataFrame(rows, columns=["movieId", "tag", "n"]))
    con.execute("CREATE OR REPLACE TABLE tags AS SELECT * FROM tags_df")
    con.unregister("tags_df")


def warm_p10(con, options: str, params: str) -> float:
    con.execute(f"CREATE OR REPLACE MODEL fw FROM ratings PREDICT movieId USING user_id = 'userId', "
                f"rating = 'rating', threshold = 4, evaluation = true, split = 'user', history = false, "
                f"{params}{options}")
    return con.execute("SELECT value FROM fw.metrics WHERE metric = 'precision_at_k'").fetchone()[0]


def cold_auc(con, options: str, params: str, seed: int) -> float:
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE cold_movies AS
          SELECT movieId FROM movies ORDER BY hash(movieId + {seed}) LIMIT (SELECT count(*) // 5 FROM movies);
        CREATE OR REPLACE TEMP TABLE train AS
          SELECT * FROM ratings WHERE movieId NOT IN (SELECT movieId FROM cold_movies);
    """)
    positives: dict[int, set[int]] = {}
    for user, item in con.execute(
            "SELECT userId, movieId FROM ratings WHERE rating >= 4 AND movieId IN (SELECT movieId FROM cold_movies) "
            "AND userId IN (SELECT userId FROM train)").fetchall():
        positives.setdefault(user, set()).add(item)
    n_cold = con.execute("SELECT count(*) FROM cold_movies").fetchone()[0]
    con.execute(f"CREATE OR REPLACE MODEL fwc FROM train PREDICT movieId USING user_id = 'userId', "
                f"rating = 'rating', threshold = 4, {params}{options}")
    rows = con.execute(f"SELECT userId, movieId, rank FROM fwc WHERE userId IN ({', '.join(map(str, positives))}) "
                       f"USING candidates = 'SELECT movieId FROM cold_movies', n_recommendations = {n_cold}").fetchall()
    return ranked_metrics(rows, positives, n_cold)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    params = f"epochs = {a.epochs}, random_state = {a.seed}, num_threads = 1, verbose = false"
    con = sqlrec.connect()
    load_movielens(con)
    make_tags(con, a.seed)
    n_tags = con.execute("SELECT count(*), count(DISTINCT tag) FROM tags").fetchone()
    feats = f", item_features = '{FEATURES.replace(chr(39), chr(39) * 2)}'"
    lanes = [("no features (pure CF)", "")]
    lanes += [(f"genres + tags, LightFM scaling, values {v}", f"{feats}, feature_values = '{v}'") for v in ("raw", "log")]
    lanes += [(f"genres + tags, feature_weight {w}, values log", f"{feats}, feature_weight = {w}, feature_values = 'log'")
              for w in (0.05, 0.1, 0.25, 0.5)]
    print(machine())
    print(f"MovieLens sample, ratings >= 4, LightFM warp, {params}; {n_tags[0]:,} tag rows, {n_tags[1]} tags\n")
    print("| item features | warm P@10 | vs no features | cold-item AUC | seconds |\n|---|---:|---:|---:|---:|")
    base = None
    for label, options in lanes:
        t0 = time.perf_counter()
        p10 = warm_p10(con, options, params)
        auc = cold_auc(con, options, params, a.seed) if options else 0.5
        base = p10 if base is None else base
        print(f"| {label} | {p10:.4f} | {p10 / base:.3f} | {auc:.3f} | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
