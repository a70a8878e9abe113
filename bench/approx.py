"""Approximate top-10 (sqlrec.numeric.approx, faiss IVF) against exact sqlrec.numeric.scoring.top_k, in one run (issue 13, item 5).

Synthetic catalogue of --items items x 64 dims with biases, --users query users, ~20 seen
items each (Zipf popularity, excluded from the top-10 as in every user_item query). Factors:
  lightfm   (default) Gaussian with the mean and covariance of a real LightFM model: CREATE
            MODEL on the MovieLens sample (64 components, WARP), item side and user side
            each [vector | bias]. Learned factors are far from isotropic (5 of 65 directions
            hold 60% of the item variance), which is what an IVF index exploits.
  gaussian  isotropic: no structure at all, the worst case for any partitioning index.

Lanes, interleaved round robin (every repeat runs each lane once, so load bursts from other
processes hit all of them), min and median of --repeats:
  exact          sqlrec.numeric.scoring.top_k with the seen items excluded (what Model.recommend runs)
  approx nprobe  sqlrec.numeric.approx.top_k over the index CREATE builds (default nlist), same inputs
  faiss IP-IVF   (--ip) faiss's inner-product IVF recipe, same nlist, through the same top_k
recall@10 = mean over users of |approx top-10 & exact top-10| / 10. Speed-up = exact median /
lane median. Also: index build (k-means + assignment, what CREATE adds), assembly (first
approximate query) and one-user latency (the SQL single-user case, scoring only).

    python bench/approx.py                        # 10^6 items, nprobe 8..64
    python bench/approx.py --sizes 10000,30000,100000,300000 --nprobe 16,32 --data lightfm  # 'auto' size
    python bench/approx.py --data lightfm --nprobe 16,32 --ip    # lifted L2 index vs inner-product IVF
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

from sqlrec.numeric import approx, scoring  # noqa: E402


def lightfm_moments() -> list[tuple[np.ndarray, np.ndarray]]:
    """(mean, covariance) of [vector | bias], items then users, of a LightFM model on MovieLens."""
    import sqlrec
    from sqlrec.frontend.demo import load_movielens

    con = sqlrec.connect()
    load_movielens(con)
    con.execute("CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
                "threshold = 4, no_components = 64, random_state = 1, approximate = false")
    out = []
    for side in ("item", "user"):
        df = con.execute(f"SELECT vector, bias FROM m.{side}_embeddings").df()
        z = np.hstack([np.stack(df.vector.values), df.bias.values[:, None]]).astype(np.float64)
        out.append((z.mean(axis=0), np.cov(z.T)))
    con.close()
    return out


def factors(kind: str, n_items: int, n_users: int, moments, seed: int = 0):
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        v = (rng.standard_normal((n_items, 64)) / 8).astype(np.float32)
        u = rng.standard_normal((n_users, 64)).astype(np.float32)
        return u, rng.normal(0, 0.1, n_users).astype(np.float32), v, rng.normal(0, 0.3, n_items).astype(np.float32)
    sides = []
    for (mean, cov), n in zip(moments, (n_items, n_users)):
        z = rng.multivariate_normal(mean, cov, size=n, method="cholesky").astype(np.float32)
        sides.append((np.ascontiguousarray(z[:, :-1]), np.ascontiguousarray(z[:, -1])))
    (v, bi), (u, bu) = sides
    return u, bu, v, bi


class InnerProductIvf:
    """faiss's own recipe for inner products (IndexIVFFlat, METRIC_INNER_PRODUCT, same nlist and
    k-means budget), behind IvfIndex's search(): what sqlrec's lifted L2 index is compared with."""

    def __init__(self, x: np.ndarray, nlist: int):
        import faiss

        self.index = faiss.IndexIVFFlat(faiss.IndexFlatIP(x.shape[1]), x.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        self.index.cp.max_points_per_centroid = approx.TRAIN_POINTS_PER_LIST
        self.index.cp.niter = approx.KMEANS_ITERATIONS
        self.index.train(x)
        self.index.add(x)

    def search(self, queries, k, nprobe):
        import faiss

        scores, idx = self.index.search(queries, int(k), params=faiss.SearchParametersIVF(nprobe=int(nprobe)))
        scores[idx < 0] = -np.inf
        return idx, scores


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g[g >= 0]) & set(w[w >= 0])) / max(1, (w >= 0).sum()) for g, w in zip(got, want)]))


def one_user_ms(fn, users: int, tries: int = 50) -> float:
    times = []
    for i in range(tries):
        t0 = time.perf_counter()
        fn(i % users)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def run_size(kind: str, n_items: int, a, moments) -> list[tuple]:
    u, bu, v, bi = factors(kind, n_items, a.users, moments)
    seen = implicit_interactions(a.users, n_items, 20).tocsr()
    prepared = scoring.prepare_targets(v, bi, True)
    t0 = time.perf_counter()
    arrays, facts = approx.build(lambda s: prepared.T, n_items, ("user_item",), approximate=True, nlist=a.nlist)
    build = time.perf_counter() - t0
    index = approx.IvfIndex(arrays["ip.centroids"], arrays["ip.lists"], lambda: prepared.T)
    t0 = time.perf_counter()
    index.faiss_index()
    assemble = time.perf_counter() - t0

    def exact(rows=slice(None)):
        return scoring.top_k(u[rows], bu[rows], v, bi, a.k, exclude=seen[rows], prepared=prepared)

    def approximate(nprobe, rows=slice(None)):
        return approx.top_k(index, u[rows], bu[rows], v, bi, a.k, exclude=seen[rows], prepared=prepared,
                            nprobe=nprobe)

    lanes = {"exact": exact, **{f"approx nprobe={p}": (lambda p=p: approximate(p)) for p in a.nprobe}}
    if a.ip:
        ip = InnerProductIvf(np.ascontiguousarray(prepared.T), facts.nlist)
        lanes.update({f"faiss IP-IVF nprobe={p}": (lambda p=p: approx.top_k(
            ip, u, bu, v, bi, a.k, exclude=seen, prepared=prepared, nprobe=p)) for p in a.nprobe})
    times: dict[str, list[float]] = {name: [] for name in lanes}
    results = {}
    for _ in range(a.repeats):
        for name, fn in lanes.items():
            t0 = time.perf_counter()
            results[name] = fn()[0]
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["exact"])
    single = {name: float("nan") for name in lanes}
    single["exact"] = one_user_ms(lambda i: exact(slice(i, i + 1)), a.users)
    single.update({f"approx nprobe={p}": one_user_ms(lambda i, p=p: approximate(p, slice(i, i + 1)), a.users)
                   for p in a.nprobe})
    rows = []
    for name in lanes:
        med = statistics.median(times[name])
        rows.append((kind, n_items, facts.nlist, name, recall(results[name], results["exact"]), min(times[name]),
                     med, base / med, single[name]))
    print(f"{kind}, {n_items:,} items: index build {build:.1f} s (nlist {facts.nlist}), assembly {assemble:.2f} s",
          flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--sizes", type=str, default=None, help="comma-separated item counts (overrides --items)")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--data", type=str, default="lightfm,gaussian")
    ap.add_argument("--nprobe", type=str, default="8,16,32,64")
    ap.add_argument("--nlist", type=int, default=None, help="default: sqlrec's (2 sqrt(items))")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ip", action="store_true", help="also faiss's inner-product IVF (the design alternative)")
    a = ap.parse_args()
    a.nprobe = [int(p) for p in a.nprobe.split(",")]
    sizes = [int(s) for s in a.sizes.split(",")] if a.sizes else [a.items]
    print(machine(), "| load:", open("/proc/loadavg").read().split()[:3], flush=True)
    moments = lightfm_moments() if "lightfm" in a.data else None
    rows = []
    for kind in a.data.split(","):
        for n in sizes:
            rows += run_size(kind, n, a, moments)
    print(f"\n{a.users:,} users, top-{a.k}, ~20 seen items each excluded; {a.repeats} interleaved repeats\n")
    print("| factors | items | nlist | lane | recall@10 | min s | median s | speed-up | one user ms |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for kind, n, nlist, name, rec, lo, med, ratio, one in rows:
        print(f"| {kind} | {n:,} | {nlist} | {name} | {rec:.4f} | {lo:.3f} | {med:.3f} | {ratio:.1f}x | {one:.2f} |")
    print("\nload after:", open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
