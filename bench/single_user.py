"""Single-user recommendations through SQL, warm: p50 latency at 20k items.

References in the same run, interleaved with the SQL lane query by query: the bare numpy work
for one user (one GEMV, biases, mask seen, argpartition, sort 10) on the same factors, and a
plain 10-row SELECT on a raw duckdb connection (what any SQL statement costs from Python).
Targets: SQL p50 under 10 ms (issue 2); at most 3x the raw 10-row SELECT (issue 13).

    python bench/single_user.py [--users 20000 --items 20000 --repeats 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import duckdb
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402
from synth import create_interactions  # noqa: E402

import sqlrec  # noqa: E402


def percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s) * 1000, s[int(0.95 * (len(s) - 1))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--per-user", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.users, a.repeats = 2_000, 50

    con = sqlrec.connect()
    create_interactions(con, "inter", a.users, a.items, a.per_user)
    con.execute("CREATE MODEL m FROM inter PREDICT item_id USING user_id = 'user_id', epochs = 2, "
                "no_components = 48, verbose = false")
    n_items = con.execute("SELECT count(DISTINCT item_id) FROM inter").fetchone()[0]
    rng = np.random.default_rng(0)
    users = rng.integers(0, a.users, a.repeats).tolist()
    con.execute("SELECT * FROM m WHERE user_id = ?", [users[0]]).fetchall()  # warm: model loaded

    raw = duckdb.connect()
    raw.execute(f"CREATE TABLE t AS SELECT range AS user_id, range % 7 AS x FROM range({a.users * 10})")
    sql_times, raw_times = [], []
    for u in users:
        t0 = time.perf_counter()
        con.execute("SELECT * FROM m WHERE user_id = ?", [u]).fetchall()
        sql_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        raw.execute("SELECT * FROM t WHERE user_id >= ? LIMIT 10", [u]).fetchall()
        raw_times.append(time.perf_counter() - t0)

    model = con.engine.model("m")
    uv, ub = model.handler.user_factors()
    iv, ib = model.handler.item_factors()
    seen = model.seen
    np_times = []
    for u in users:
        t0 = time.perf_counter()
        s = iv @ uv[u] + ib + ub[u]
        s[seen.indices[seen.indptr[u]:seen.indptr[u + 1]]] = -np.inf
        top = np.argpartition(s, len(s) - 10)[-10:]
        top[np.argsort(-s[top])]
        np_times.append(time.perf_counter() - t0)
    con.close()

    sp50, sp95 = percentiles(sql_times)
    np50, np95 = percentiles(np_times)
    rp50, rp95 = percentiles(raw_times)
    print(f"# Single-user SELECT, warm — {machine()}")
    print(f"# {a.users:,} users x {n_items:,} items, 48 components, top-10, seen excluded, {a.repeats} queries")
    print("| lane | p50 ms | p95 ms | p50 ratio vs numpy |\n|---|---:|---:|---:|")
    print(f"| bare numpy (one user) | {np50:.3f} | {np95:.3f} | 1.0 |")
    print(f"| raw duckdb: SELECT * FROM t WHERE user_id >= ? LIMIT 10 | {rp50:.3f} | {rp95:.3f} | {rp50 / np50:.1f} |")
    print(f"| sqlrec SELECT * FROM m WHERE user_id = ? | {sp50:.2f} | {sp95:.2f} | {sp50 / np50:.1f} |")
    print(f"{'PASS' if sp50 < 10 else 'FAIL'}: SQL p50 {sp50:.2f} ms < 10 ms")
    print(f"{'PASS' if sp50 <= 3 * rp50 else 'FAIL'}: SQL p50 {sp50 / rp50:.1f}x the raw 10-row SELECT (target <= 3x)")


if __name__ == "__main__":
    main()
