"""Batched top-N scoring: score(q, t) = Q[q]·T[t] + qb[q] + tb[t], the best k targets per query row.

Every recommender_type reduces to this (user_item: users x items, item_user: items x users,
item_item / user_user: unit vectors without biases). The full query x target matrix is never
built: query rows are scored in chunks whose float32 score buffer stays under
``max_chunk_bytes``, so memory is bounded however many rows are asked for.

Per chunk: one float32 GEMM with both biases folded in as extra columns (so no pass over the
buffer adds them), seen entries set to -inf by flat fancy indexing from the CSR arrays, then
``np.argpartition(scores, n - k - 1)`` (ascending kth near the end of the row: faster than
partitioning ``-scores`` on wide rows) and a sort of just the selected columns.

The selection, not the GEMM, is where the time goes, and numpy runs it on one core. With many
chunks, worker threads score chunks side by side (numpy releases the GIL in BLAS, partition
and sort), each with its own buffer, while BLAS is held to one thread per call (threadpoolctl;
without it scoring stays on one thread).

One query row (a user's query by its id) goes to ``top_one``: the same arithmetic and selection
on one row, without the chunks and sparse bookkeeping that cost as much as the row's GEMV.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sqlrec.lazy import sparse as sp

from sqlrec.errors import Cancelled
from sqlrec.numeric.rowselect import select as _select, select_row

# Chunks that fit in L2/L3 select faster than 64 MiB ones (measured on 20k-wide rows)...
_FAST_CHUNK_BYTES = 4 << 20
# ...but a GEMM of fewer query rows than this is memory-bound on the targets: at 59k items,
# 17-row chunks took 2-3x the time of 284-row ones (measured in bench/topn.py). max_chunk_bytes stays the ceiling.
_MIN_GEMM_ROWS = 256
_DEFAULT_CHUNK_BYTES = 128 << 20
# Up to this many query rows, top_k without `prepared` multiplies the targets as they are and adds
# the biases after: an augmented copy of every target (a quarter of a model's scoring bytes at
# ML-25M shape) would cost more memory than it saves time for a handful of rows.
DIRECT_ROWS = 16
_MIN_CHUNKS_PER_WORKER = 2
# Up to this many scores (query rows x targets) in all, BLAS runs on one thread.
_SMALL_SCORES = 1 << 18


def chunk_rows(n_targets: int, max_chunk_bytes: int = _DEFAULT_CHUNK_BYTES) -> int:
    """Rows per chunk: cache-sized, but at least _MIN_GEMM_ROWS for the GEMM's sake; the score
    buffer (rows x n_targets float32) never exceeds max_chunk_bytes."""
    row_bytes = 4 * max(n_targets, 1)
    rows = max(_FAST_CHUNK_BYTES // row_bytes, _MIN_GEMM_ROWS)
    return max(1, min(rows, max_chunk_bytes // row_bytes))


def augment_query(query: np.ndarray, query_bias: np.ndarray | None, target_bias: bool) -> np.ndarray:
    """float32 [Q | qb | 1]: with augment_targets, one GEMM yields Q·T + qb + tb (no extra pass)."""
    cols = [np.asarray(query, np.float32)]
    if query_bias is not None:
        cols.append(np.asarray(query_bias, np.float32).reshape(-1, 1))
    if target_bias:
        cols.append(np.ones((len(query), 1), np.float32))
    return np.ascontiguousarray(np.hstack(cols))


def augment_targets(targets: np.ndarray, target_bias: np.ndarray | None, query_bias: bool) -> np.ndarray:
    """float32 [T | 1 | tb], the partner of augment_query."""
    cols = [np.asarray(targets, np.float32)]
    if query_bias:
        cols.append(np.ones((len(targets), 1), np.float32))
    if target_bias is not None:
        cols.append(np.asarray(target_bias, np.float32).reshape(-1, 1))
    return np.ascontiguousarray(np.hstack(cols))


def prepare_targets(targets: np.ndarray, target_bias: np.ndarray | None, query_bias: bool) -> np.ndarray:
    """The targets as the GEMM reads them: [T | 1 | tb] transposed, C-contiguous. One user's
    scores are then a GEMV over rows of the stored order (165 us at 59k items x 50 against
    250-350 us through a transposed view), and chunks' GEMMs are as fast or faster."""
    targets = np.asarray(targets, np.float32)
    n, d = targets.shape
    out = np.empty((d + int(query_bias) + int(target_bias is not None), n), np.float32)
    out[:d] = targets.T
    if query_bias:
        out[d] = 1.0
    if target_bias is not None:
        out[-1] = np.asarray(target_bias, np.float32)
    return out


