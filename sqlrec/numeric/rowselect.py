"""Exact top-k of each row of a score buffer: by score descending, ties by the lower column.

Split from sqlrec.numeric.scoring, which multiplies; this selects. Wide rows partition only the columns
of the k best column classes (see _select_blocks), which costs a fraction of a whole-row pass.
"""

from __future__ import annotations

import numpy as np

# Block selection (_select_blocks) pays off from this row width; narrower rows partition whole.
_BLOCK_MIN_WIDTH = 8192


def select(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k columns of every row (1 <= k <= n), by score descending then column ascending."""
    c, n = scores.shape
    if _blocks_pay(n, k):
        return _select_blocks(scores, k)
    return _select_whole(scores, k)


def _blocks_pay(n: int, k: int) -> bool:
    return n >= _BLOCK_MIN_WIDTH and n // 16 >= 8 * (k + 1)


def _class_width(n: int) -> int:
    return 1 << min(12, (n // 16).bit_length() - 1)  # 2048 classes at 59k items: 28-29 columns each


def _whole_row(row: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    idx, val = select(row[None], k)
    return idx[0], val[0]


def select_row(row: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """select() of one 1-d row, the same columns and scores: on one row select's 2-d indexing
    (take_along_axis, per-row masks) costs more than its arithmetic. As in _select_blocks, the
    maxima of the column classes j mod width give kth, the k-th largest of them: k elements
    reach it, so every one of the top k does, and only the few columns >= kth are ordered.
    Whatever that does not settle (a tie at the k-th score, -inf, NaN) goes to select()."""
    n = len(row)
    if not _blocks_pay(n, k):
        return _whole_row(row, k)
    width = _class_width(n)
    depth, tail = divmod(n, width)
    maxima = row[: width * depth].reshape(depth, width).max(axis=0)
    if tail:
        np.maximum(maxima[:tail], row[width * depth:], out=maxima[:tail])
    kth = np.partition(maxima, width - k)[width - k:].min()  # NaN if the row holds one
    if not kth > -np.inf:
        return _whole_row(row, k)
    cols = np.flatnonzero(row >= kth)  # ascending, at least k
    vals = row[cols]
    m = len(vals)
    top = np.arange(k) if m == k else np.sort(np.argpartition(vals, m - k - 1)[m - k - 1:])  # k + 1 best: ties show
    top = top[np.argsort(-vals[top], kind="stable")]
    if len(top) > k and vals[top[k - 1]] == vals[top[k]]:  # the k-th score ties one left out
        return _whole_row(row, k)
    return cols[top[:k]], vals[top[:k]]


def _select_blocks(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """select() without partitioning whole rows (a pass of argpartition costs about a GEMM).

    The columns are split into `width` disjoint classes (column j mod width). If the k classes
    with the largest maxima all beat every other class's maximum, the top k lie inside them
    (an element of another class has k larger elements above it), so only those k classes
    (k * n / width columns) are partitioned. One vectorised max over the row finds them.
    Rows where that k-th maximum ties, or is -inf, take the whole-row path.
    """
    c, n = scores.shape
    width = _class_width(n)
    depth, tail = divmod(n, width)
    maxima = scores[:, : width * depth].reshape(c, depth, width).max(axis=1)
    if tail:  # the last, partial row of columns joins classes 0..tail-1
        np.maximum(maxima[:, :tail], scores[:, width * depth:], out=maxima[:, :tail])
    # Values, not indices: np.partition costs half of argpartition here (5.5 ms of a 256-row
    # chunk's 12.7 ms of selection at 59k items). The k classes are those whose maximum reaches
    # the k-th largest, exactly k wherever it beats the runner-up; other rows are redone below.
    part = np.partition(maxima, width - k - 1, axis=1)
    runner_up, kth = part[:, width - k - 1], part[:, width - k:].min(axis=1)
    redo = np.flatnonzero(~(kth > runner_up) | (kth == -np.inf))  # ties, all -inf, NaN
    chosen = maxima >= kth[:, None]
    chosen[redo] = False
    chosen[redo, :k] = True  # placeholders: these rows take the whole-row path
    classes = np.nonzero(chosen)[1].reshape(c, k)  # ascending within each row
    # Ascending column order (row t of class j is column t * width + j); past-the-end slots of
    # the partial row score -inf and are never chosen (each chosen class has a finite maximum).
    cols = (classes[:, None, :] + (width * np.arange(depth + (tail > 0)))[None, :, None]).reshape(c, -1)
    past = cols >= n
    vals = np.take_along_axis(scores, np.minimum(cols, n - 1), axis=1)
    vals[past] = -np.inf
    pos, val = _select_whole(vals, k)
    idx = np.take_along_axis(cols, pos, axis=1)
    if len(redo):
        idx[redo], val[redo] = _select_whole(scores[redo], k)
    return idx, val


def _select_whole(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    c, n = scores.shape
    if n > k:
        # k + 1 columns: the extra one shows whether the k-th score ties with an unselected one.
        part = np.argpartition(scores, n - k - 1, axis=1)[:, n - k - 1:]
    else:
        part = np.broadcast_to(np.arange(n), (c, n))
    idx, val = _order(scores, np.sort(part, axis=1))
    if n > k:
        tied = np.flatnonzero((val[:, k - 1] == val[:, k]) & (val[:, k - 1] > -np.inf))
        idx, val = idx[:, :k], val[:, :k]
        if len(tied):
            idx[tied], val[tied] = _resolve_ties(scores[tied], val[tied, k - 1], k)
    return idx, val


def _order(scores: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder columns given in ascending index order by score descending; stable keeps index order on ties."""
    val = np.take_along_axis(scores, idx, axis=1)
    order = np.argsort(-val, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(val, order, axis=1)


def _resolve_ties(scores: np.ndarray, kth: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose k-th score ties beyond the partition: everything above it, then the lowest-index ties."""
    above = scores > kth[:, None]
    equal = scores == kth[:, None]
    need = k - above.sum(axis=1)
    keep = above | (equal & (np.cumsum(equal, axis=1, dtype=np.int32) <= need[:, None]))
    _, cols = np.nonzero(keep)  # exactly k per row, ascending index
    return _order(scores, cols.reshape(len(scores), k))
