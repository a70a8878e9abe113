"""Held-out splits and ranking metrics, with LightFM's semantics and without its per-pair loop.

A metric here equals ``lightfm.evaluation.<metric>(model, test, train_interactions=train).mean()``
on the same representations: every stored test entry is a positive; its rank is the number of
other items, not stored in the user's train row, whose score is >= its own (ties count against
it); only users with at least one test entry are averaged. Scoring is chunked over users like
``scoring.top_k`` (bounded memory) and vectorised within a chunk: one GEMM, train entries set to
-inf, rows sorted, each test score located by a binary search run on all of them at once.

Beyond LightFM's four (precision, recall, AUC, reciprocal rank) the same ranks give NDCG@k and
MAP@k, and each chunk's top-k lists give two catalogue-level measures, coverage@k and
popularity bias@k (see their docstrings for the exact definitions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlrec.lazy import sparse as sp

from sqlrec.numeric.scoring import augment_query, augment_targets, chunk_rows

# --- splits ------------------------------------------------------------------------------------
# Splits keep every stored entry as it is (data, order, duplicates): a caller may carry its own
# payload in .data (the engine stores pair numbers there) and map the split back.


def split_random(matrix: sp.spmatrix, test_size: float, random_state: int | None
                 ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """round(test_size * nnz) stored entries, drawn uniformly, go to test."""
    matrix = _csr(matrix, test_size)
    n_test = int(np.floor(test_size * matrix.nnz + 0.5))
    test = np.zeros(matrix.nnz, bool)
    test[np.random.default_rng(random_state).permutation(matrix.nnz)[:n_test]] = True
    return _subset(matrix, ~test), _subset(matrix, test)


def split_by_user(matrix: sp.spmatrix, test_size: float, random_state: int | None
                  ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per user, round(test_size * n) random entries go to test, capped so one always stays in train."""
    matrix = _csr(matrix, test_size)
    key = np.random.default_rng(random_state).random(matrix.nnz)
    return _split_rows(matrix, key, test_size)


def split_by_time(matrix: sp.spmatrix, times: sp.spmatrix, test_size: float
                  ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per user, the latest round(test_size * n) entries go to test (one always stays in train).

    times: same stored entries as matrix, timestamps as data (numeric or datetime64). Equal
    timestamps are ordered by storage position, the later-stored entry counting as later.
    """
    matrix = _csr(matrix, test_size)
    times = sp.csr_matrix(times)
    if (times.shape != matrix.shape or not np.array_equal(times.indptr, matrix.indptr)
            or not np.array_equal(times.indices, matrix.indices)):
        raise ValueError("times must have the same stored entries as the interaction matrix")
    return _split_rows(matrix, np.asarray(times.data), test_size)


SPLITS: dict[str, Callable[..., tuple[sp.csr_matrix, sp.csr_matrix]]] = {
    "random": split_random,
    "user": split_by_user,
    "time": split_by_time,
}


def _csr(matrix: sp.spmatrix, test_size: float) -> sp.csr_matrix:
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must lie strictly between 0 and 1, got {test_size!r}")
    return sp.csr_matrix(matrix)


def _split_rows(matrix: sp.csr_matrix, key: np.ndarray, test_size: float
                ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per row, the entries with the largest keys go to test (ties: later storage position)."""
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    order = np.lexsort((np.arange(matrix.nnz), key, rows))  # by row, then key, then position
    from_end = matrix.indptr[rows + 1][order] - 1 - np.arange(matrix.nnz)  # 0 = row's largest key
    n_test = np.clip(np.floor(test_size * counts + 0.5), 0, np.maximum(counts - 1, 0)).astype(np.int64)
    test = np.zeros(matrix.nnz, bool)
    test[order] = from_end < n_test[rows[order]]
    return _subset(matrix, ~test), _subset(matrix, test)


def _subset(matrix: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    kept_before = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
    return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], kept_before[matrix.indptr]),
                         shape=matrix.shape)