def top_k(query: np.ndarray, query_bias: np.ndarray | None,
          targets: np.ndarray, target_bias: np.ndarray | None, k: int, *,
          exclude: sp.spmatrix | None = None,
          candidates: np.ndarray | None = None,
          exclude_index: np.ndarray | None = None,
          max_chunk_bytes: int = _DEFAULT_CHUNK_BYTES,
          num_threads: int | None = None,
          cancelled: Callable[[], bool] | None = None,
          prepared: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k best targets for every query row.

    exclude: sparse (n_query, n_targets); every stored entry (explicit zeros too) is dropped.
    candidates: allowed target indices, applied before the top-k (duplicates are ignored).
    exclude_index: per query row one target index to drop (self-similarity), -1 for none.
    max_chunk_bytes: ceiling on all score buffers together (every worker thread has one).
    num_threads: worker threads scoring chunks side by side (None = every usable core); it
    changes nothing but float32 rounding of the GEMM (BLAS splits its work differently).
    cancelled: asked before each chunk; when it answers True, sqlrec.errors.Cancelled is raised.
    prepared: ``prepare_targets(targets, target_bias, query_bias is not None)``, kept by a caller
    that scores the same targets again (the augmented copy is then made once, not per call);
    ignored with candidates, which score a subset.

    Returns (indices (m, k) int64, scores (m, k) float32), rows sorted by score descending with
    ties broken by the lower target index; missing slots are index -1, score -inf.
    """
    query, targets = np.asarray(query), np.asarray(targets)
    m, n_all = _check(query, query_bias, targets, target_bias, k, exclude, exclude_index)
    if num_threads is not None and (int(num_threads) != num_threads or num_threads < 1):
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    out_idx = np.full((m, k), -1, np.int64)
    out_val = np.full((m, k), -np.inf, np.float32)
    scorer = _Scorer(query, query_bias, targets, target_bias, k, exclude, candidates, exclude_index,
                     out_idx, out_val, prepared)
    n = scorer.n
    if m == 0 or k == 0 or n == 0:
        return out_idx, out_val
    workers = _workers(num_threads, -(-m // min(m, chunk_rows(n, max_chunk_bytes))))
    rows = min(m, chunk_rows(n, max_chunk_bytes // workers))
    _run_chunks(scorer.score, m, n, rows, workers, cancelled or (lambda: False))
    return out_idx, out_val


class _Scorer:
    """One top_k call's prepared arrays; score(a, b, buf) fills output rows a..b from one chunk."""

    def __init__(self, query, query_bias, targets, target_bias, k, exclude, candidates, exclude_index,
                 out_idx: np.ndarray, out_val: np.ndarray, prepared: np.ndarray | None):
        n_all = len(targets)
        self.inverse = self.candidates = None  # target index -> candidate position (-1 = not one)
        if candidates is not None:
            candidates = np.unique(np.asarray(candidates, np.int64))  # sorted: keeps tie order by target index
            if len(candidates) and (candidates[0] < 0 or candidates[-1] >= n_all):
                raise ValueError(f"candidates: target indices must lie in [0, {n_all})")
            self.inverse = np.full(n_all, -1, np.int64)
            self.inverse[candidates] = np.arange(len(candidates))
            self.candidates = candidates
            targets = targets[candidates]
            target_bias = None if target_bias is None else np.asarray(target_bias)[candidates]
        self.n, self.kk = len(targets), min(k, len(targets))
        self.ex_ptr = self.ex_ind = None
        if exclude is not None:
            exclude = sp.csr_matrix(exclude)
            self.ex_ptr, self.ex_ind = exclude.indptr.astype(np.int64), exclude.indices.astype(np.int64)
            if self.inverse is not None:
                self.ex_ind = self.inverse[self.ex_ind]
        self.exclude_index = None
        if exclude_index is not None:
            ei = np.asarray(exclude_index, np.int64)
            self.exclude_index = ei if self.inverse is None else np.where(ei >= 0, self.inverse[ei], -1)
        # Targets are augmented once; query rows chunk by chunk, so no copy of all queries is made.
        self.direct = None
        if prepared is not None and candidates is None:
            self.t_aug_t = prepared
        elif len(query) <= DIRECT_ROWS:
            self.t_aug_t, self.direct = None, np.asarray(targets, np.float32).T
        else:
            self.t_aug_t = prepare_targets(targets, target_bias, query_bias is not None) if self.n else None
        self.query, self.target_bias = query, target_bias
        self.qb = None if query_bias is None else np.asarray(query_bias, np.float32)
        self.out_idx, self.out_val = out_idx, out_val

    def score(self, a: int, b: int, buf: np.ndarray) -> None:
        n, qb = self.n, self.qb
        scores = buf[: b - a]
        if self.direct is not None:
            _direct(np.asarray(self.query[a:b], np.float32), self.direct, None if qb is None else qb[a:b],
                    self.target_bias, scores)
        else:
            q_aug = augment_query(self.query[a:b], None if qb is None else qb[a:b], self.target_bias is not None)
            np.matmul(q_aug, self.t_aug_t, out=scores)
        flat = scores.reshape(-1)
        if self.ex_ptr is not None:
            cnt = np.diff(self.ex_ptr[a: b + 1])
            r = np.repeat(np.arange(b - a, dtype=np.int64), cnt)
            c = self.ex_ind[self.ex_ptr[a]: self.ex_ptr[b]]
            if self.inverse is not None:
                r, c = r[c >= 0], c[c >= 0]
            flat[r * n + c] = -np.inf
        if self.exclude_index is not None:
            ei = self.exclude_index[a:b]
            r = np.flatnonzero(ei >= 0)
            flat[r * n + ei[r]] = -np.inf
        idx, val = _select(scores, self.kk)
        if self.candidates is not None:
            idx = self.candidates[idx]
        idx[val == -np.inf] = -1
        self.out_idx[a:b, :self.kk] = idx
        self.out_val[a:b, :self.kk] = val


def _direct(query: np.ndarray, targets_t: np.ndarray, query_bias: np.ndarray | None,
            target_bias: np.ndarray | None, out: np.ndarray) -> None:
    """out = query · targets_t + query_bias + target_bias, in this order: top_k's few-row chunks
    and top_one share it, so a row scores the same bit for bit whichever of them scores it."""
    np.matmul(query, targets_t, out=out)
    if query_bias is not None:
        out += query_bias[:, None]
    if target_bias is not None:
        out += np.asarray(target_bias, np.float32)


def top_one(query: np.ndarray, query_bias: np.ndarray | None, targets: np.ndarray, target_bias: np.ndarray | None,
            k: int, *, exclude: np.ndarray | None = None,
            cancelled: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """top_k of one query row (query (1, d), query_bias (1,) or None), `exclude` the target
    indices to drop: the first min(k, targets) slots of top_k's row, bit for bit (same GEMV,
    same selection), without top_k's chunks, sparse exclusion and checks, which on one user's
    query cost as much as the GEMV and the selection together."""
    n = len(targets)
    if cancelled is not None and cancelled():
        raise Cancelled("statement cancelled while scoring (0 of 1 rows done); nothing was returned")
    if min(k, n) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    scores = np.empty((1, n), np.float32)
    with single_threaded_blas() if n <= _SMALL_SCORES else contextlib.nullcontext():
        _direct(np.asarray(query, np.float32), np.asarray(targets, np.float32).T,
                None if query_bias is None else np.asarray(query_bias, np.float32), target_bias, scores)
    if exclude is not None:
        scores[0, exclude] = -np.inf
    idx, val = select_row(scores[0], min(k, n))
    idx[val == -np.inf] = -1
    return idx, val


def _run_chunks(score: Callable[[int, int, np.ndarray], None], m: int, n: int, rows: int, workers: int,
                cancelled: Callable[[], bool]) -> None:
    """score(a, b, buf) over every chunk of `rows` query rows, on `workers` threads."""
    starts = range(0, m, rows)

    def check(a: int) -> None:
        if cancelled():
            raise Cancelled(f"statement cancelled while scoring ({a:,} of {m:,} rows done); nothing was returned")

    if workers == 1:
        # A few rows (one user's query) are a GEMV: BLAS threads cost more than they give, and
        # spin on cores other processes need (6 ms instead of 0.7 ms on busy cores).
        with single_threaded_blas() if m * n <= _SMALL_SCORES else contextlib.nullcontext():
            buf = np.empty((rows, n), np.float32)
            for a in starts:
                check(a)
                score(a, min(a + rows, m), buf)
        return

    # argpartition, sorting and BLAS release the GIL, so threads scale with cores. Each worker
    # takes the next chunk (load stays even when other processes share the cores) into its own
    # buffer and writes disjoint output rows. BLAS runs one thread per call meanwhile: its own
    # threads would otherwise spin-wait on the cores the workers need.
    taken = iter(starts)
    lock = threading.Lock()
    stop = threading.Event()  # a failed worker or an interrupt: the others take no new chunk

    def work() -> None:
        buf = np.empty((rows, n), np.float32)
        while not stop.is_set():
            with lock:
                a = next(taken, None)
            if a is None:
                return
            try:
                check(a)
                score(a, min(a + rows, m), buf)
            except BaseException:
                stop.set()
                raise

    with single_threaded_blas(), ThreadPoolExecutor(workers, thread_name_prefix="sqlrec-top-k") as pool:
        futures = [pool.submit(work) for _ in range(workers)]
        try:
            for f in futures:
                f.result()
        except BaseException:
            stop.set()
            raise


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity / cpuset (a CPU quota is not seen)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _workers(num_threads: int | None, n_chunks: int) -> int:
    """Threads worth starting: none beyond the chunks there are, and one without a BLAS limiter."""
    want = usable_cores() if num_threads is None else int(num_threads)
    # Below this many chunks per thread, starting threads costs more than it saves.
    want = min(want, n_chunks // _MIN_CHUNKS_PER_WORKER)
    return want if want > 1 and _blas_controller() is not None else 1


@functools.cache
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """BLAS on one thread inside the block (a no-op without threadpoolctl).

    Process-wide, like every BLAS thread setting: other threads' BLAS calls run on one thread
    too until the outermost block restores the previous count.
    """
    libs = _blas_libraries()
    return _one_blas_thread(libs) if libs else contextlib.nullcontext()


@functools.cache
def _blas_libraries() -> tuple:
    controller = _blas_controller()
    return () if controller is None else tuple(controller.select(user_api="blas").lib_controllers)


@contextlib.contextmanager
def _one_blas_thread(libs: tuple) -> Iterator[None]:
    """threadpoolctl's limit(1) on the BLAS libraries its controller found (made once, as
    before), without limit()'s per-call bookkeeping over every library (~10 us a call, a
    twentieth of a one-user GEMV); a library already on one thread is left alone."""
    before = [lib.num_threads for lib in libs]
    for lib, n in zip(libs, before):
        if n != 1:
            lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(libs, before):
            if n not in (1, None):  # a count the library does not report is not restored (as threadpoolctl)
                lib.set_num_threads(n)


def _check(query, query_bias, targets, target_bias, k, exclude, exclude_index) -> tuple[int, int]:
    if query.ndim != 2 or targets.ndim != 2 or query.shape[1] != targets.shape[1]:
        raise ValueError(f"query {query.shape} and targets {targets.shape} must be 2-d with the same width")
    m, n = len(query), len(targets)
    if int(k) != k or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    if query_bias is not None and np.shape(query_bias) != (m,):
        raise ValueError(f"query_bias must have shape ({m},), got {np.shape(query_bias)}")
    if target_bias is not None and np.shape(target_bias) != (n,):
        raise ValueError(f"target_bias must have shape ({n},), got {np.shape(target_bias)}")
    if exclude is not None and exclude.shape != (m, n):
        raise ValueError(f"exclude must have shape ({m}, {n}), got {exclude.shape}")
    if exclude_index is not None:
        ei = np.asarray(exclude_index)
        if ei.shape != (m,) or (m and (ei.min() < -1 or ei.max() >= n)):
            raise ValueError(f"exclude_index must have shape ({m},) with values in [-1, {n})")
    return m, n


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalised copy (cosine similarity by dot product); zero rows stay zero."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def flatten_top_k(indices: np.ndarray, scores: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(query rows, target indices, scores, 1-based ranks) of the non-padding slots, by row then rank."""
    keep = indices >= 0
    rows, pos = np.nonzero(keep)  # padding only ever trails a row, so position + 1 is the rank
    return rows.astype(np.int64), indices[keep], scores[keep], pos.astype(np.int64) + 1
