"""Spark against sqlrec in one process, in one run (issue 13, item 6): training (engine =
'spark_als' vs 'als') and every user's top-10 (EXPORT RECOMMENDATIONS vs COPY (SELECT * FROM m)
TO '...parquet'), both on the same synthetic interactions and written as Parquet alike.

Lanes are interleaved round robin (a load burst hits every lane alike); min and median of
--repeats. Spark runs on --master (default local[2]): on one machine it measures what Spark
costs, not what a cluster gains; the README's "When to move to Spark" reads these numbers.

    python bench/spark.py [--users 25000 --items 10000 --per-user 40 --repeats 3]
    python bench/spark.py --quality      # spark_als regularization / alpha on the MovieLens sample
    python bench/spark.py --memory als   # peak memory one CREATE MODEL adds, per pair
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402
from synth import create_interactions  # noqa: E402

import sqlrec  # noqa: E402
from sqlrec.spark import runtime as spark  # noqa: E402

RANK, ITERATIONS = 64, 10


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def table(title: str, times: dict[str, list[float]]) -> None:
    ref = min(next(iter(times.values())))
    print(f"\n{title}\n| lane | min s | median s | min vs ref |\n|---|---:|---:|---:|")
    for name, t in times.items():
        print(f"| {name} | {min(t):.2f} | {statistics.median(t):.2f} | {min(t) / ref:.2f}x |")


def scale(a: argparse.Namespace) -> None:
    con = sqlrec.connect()
    n = create_interactions(con, "events", a.users, a.items, a.per_user)
    shape = con.execute("SELECT count(DISTINCT user_id), count(DISTINCT item_id) FROM events").fetchone()
    print(f"{n:,} interactions, {shape[0]:,} users x {shape[1]:,} items, {RANK} factors, {ITERATIONS} iterations, "
          f"master {a.master}; item factors broadcast: {shape[1] * (RANK + 2) * 4 / 1e6:.1f} MB")
    started = timed(lambda: spark.get_session(a.master, "bench"))
    print(f"Spark session start (once per process): {started:.1f} s")
    common = f"user_id = 'user_id', no_components = {RANK}, epochs = {ITERATIONS}, random_state = 1"
    create = {
        "(ref) als in process (implicit, 2 threads)": f"engine = 'als', {common}",
        f"spark_als on {a.master}": f"engine = 'spark_als', spark_master = '{a.master}', {common}",
    }
    out = tempfile.mkdtemp(prefix="sqlrec-bench-spark-")
    export = {
        "(ref) COPY (SELECT * FROM m) TO 'x.parquet' in process":
            f"COPY (SELECT * FROM m) TO '{out}/local.parquet' (FORMAT parquet)",
        f"EXPORT RECOMMENDATIONS on {a.master}":
            f"EXPORT RECOMMENDATIONS m TO '{out}/spark' (FORMAT parquet, OVERWRITE, spark_master '{a.master}')",
    }
    times = {name: [] for name in [*create, *export]}
    for _ in range(a.repeats):
        for name, using in create.items():
            times[name].append(timed(lambda: con.execute(
                f"CREATE OR REPLACE MODEL {'s' if 'spark' in using else 'm'} FROM events PREDICT item_id USING {using}")))
        for name, sql in export.items():
            times[name].append(timed(lambda: con.execute(sql)))
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}/spark/*.parquet')").fetchone()[0]
    same = con.execute(f"SELECT count(*) FROM (SELECT * FROM read_parquet('{out}/spark/*.parquet') EXCEPT "
                       f"SELECT * FROM '{out}/local.parquet')").fetchone()[0]
    table("CREATE MODEL (DuckDB reads the data, then the fit)", {k: times[k] for k in create})
    table("Top-10 of every user written as Parquet", {k: times[k] for k in export})
    print(f"\n{rows:,} rows exported; rows not in the in-process output: {same}")
    shutil.rmtree(out)


def quality(a: argparse.Namespace) -> None:
    from sqlrec.frontend.demo import load_movielens

    con = sqlrec.connect()
    load_movielens(con)
    base = ("CREATE OR REPLACE MODEL q FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
            "threshold = 4, evaluation = true, split = 'user', random_state = 1, history = false, ")
    grid = [("als defaults", "engine = 'als'")]
    grid += [(f"spark_als regParam {r:g}, alpha {al:g}",
              f"engine = 'spark_als', spark_master = '{a.master}', regularization = {r}, alpha = {al}")
             for al in (1.0, 10.0) for r in (0.01, 0.05, 0.1, 0.3, 1.0)]
    print("\n| model | precision@10 | NDCG@10 | AUC | create s |\n|---|---:|---:|---:|---:|")
    for name, using in grid:
        seconds = timed(lambda: con.execute(base + using))
        m = dict(con.execute("SELECT metric, value FROM q.metrics").fetchall())
        print(f"| {name} | {m['precision_at_k']:.4f} | {m['ndcg_at_k']:.4f} | {m['auc']:.4f} | {seconds:.1f} |")


def memory(a: argparse.Namespace) -> None:
    """Peak resident memory a CREATE MODEL adds to this (fresh) process, per training pair."""
    import resource

    con = sqlrec.connect()
    n = create_interactions(con, "events", a.users, a.items, a.per_user)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    master = f", spark_master = '{a.master}'" if a.memory == "spark_als" else ""
    con.execute(f"CREATE MODEL m FROM events PREDICT item_id USING engine = '{a.memory}', user_id = 'user_id', "
                f"no_components = {RANK}, epochs = {ITERATIONS}{master}")
    added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    print(f"{a.memory}: {n:,} pairs, peak RSS {before:.0f} MB before CREATE MODEL, +{added:.0f} MB during it "
          f"({added * 2**20 / n:.0f} bytes a pair; this process only, not Spark's JVM)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=25_000)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--per-user", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--quality", action="store_true", help="the MovieLens grid instead of the timings")
    ap.add_argument("--memory", choices=("als", "spark_als"), help="peak memory of one CREATE MODEL instead")
    a = ap.parse_args()
    print(machine())
    print("load:", os.getloadavg())
    quality(a) if a.quality else memory(a) if a.memory else scale(a)
    print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
