"""Fold-in of new users into an ALS model: sqlrec's generic closed form, its ALS half-step
(ALSHandler.fold_in, what `USING interactions = ...` runs on an als model) and implicit's recalculate_user."""
import time, numpy as np, scipy.sparse as sp, threadpoolctl
from implicit.cpu.als import AlternatingLeastSquares
import sqlrec
from sqlrec.frontend.demo import load_movielens
from sqlrec.exec.coldstart import fold_in
from sqlrec.models.model import FOLD_IN_L2
from sqlrec.engines.als import ALSHandler
con = sqlrec.connect(); load_movielens(con)
pos = np.array(con.execute("SELECT userId, movieId FROM ratings WHERE rating >= 4").fetchall())
users, items = np.unique(pos[:, 0]), np.unique(pos[:, 1])
R = sp.csr_matrix((np.ones(len(pos), np.float32), (np.searchsorted(users, pos[:, 0]), np.searchsorted(items, pos[:, 1]))),
                  shape=(len(users), len(items)))
for seed in (1, 2, 3):
    rng = np.random.default_rng(seed)
    new = rng.choice(R.shape[0], R.shape[0] // 5, replace=False)
    old = np.setdiff1d(np.arange(R.shape[0]), new)
    with threadpoolctl.threadpool_limits(1, "blas"):
        m = AlternatingLeastSquares(factors=64, regularization=10.0, alpha=1.0, iterations=15, random_state=seed, num_threads=1)
        m.fit(R[old], show_progress=False)
    V = m.item_factors
    U = m.user_factors
    target = float(np.mean(np.sum(U[R[old].nonzero()[0]] * V[R[old].nonzero()[1]], axis=1)))
    ridge = FOLD_IN_L2 * float(np.mean(np.sum(V ** 2, axis=1)))
    h = ALSHandler({"no_components": 64, "regularization": 10.0, "alpha": 1.0, "epochs": 15, "weighting": "raw"})
    res = {"generic": [], "sqlrec als": [], "recalculate_user": []}; secs = dict.fromkeys(res, 0.0)
    for u in new:
        liked = R[u].indices
        if len(liked) < 4: continue
        rng.shuffle(liked); given, held = liked[: len(liked) // 2], liked[len(liked) // 2:]
        row = sp.csr_matrix((np.ones(len(given), np.float32), (np.zeros(len(given)), given)), shape=(1, R.shape[1]))
        t = time.perf_counter(); g = fold_in(V, given, target_score=target, ridge=ridge); secs["generic"] += time.perf_counter() - t
        t = time.perf_counter(); a = h.fold_in("user", V, given); secs["sqlrec als"] += time.perf_counter() - t
        t = time.perf_counter(); r = np.asarray(m.recalculate_user(0, row)).ravel(); secs["recalculate_user"] += time.perf_counter() - t
        for name, vec in (("generic", g), ("sqlrec als", a), ("recalculate_user", r)):
            s = V @ vec; s[given] = -np.inf
            top = np.argpartition(-s, 10)[:10]
            res[name].append(len(set(top) & set(held)) / 10)
    print(seed, {k: round(float(np.mean(v)), 4) for k, v in res.items()}, {k: round(v * 1000 / len(res["generic"]), 3) for k, v in secs.items()}, "ms/user", len(res["generic"]), "users")
