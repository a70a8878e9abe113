"""Top-10 for every user (user_item over all users, seen items excluded): sqlrec vs the
MindsDB-handler path and vs a bare numpy bound, in one run on the same factors.

Same factors in every lane: the model is trained once with CREATE MODEL over the synthetic
interactions, then loaded back from the catalog; the user/item embeddings and biases the SQL
path scores with (handler.user_factors() / item_factors()) are the arrays every numpy lane
uses, and the LightFM object behind the handler (rebuilt from the stored arrays) is the one
whose ``predict`` the MindsDB lane calls. The seen matrix is the stored model's too.

Lanes:
  (a) MindsDB's lightfm handler: ``LightFM.predict`` over every (user, item) pair, then a sort
      per user. Made generous: all cores for predict (MindsDB passes none, so 1), a numpy
      ``argsort`` per user instead of its pandas groupby/sort_values, seen items masked. It
      is slow, so it runs on a sample of users and is extrapolated linearly (both passes are
      per-user work: predict is per pair, the sort per row), as the table says.
  (b) the GEMMs alone, chunk by chunk into one buffer: the floor.
  (c) bare numpy bound, per chunk: one GEMM, add biases, mask seen (-inf),
      ``np.argpartition(scores, n - k)`` and sort the k.
  (d) as (c) with the naive ``np.argpartition(-scores, k)``.
  (e) ``sqlrec.numeric.scoring.top_k`` on the arrays directly, on one thread (BLAS multi-threaded, as
      in the numpy lanes) and with its default of a worker per core (BLAS one thread per call).
  (f) relation build alone: ``Model.recommend`` (top_k plus the Arrow table with ids).
  (g) SQL end to end: ``SELECT * FROM m`` through ``sqlrec.connect``, fetched as Arrow.
Lanes (b)-(d) use sqlrec's chunk height (``scoring.chunk_rows``) so the comparison is per
same-sized chunk; like plain numpy they select on one core, so the one-thread top_k lane is
the like-for-like one and the multi-thread lanes show what sqlrec adds. Each time is the best
of ``--repeats`` runs, taken round robin over the lanes. The script also checks that sqlrec
returns the bound's top-k and the same top-k sets as ``predict`` on the sample.

Targets: SQL >= 10x faster than the MindsDB path; SQL, and top_k on one thread, <= 1.5x the
numpy bound.

    python bench/topn.py [--users 5000 --items 20000 --per-user 50 --components 64 --sample 200]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(__file__))
from _common import best_of, implicit_interactions, machine  # noqa: E402

import sqlrec  # noqa: E402
from sqlrec.numeric import scoring  # noqa: E402


def chunks(m: int, rows: int):
    for a in range(0, m, rows):
        yield a, min(a + rows, m)


def gemm_only(uv, iv, rows: int) -> None:
    buf = np.empty((rows, len(iv)), np.float32)
    ivt = iv.T
    for a, b in chunks(len(uv), rows):
        np.matmul(uv[a:b], ivt, out=buf[: b - a])


def numpy_bound(uv, ub, iv, ib, seen, k: int, rows: int, naive: bool = False) -> np.ndarray:
    n = len(iv)
    out = np.empty((len(uv), k), np.int64)
    buf = np.empty((rows, n), np.float32)
    ivt = iv.T
    for a, b in chunks(len(uv), rows):
        s = buf[: b - a]
        np.matmul(uv[a:b], ivt, out=s)
        s += ub[a:b, None]
        s += ib[None, :]
        lo, hi = seen.indptr[a], seen.indptr[b]
        r = np.repeat(np.arange(b - a), np.diff(seen.indptr[a:b + 1]))
        s.reshape(-1)[r * n + seen.indices[lo:hi]] = -np.inf
        if naive:
            top = np.argpartition(-s, k, axis=1)[:, :k]
        else:
            top = np.argpartition(s, n - k, axis=1)[:, n - k:]
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1)
        out[a:b] = np.take_along_axis(top, order, axis=1)
    return out


def mindsdb_path(lfm, users: np.ndarray, n_items: int, seen, k: int, threads: int) -> np.ndarray:
    """Per-pair predict for every (user, item), then argsort per user (the handler's algorithm)."""
    user_idx = np.repeat(users.astype(np.int32), n_items)
    item_idx = np.tile(np.arange(n_items, dtype=np.int32), len(users))
    scores = lfm.predict(user_idx, item_idx, num_threads=threads).reshape(len(users), n_items)
    sub = seen[users]
    scores[np.repeat(np.arange(len(users)), np.diff(sub.indptr)), sub.indices] = -np.inf
    return np.argsort(-scores, axis=1)[:, :k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--users", type=int, default=5_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--per-user", type=float, default=50, help="mean distinct items per user")
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3, help="training epochs (factors only need to be realistic)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sample", type=int, default=200, help="users timed in the MindsDB lane (0 = all)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()

    inter = implicit_interactions(a.users, a.items, a.per_user).tocoo()
    con = sqlrec.connect()
    con.register("inter_src", pa.table({"user_id": inter.row.astype(np.int64), "item_id": inter.col.astype(np.int64)}))
    con.execute("CREATE TABLE inter AS SELECT * FROM inter_src")
    con.execute(f"CREATE MODEL m FROM inter PREDICT item_id USING user_id = 'user_id', epochs = {a.epochs}, "
                f"no_components = {a.components}, num_threads = {a.threads}, random_state = 0, verbose = false")
    model = con.router.model("m")
    uv, ub = (np.ascontiguousarray(x, np.float32) for x in model.handler.user_factors())
    iv, ib = (np.ascontiguousarray(x, np.float32) for x in model.handler.item_factors())
    seen, lfm, k = model.seen, model.handler.model, a.k
    m, n = len(uv), len(iv)
    rows = scoring.chunk_rows(n)

    rng = np.random.default_rng(0)
    sample = np.arange(m) if a.sample <= 0 or a.sample >= m else np.sort(rng.choice(m, a.sample, replace=False))
    scale = m / len(sample)  # the MindsDB lane is timed on the sample and extrapolated linearly
    sampled = "all users" if len(sample) == m else f"timed on {len(sample):,} users, x{scale:.0f} linear"
    lanes = {
        f"(a) MindsDB path: LightFM.predict per pair + argsort per user ({sampled})":
            lambda: mindsdb_path(lfm, sample, n, seen, k, a.threads),
        "(b) GEMMs alone (floor)": lambda: gemm_only(uv, iv, rows),
        "(c) numpy bound: GEMM + biases + mask + argpartition(s, n-k) + sort k":
            lambda: numpy_bound(uv, ub, iv, ib, seen, k, rows),
        "(d) naive: same with argpartition(-s, k)": lambda: numpy_bound(uv, ub, iv, ib, seen, k, rows, naive=True),
        "(e1) sqlrec.numeric.scoring.top_k, num_threads=1":
            lambda: scoring.top_k(uv, ub, iv, ib, k, exclude=seen, num_threads=1),
        f"(e) sqlrec.numeric.scoring.top_k, default ({scoring.usable_cores()} threads)":
            lambda: scoring.top_k(uv, ub, iv, ib, k, exclude=seen),
        "(f) sqlrec relation build (Model.recommend -> Arrow)":
            lambda: model.recommend("user_item", None, k, exclude_seen=True),
        "(g) sqlrec SQL: SELECT * FROM m (.arrow())": lambda: con.execute("SELECT * FROM m").arrow(),
    }
    # Round robin, best of each: a burst of load from other processes then hits one run of
    # every lane alike instead of all runs of one lane, so the ratios stay comparable.
    best = dict.fromkeys(lanes, float("inf"))
    for _ in range(a.repeats):
        for name, fn in lanes.items():
            best[name] = min(best[name], best_of(fn, 1))
    best[next(iter(lanes))] *= scale
    t_mdb, t_gemm, t_bound, _, t_topk1, _, _, t_sql = best.values()

    # Same answers: sqlrec vs the bound (ties aside) and vs predict on the sample.
    mdb = mindsdb_path(lfm, sample, n, seen, k, a.threads)
    got, _ = scoring.top_k(uv, ub, iv, ib, k, exclude=seen)
    bound = numpy_bound(uv, ub, iv, ib, seen, k, rows)
    agree_bound = float((got == bound).all(axis=1).mean())
    agree_mdb = float((np.sort(got[sample], axis=1) == np.sort(mdb, axis=1)).all(axis=1).mean())
    n_rows = con.execute("SELECT count(*) FROM m").fetchone()[0]
    con.close()

    print(f"# Top-{k} for every user, seen excluded — {machine()}")
    print(f"# {m:,} users x {n:,} items, {seen.nnz:,} interactions, {a.components} components, "
          f"chunk {rows} rows, {a.threads} threads, best of {a.repeats}; SQL returned {n_rows:,} rows")
    print("| lane | seconds | vs numpy bound | vs GEMMs |\n|---|---:|---:|---:|")
    for name, t in best.items():
        print(f"| {name} | {t:.3f} | {t / t_bound:.2f}x | {t / t_gemm:.1f}x |")
    print(f"# same top-{k} as the numpy bound: {agree_bound:.2%} of users; "
          f"same top-{k} set as LightFM.predict on the sample: {agree_mdb:.2%} (float32 ties aside)")
    speedup = t_mdb / t_sql
    checks = [(speedup >= 10, f"SQL {speedup:.1f}x faster than the MindsDB path (target >= 10x)"),
              (t_sql / t_bound <= 1.5, f"SQL {t_sql / t_bound:.2f}x the numpy bound (target <= 1.5x)"),
              (t_topk1 / t_bound <= 1.5,
               f"top_k on one thread {t_topk1 / t_bound:.2f}x the numpy bound (target <= 1.5x)")]
    for ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")


if __name__ == "__main__":
    main()
