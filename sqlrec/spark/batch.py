"""Every user's top-k on Spark, written as Parquet by the executors (EXPORT RECOMMENDATIONS).

The users (id, factor row, bias, seen item indices) become a DataFrame split across the
executors; the item side ([V | 1 | bv] and the item ids) is broadcast once to every executor,
n_items x (factors + 2) x 4 bytes; each executor scores its users' batches with
sqlrec.spark.topk and writes its part files. Nothing comes back to the driver but the row
count, read from the written files' footers.

No DuckDB and no SQL here: sqlrec.exec.export hands over arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from sqlrec.lazy import sparse as sp

from sqlrec.numeric import rowselect, scoring
from sqlrec.spark import topk

# Users per Arrow record batch built on the driver: list offsets stay far below 2**31.
_USERS_PER_BATCH = 1 << 20


@dataclass
class Job:
    """What to score: the model's factors, restricted to the allowed items, and k."""

    user_ids: pa.Array
    user_vecs: np.ndarray  # (n_users, d) float32
    user_bias: np.ndarray  # (n_users,)
    seen: sp.csr_matrix | None  # users x allowed items to drop (None: drop nothing)
    item_ids: pa.Array  # the allowed items, in index order
    item_vecs: np.ndarray  # (n_allowed, d)
    item_bias: np.ndarray
    k: int
    columns: list[str]  # user id, item id, score, rank: the model's user_item columns


def _list_array(offsets: np.ndarray, values: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(np.asarray(offsets, np.int32)), pa.array(values))


def user_batches(job: Job) -> Iterator[pa.RecordBatch]:
    """The users DataFrame's rows (topk's KEY, VEC, BIAS, SEEN), a bounded number per batch."""
    n, d = job.user_vecs.shape
    vecs = np.ascontiguousarray(job.user_vecs, np.float32)
    seen = job.seen if job.seen is not None else sp.csr_matrix((n, len(job.item_ids)), dtype=np.float32)
    for a in range(0, max(n, 1), _USERS_PER_BATCH):
        b = min(a + _USERS_PER_BATCH, n)
        ptr = seen.indptr[a: b + 1].astype(np.int64)
        yield pa.RecordBatch.from_arrays([
            job.user_ids[a:b],
            _list_array(np.arange(b - a + 1, dtype=np.int64) * d, vecs[a:b].reshape(-1)),
            pa.array(np.asarray(job.user_bias[a:b], np.float32)),
            _list_array(ptr - ptr[0], seen.indices[ptr[0]: ptr[-1]].astype(np.int32)),
        ], names=[topk.KEY, topk.VEC, topk.BIAS, topk.SEEN])


def _through_spark(session: Any, ids: pa.Array) -> tuple[pa.Array, Any]:
    """`ids` as Spark hands them to Python (its Arrow types), and their Spark type."""
    frame = session.createDataFrame(pa.table({"id": ids}))
    return frame.toArrow().column("id").combine_chunks(), frame.schema["id"].dataType


def write_top_k(session: Any, job: Job, path: str, *, overwrite: bool, partitions: int | None) -> int:
    """Score every user of `job` on `session`'s executors, write Parquet under `path`; the row count."""
    from pyspark import cloudpickle
    from pyspark.sql.types import FloatType, IntegerType, StructField, StructType

    for module in (topk, scoring, rowselect):  # executors import numpy and pyarrow only
        cloudpickle.register_pickle_by_value(module)
    users = session.createDataFrame(pa.Table.from_batches(list(user_batches(job))))
    if partitions:
        users = users.repartition(partitions)
    item_ids, item_type = _through_spark(session, job.item_ids)
    user_col, item_col, score_col, rank_col = job.columns
    schema = StructType([StructField(user_col, users.schema[topk.KEY].dataType), StructField(item_col, item_type),
                         StructField(score_col, FloatType()), StructField(rank_col, IntegerType())])
    targets = scoring.augment_targets(job.item_vecs, job.item_bias, True)
    shared = session.sparkContext.broadcast((targets, item_ids))
    try:
        scorer = functools.partial(topk.score_batches, shared=shared, k=job.k, names=job.columns)
        users.mapInArrow(scorer, schema).write.mode("overwrite" if overwrite else "errorifexists").parquet(path)
    finally:
        shared.destroy()
    return int(session.read.parquet(path).count())
