"""Top-10 for every user at MovieLens-25M shape: sqlrec.numeric.scoring.top_k against the GEMMs alone
and against implicit's C++ ``recommend`` on the same factors, in one run (issue 13, item 2).

Factors are synthetic (Gaussian, scaled like trained ones; their values do not change the cost
of a GEMM or a selection) with biases; the seen matrix is Zipf-skewed like ML-25M's
(bench/_common.implicit_interactions). implicit scores dot products only, so it gets the
augmented factors [U | ub | 1] and [I | 1 | ib]: the same scores sqlrec ranks.

Lanes, interleaved round robin (load bursts from other processes hit every lane alike),
min and median of --repeats:
  (a) GEMMs alone at sqlrec's chunk height into one buffer, BLAS on every core: the floor.
  (b) sqlrec.numeric.scoring.top_k, default threads (GEMM + seen masked + top-k + ties by index).
  (c) implicit ``MatrixFactorizationBase.recommend(..., filter_already_liked_items=True)``.
Targets: (b) <= 1.3x (a) and (b) <= (c).

    python bench/recommend_all.py [--users 20000 --items 59047 --components 64 --per-user 154]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import implicit_interactions, machine  # noqa: E402

from sqlrec.numeric import scoring  # noqa: E402


def gemm_only(q: np.ndarray, t_aug_t: np.ndarray, rows: int) -> None:
    buf = np.empty((rows, t_aug_t.shape[1]), np.float32)
    for a in range(0, len(q), rows):
        b = min(a + rows, len(q))
        np.matmul(q[a:b], t_aug_t, out=buf[: b - a])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20_000, help="users scored (ML-25M has 162,541)")
    ap.add_argument("--items", type=int, default=59_047)
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--per-user", type=float, default=154, help="mean seen items per user (ML-25M: 25.1M / 162k)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from implicit.cpu.als import AlternatingLeastSquares

    rng = np.random.default_rng(0)
    m, n, d, k = a.users, a.items, a.components, a.k
    uv = (rng.standard_normal((m, d)) / np.sqrt(d)).astype(np.float32)
    iv = (rng.standard_normal((n, d)) / np.sqrt(d)).astype(np.float32)
    ub, ib = rng.standard_normal(m).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    seen = implicit_interactions(m, n, a.per_user).tocsr()
    seen.data[:] = 1.0
    q_aug = scoring.augment_query(uv, ub, True)
    t_aug = scoring.augment_targets(iv, ib, True)
    prepared = scoring.prepare_targets(iv, ib, True)  # the layout Model keeps for scoring (C-contiguous)
    rows = scoring.chunk_rows(n)
    mf = AlternatingLeastSquares(factors=d + 2)  # only its recommend is used: factors set below
    mf.user_factors, mf.item_factors = q_aug, t_aug
    users = np.arange(m, dtype=np.int32)

    lanes = {
        "(a) GEMMs alone (floor)": lambda: gemm_only(q_aug, prepared, rows),
        f"(b) sqlrec.numeric.scoring.top_k ({scoring.usable_cores()} threads)":
            lambda: scoring.top_k(uv, ub, iv, ib, k, exclude=seen, prepared=prepared),
        "(c) implicit recommend, filter_already_liked_items":
            lambda: mf.recommend(users, seen, N=k, filter_already_liked_items=True),
    }
    times: dict[str, list[float]] = {name: [] for name in lanes}
    for _ in range(a.repeats):
        for name, fn in lanes.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)

    got, _ = scoring.top_k(uv, ub, iv, ib, k, exclude=seen, prepared=prepared)
    ids, _ = mf.recommend(users, seen, N=k, filter_already_liked_items=True)
    same = float((np.sort(got, axis=1) == np.sort(ids, axis=1)).all(axis=1).mean())
    t_gemm, t_ours, t_impl = (min(v) for v in times.values())
    print(f"# Top-{k} for every user, seen excluded — {machine()} | load {os.getloadavg()[0]:.2f}")
    print(f"# {m:,} users x {n:,} items, {seen.nnz:,} seen, {d} components (+2 bias columns), "
          f"chunk {rows} rows; min / median of {a.repeats}, lanes interleaved")
    print("| lane | min s | median s | min vs GEMMs |\n|---|---:|---:|---:|")
    for name, v in times.items():
        print(f"| {name} | {min(v):.2f} | {statistics.median(v):.2f} | {min(v) / t_gemm:.2f}x |")
    print(f"# same top-{k} sets as implicit: {same:.2%} of users (float32 ties aside)")
    for ok, text in ((t_ours / t_gemm <= 1.3, f"top_k {t_ours / t_gemm:.2f}x the GEMMs (target <= 1.3x)"),
                     (t_ours <= t_impl, f"top_k {t_ours / t_impl:.2f}x implicit's recommend (target <= 1x)")):
        print(f"{'PASS' if ok else 'FAIL'}: {text}")


if __name__ == "__main__":
    main()
