"""How the LightFM defaults were chosen: a grid on the MovieLens sample, measured through SQL.

Ratings >= 4 are positives; 20% held out at random; precision@10, recall@10 and AUC with train
items excluded, averaged over three seeds (each seed changes the split and the initialisation:
one split alone ranks configurations that differ by less than its noise); popularity as the
floor. Prints one table, best first.

    python bench/defaults.py                      # the grid below
    python bench/defaults.py --loss warp --no-components 64 96 --epochs 50 80 --learning-rate 0.025
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402

import sqlrec  # noqa: E402
from sqlrec.frontend.demo import load_movielens  # noqa: E402

GRID = {
    "loss": ["warp", "bpr"],
    "no_components": [16, 32, 48, 64],
    "epochs": [10, 20, 30, 50],
    "learning_rate": [0.025, 0.05, 0.1],
}
SEEDS = (1, 2, 3)
BASE = ("user_id = 'userId', rating = 'rating', threshold = 4, evaluation = true, "
        "num_threads = 2, verbose = false")


def scores(con, model: str) -> tuple[float, float, float, float]:
    m = dict(con.execute(f"SELECT metric, value FROM {model}.metrics").fetchall())
    secs = float(dict(con.execute(f"SELECT * FROM {model}.info").fetchall())["train_seconds"])
    return m["precision_at_k"], m["recall_at_k"], m["auc"], secs


def mean_scores(con, using: str) -> tuple[float, float, float, float]:
    runs = []
    for seed in SEEDS:
        con.execute(f"CREATE OR REPLACE MODEL m FROM ratings PREDICT movieId "
                    f"USING {BASE}, random_state = {seed}, {using}")
        runs.append(scores(con, "m"))
    return tuple(sum(r[i] for r in runs) / len(runs) for i in range(4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for key, values in GRID.items():
        parser.add_argument("--" + key.replace("_", "-"), nargs="+", type=type(values[0]), default=values)
    args = vars(parser.parse_args())
    grid = [args[key] for key in GRID]
    con = sqlrec.connect()
    load_movielens(con)
    results = [("popularity", "-", "-", "-", *mean_scores(con, "engine = 'popularity'"))]
    for loss, comps, epochs, lr in itertools.product(*grid):
        using = f"loss = '{loss}', no_components = {comps}, epochs = {epochs}, learning_rate = {lr}"
        results.append((loss, comps, epochs, lr, *mean_scores(con, using)))
    print(f"# LightFM grid on the MovieLens sample, mean of seeds {SEEDS} — {machine()}")
    print("| loss | no_components | epochs | learning_rate | precision@10 | recall@10 | AUC | train s (incl. eval) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in sorted(results, key=lambda r: -r[4]):
        print("| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