# --- ranks and metrics -------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldOutRanks:
    """LightFM's predict_rank, restricted to the users that have test entries (in user order)."""

    users: np.ndarray    # (n_users,) user rows with >= 1 test entry, ascending
    owner: np.ndarray    # (nnz,) position in `users` of each test entry, non-decreasing
    ranks: np.ndarray    # (nnz,) 0-based rank of each test entry among the user's non-train items
    n_test: np.ndarray   # (n_users,) stored test entries per user
    n_train: np.ndarray  # (n_users,) stored train entries per user
    n_items: int
    k: int
    # (n_users, k) each user's top-k item indices among non-train items (-1 pads short rows);
    # order within a row is unspecified, only the set matters to the metrics that read it.
    top: np.ndarray | None = None
    popular: np.ndarray | None = None  # (n_items,) bool: the popular head (see popularity_bias_at_k)


def precision_at_k(r: HeldOutRanks) -> np.ndarray:
    return _hits(r) / r.k


def recall_at_k(r: HeldOutRanks) -> np.ndarray:
    return _hits(r) / r.n_test


def auc(r: HeldOutRanks) -> np.ndarray:
    """LightFM's calculate_auc_from_rank: per user, sort the positives' ranks, subtract the
    positives that can rank above each one, divide by the number of negatives."""
    order, owner, position = _by_user_rank(r)
    above = np.maximum(r.ranks[order] - position, 0)
    n_neg = (r.n_items - (r.n_test + r.n_train)).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = np.bincount(owner, 1.0 - above / n_neg[owner], minlength=len(r.users))
        return total / r.n_test


def reciprocal_rank(r: HeldOutRanks) -> np.ndarray:
    best = np.full(len(r.users), np.inf)
    np.minimum.at(best, r.owner, r.ranks)
    return 1.0 / (best + 1.0)


def ndcg_at_k(r: HeldOutRanks) -> np.ndarray:
    """Binary-relevance NDCG@k: sum over test items ranked < k of 1 / log2(rank + 2), divided by
    the same sum for an ideal list that puts min(n_test, k) test items first."""
    gain = np.where(r.ranks < r.k, 1.0 / np.log2(r.ranks + 2.0), 0.0)
    dcg = np.bincount(r.owner, gain, minlength=len(r.users))
    ideal = np.cumsum(1.0 / np.log2(np.arange(r.k) + 2.0))
    return dcg / ideal[np.minimum(r.n_test, r.k) - 1]


def map_at_k(r: HeldOutRanks) -> np.ndarray:
    """AP@k averaged over users: for each test item ranked < k, the precision of the list cut at
    its position (test items at or above it / (rank + 1)), summed and divided by min(n_test, k)."""
    order, owner, position = _by_user_rank(r)
    ranks = r.ranks[order]
    # Tied test items share the pessimistic rank, so `position` never exceeds `ranks`.
    precision = np.where(ranks < r.k, (position + 1.0) / (ranks + 1.0), 0.0)
    return np.bincount(owner, precision, minlength=len(r.users)) / np.minimum(r.n_test, r.k)


def coverage_at_k(r: HeldOutRanks) -> np.ndarray:
    """Catalogue coverage@k: the share of all items that appear in at least one evaluated user's
    top-k list (train items excluded). One number for the whole catalogue, as a 0-d array."""
    if r.top is None:
        raise ValueError("coverage_at_k needs the top-k lists (held_out_ranks computes them)")
    shown = np.unique(r.top[r.top >= 0])
    return np.asarray(len(shown) / r.n_items if r.n_items else np.nan)


