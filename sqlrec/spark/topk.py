"""The code that runs on Spark's executors for EXPORT RECOMMENDATIONS: one Arrow batch of users
in, their top-k rows out.

It is sqlrec.numeric.scoring's own arithmetic (the augmented GEMM that folds both biases in, seen items
set to -inf, the selection with ties broken by the lower item index), so a written row equals
the row `SELECT * FROM m` gives. This module and the scoring functions it calls are pickled by
value (sqlrec.spark.batch registers them), so executors need numpy and pyarrow, as any PySpark
Arrow job does, but not sqlrec itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from sqlrec.numeric.rowselect import select as _select
from sqlrec.numeric.scoring import augment_query, chunk_rows

# Columns of the users DataFrame the executors read (names of sqlrec's own, not the model's).
KEY, VEC, BIAS, SEEN = "key", "vec", "bias", "seen"


def score_batches(batches: Iterable[pa.RecordBatch], shared: Any, k: int, names: list[str]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: `shared` is the broadcast (targets [V | 1 | bv] (n, d + 2), item ids)."""
    targets, item_ids = shared.value
    targets_t = np.asarray(targets, np.float32).T  # the layout scoring.prepare_targets gives
    for batch in batches:
        yield from score_batch(batch, targets_t, item_ids, k, names)


def score_batch(batch: pa.RecordBatch, targets_t: np.ndarray, item_ids: pa.Array, k: int,
                names: list[str]) -> Iterator[pa.RecordBatch]:
    m, n = batch.num_rows, targets_t.shape[1]
    if m == 0 or n == 0:
        return
    d = targets_t.shape[0] - 2
    keys = batch.column(KEY)
    q = np.asarray(batch.column(VEC).flatten().to_numpy(zero_copy_only=False), np.float32).reshape(m, d)
    qb = np.asarray(batch.column(BIAS).to_numpy(zero_copy_only=False), np.float32)
    seen = batch.column(SEEN)
    offsets = np.asarray(seen.offsets.to_numpy(), np.int64)
    offsets -= offsets[0]
    seen_items = np.asarray(seen.flatten().to_numpy(zero_copy_only=False), np.int64)
    kk, rows = min(k, n), chunk_rows(n)
    for a in range(0, m, rows):
        b = min(a + rows, m)
        scores = augment_query(q[a:b], qb[a:b], True) @ targets_t
        counts = np.diff(offsets[a: b + 1])
        scores[np.repeat(np.arange(b - a), counts), seen_items[offsets[a]: offsets[b]]] = -np.inf
        idx, val = _select(scores, kk)
        keep = val > -np.inf
        row, pos = np.nonzero(keep)
        yield pa.RecordBatch.from_arrays(
            [keys.take(pa.array(a + row)), item_ids.take(pa.array(idx[keep])),
             pa.array(val[keep], pa.float32()), pa.array(pos + 1, pa.int32())], names=names)
