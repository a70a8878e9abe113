"""FINETUNE vs RETRAIN (issue 11) — `python bench/lifecycle.py [--synthetic N]`.

MovieLens sample ordered by time: CREATE on the first 90%, then (a) FINETUNE on the next 5%
(replay off and on), (b) RETRAIN on the first 95%; both evaluated on the last 5% with EVALUATE
MODEL (precision@10, recall@10, AUC). Also: the share of test users and items new in the 5%,
and whether the new users of the 5% get personalised (not popularity) top-10s after FINETUNE.
With --synthetic N: the same timing on N generated interactions (bench/synth.py's generator).
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

USING = "user_id = 'userId', rating = 'rating', threshold = 4, verbose = false, random_state = 7"


def split(con, table: str, ts: str) -> None:
    con.execute(f"CREATE OR REPLACE TABLE ordered AS SELECT *, row_number() OVER (ORDER BY {ts}, userId, movieId) "
                f"AS _n, count(*) OVER () AS _total FROM {table}")
    for name, lo, hi in (("first90", 0, 0.90), ("next5", 0.90, 0.95), ("first95", 0, 0.95), ("last5", 0.95, 1.0)):
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * EXCLUDE (_n, _total) FROM ordered "
                    f"WHERE _n > {lo} * _total AND _n <= {hi} * _total")


def timed(con, sql: str) -> float:
    t0 = time.perf_counter()
    con.execute(sql).fetchall()
    return time.perf_counter() - t0


def evaluate(con, model: str) -> tuple:
    row = con.execute(f"EVALUATE MODEL {model} FROM last5").df().iloc[0]
    return row["precision_at_k"], row["recall_at_k"], row["auc"]


def personalised_share(con, model: str) -> float:
    """Share of the 5%'s new users whose top-10 differs from the popularity top-10."""
    top = [r[0] for r in con.execute(f"SELECT movieId FROM {model} WHERE userId = -1 ORDER BY rank").fetchall()]
    rows = con.execute(f"SELECT userId, list(movieId ORDER BY rank) FROM {model} WHERE userId IN "
                       f"(SELECT userId FROM next5 EXCEPT SELECT userId FROM first90) GROUP BY userId").fetchall()
    return sum(r[1] != top for r in rows) / max(len(rows), 1)


def run(con, using: str, epochs: int) -> None:
    new_u = con.execute("SELECT (SELECT count(DISTINCT userId) FROM last5 WHERE userId NOT IN (SELECT userId FROM "
                        "first90)) / count(DISTINCT userId) FROM last5").fetchone()[0]
    new_i = con.execute("SELECT (SELECT count(DISTINCT movieId) FROM last5 WHERE movieId NOT IN (SELECT movieId "
                        "FROM first90)) / count(DISTINCT movieId) FROM last5").fetchone()[0]
    print(f"test (last 5%): {new_u:.1%} of its users and {new_i:.1%} of its items are not in the first 90%\n")
    print("| lane | seconds | precision@10 | recall@10 | AUC | new users of the 5% personalised |")
    print("|---|---:|---:|---:|---:|---:|")
    create = timed(con, f"CREATE OR REPLACE MODEL base FROM first90 PREDICT movieId USING {using}")
    print(f"| CREATE on first 90% (reference) | {create:.2f} | "
          + " | ".join(f"{v:.4f}" for v in evaluate(con, "base")) + " | - |")
    retrain = 0.0
    for name, how in (("retrain", "RETRAIN m FROM first95"),
                      ("finetune", f"FINETUNE m FROM next5 USING epochs = {epochs}"),
                      ("finetune_replay", f"FINETUNE m FROM next5 USING epochs = {epochs}, replay = 0.1")):
        con.execute(f"CREATE OR REPLACE MODEL {name} FROM first90 PREDICT movieId USING {using}")
        seconds = timed(con, how.replace(" m ", f" {name} "))
        retrain = retrain or seconds
        p, r, a = evaluate(con, name)
        print(f"| {how} | {seconds:.2f} ({retrain / seconds:.1f}x faster than RETRAIN) | {p:.4f} | {r:.4f} | "
              f"{a:.4f} | {personalised_share(con, name):.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--synthetic", type=int, default=0, help="interactions of a generated data set")
    parser.add_argument("--epochs", type=int, default=5, help="FINETUNE epochs")
    args = parser.parse_args()
    print(machine())
    con = sqlrec.connect()
    if args.synthetic:
        users = args.synthetic // 50
        con.execute(f"SELECT setseed(0.042)")
        con.execute(f"CREATE TABLE ratings AS SELECT DISTINCT u AS userId, CAST(floor(20000 * pow(random(), 2.5)) "
                    f"AS BIGINT) AS movieId, 5.0 AS rating, u * 57 + j AS ts FROM range({users}) r(u), range(58) k(j)")
        n = con.execute("SELECT count(*) FROM ratings").fetchone()[0]
        print(f"synthetic: {n:,} interactions, {users:,} users (timestamps interleave users: the last 5% holds "
              "mostly new users)\n")
        split(con, "ratings", "ts")
        run(con, USING + ", no_components = 32, epochs = 10", args.epochs)
    else:
        load_movielens(con)
        print(f"MovieLens sample: {con.execute('SELECT count(*) FROM ratings').fetchone()[0]:,} ratings\n")
        split(con, "ratings", "rated_at")
        run(con, USING, args.epochs)


if __name__ == "__main__":
    main()