def popularity_bias_at_k(r: HeldOutRanks) -> np.ndarray:
    """Per user, the share of the top-k recommended items (train items excluded) that belong to
    the popular head: the ceil(POPULAR_SHARE * n_items) items with the most training
    interactions (ties broken by the lower item index). Popular items are recommended at the
    head's own share of the catalogue (0.1) by a popularity-blind recommender and at up to 1.0
    by a most-popular one. A user whose list is empty counts as 0."""
    if r.top is None or r.popular is None:
        raise ValueError("popularity_bias_at_k needs the top-k lists and the popular head")
    shown = r.top >= 0
    in_head = r.popular[np.where(shown, r.top, 0)] & shown
    return in_head.sum(axis=1) / np.maximum(shown.sum(axis=1), 1)


def _hits(r: HeldOutRanks) -> np.ndarray:
    return np.bincount(r.owner, r.ranks < r.k, minlength=len(r.users))


def _by_user_rank(r: HeldOutRanks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order sorting entries by user then rank, owner in that order, 0-based position within user)."""
    order = np.lexsort((r.ranks, r.owner))
    owner = r.owner[order]
    first = np.concatenate(([0], np.cumsum(r.n_test)[:-1])).astype(np.int64)
    return order, owner, np.arange(len(owner)) - first[owner]


METRICS: dict[str, Callable[[HeldOutRanks], np.ndarray]] = {
    "precision_at_k": precision_at_k,
    "recall_at_k": recall_at_k,
    "ndcg_at_k": ndcg_at_k,
    "map_at_k": map_at_k,
    "auc": auc,
    "reciprocal_rank": reciprocal_rank,
    "coverage_at_k": coverage_at_k,
    "popularity_bias_at_k": popularity_bias_at_k,
}
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)

# The popular head for popularity_bias_at_k: this share of the catalogue, most-interacted first.
POPULAR_SHARE = 0.1


def popular_items(counts: np.ndarray, share: float = POPULAR_SHARE) -> np.ndarray:
    """bool mask of the ceil(share * n) items with the largest counts (ties: lower index wins)."""
    counts = np.asarray(counts, np.float64)
    n = len(counts)
    head = np.lexsort((np.arange(n), -counts))[: int(np.ceil(share * n))]
    mask = np.zeros(n, bool)
    mask[head] = True
    return mask


def rating_errors(user_vecs: np.ndarray, user_bias: np.ndarray, item_vecs: np.ndarray, item_bias: np.ndarray,
                  users: np.ndarray, items: np.ndarray, ratings: np.ndarray,
                  bounds: tuple[float, float]) -> dict[str, float]:
    """RMSE and MAE of the predicted ratings (U·V + biases, clipped to `bounds`) of given pairs."""
    if len(ratings) == 0:
        return {"rmse": float("nan"), "mae": float("nan")}
    pred = np.einsum("ij,ij->i", np.asarray(user_vecs, np.float64)[users], np.asarray(item_vecs, np.float64)[items])
    pred = np.clip(pred + np.asarray(user_bias, np.float64)[users] + np.asarray(item_bias, np.float64)[items], *bounds)
    err = pred - np.asarray(ratings, np.float64)
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err)))}


def evaluate(user_vecs: np.ndarray, user_bias: np.ndarray | None, item_vecs: np.ndarray,
             item_bias: np.ndarray | None, train: sp.spmatrix | None, test: sp.spmatrix, k: int,
             metrics: Sequence[str] = METRIC_NAMES, *, item_popularity: np.ndarray | None = None,
             max_chunk_bytes: int = 64 << 20) -> dict[str, float]:
    """Mean of each metric over the users with test entries (NaN when there are none).

    item_popularity: per-item counts that define the popular head (default: train's column counts).
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; known: {', '.join(METRICS)}")
    r = held_out_ranks(user_vecs, user_bias, item_vecs, item_bias, train, test, k,
                       item_popularity=item_popularity, max_chunk_bytes=max_chunk_bytes)
    return summarize(r, metrics)


def summarize(r: HeldOutRanks, metrics: Sequence[str] = METRIC_NAMES) -> dict[str, float]:
    """Mean of each metric over the ranked users (NaN when there are none)."""
    return {m: float(METRICS[m](r).mean()) if len(r.users) else float("nan") for m in metrics}


def held_out_ranks(user_vecs: np.ndarray, user_bias: np.ndarray | None, item_vecs: np.ndarray,
                   item_bias: np.ndarray | None, train: sp.spmatrix | None, test: sp.spmatrix,
                   k: int, *, item_popularity: np.ndarray | None = None,
                   max_chunk_bytes: int = 64 << 20) -> HeldOutRanks:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    test = sp.csr_matrix(test)
    n_users, n = test.shape
    train = sp.csr_matrix((n_users, n), dtype=np.float32) if train is None else sp.csr_matrix(train)
    if train.shape != test.shape or len(user_vecs) != n_users or len(item_vecs) != n:
        raise ValueError(f"train {train.shape}, test {test.shape}, {len(user_vecs)} user and "
                         f"{len(item_vecs)} item vectors do not agree")
    if item_popularity is None:
        item_popularity = train.getnnz(axis=0)
    elif len(item_popularity) != n:
        raise ValueError(f"item_popularity has {len(item_popularity)} entries for {n} items")
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    n_test = np.diff(test.indptr)[users]
    t_aug = augment_targets(item_vecs, item_bias, user_bias is not None)
    rows = min(max(len(users), 1), chunk_rows(n, max_chunk_bytes))
    buf = np.empty((rows, n), np.float32)
    top = np.full((len(users), min(k, n)), -1, np.int64)
    ranks = []
    for a in range(0, len(users), rows):
        u = users[a: a + rows]
        scores = buf[: len(u)]
        np.matmul(augment_query(user_vecs[u], None if user_bias is None else np.asarray(user_bias)[u],
                                item_bias is not None), t_aug.T, out=scores)
        ranks.append(_chunk_ranks(scores, test[u], train[u], top[a: a + len(u)]))
    return HeldOutRanks(
        users=users, owner=np.repeat(np.arange(len(users)), n_test),
        ranks=np.concatenate(ranks) if ranks else np.zeros(0, np.int64),
        n_test=n_test, n_train=np.diff(train.indptr)[users], n_items=n, k=k,
        top=top, popular=popular_items(item_popularity))


def _chunk_ranks(scores: np.ndarray, test: sp.csr_matrix, train: sp.csr_matrix,
                 top: np.ndarray) -> np.ndarray:
    """Ranks of the chunk's test entries (in storage order); fills `top` with each row's best
    non-train items. scores is overwritten."""
    c, n = scores.shape
    flat = scores.reshape(-1)
    t_at = np.repeat(np.arange(c, dtype=np.int64), np.diff(test.indptr)) * n + test.indices
    own = flat[t_at]
    flat[np.repeat(np.arange(c, dtype=np.int64), np.diff(train.indptr)) * n + train.indices] = -np.inf
    # An entry never counts against itself, unless train hid it already.
    self_counted = flat[t_at] > -np.inf
    kk = top.shape[1]
    if c and kk:
        best = np.argpartition(scores, n - kk, axis=1)[:, n - kk:] if kk < n else \
            np.broadcast_to(np.arange(n), (c, n))
        top[:] = np.where(np.take_along_axis(scores, best, axis=1) > -np.inf, best, -1)
    scores.sort(axis=1)
    row_start = t_at - t_at % n
    lo, hi = np.zeros(len(own), np.int64), np.full(len(own), n, np.int64)
    for _ in range(int(n).bit_length()):  # bisect_left on every entry's sorted row at once
        active = lo < hi
        mid = (lo + hi) >> 1
        less = flat[row_start + np.minimum(mid, n - 1)] < own
        lo = np.where(active & less, mid + 1, lo)
        hi = np.where(active & ~less, mid, hi)
    return (n - lo) - self_counted
