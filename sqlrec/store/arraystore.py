"""Reading a model's stored arrays with as few copies as the bytes allow.

Where the bytes were copied before (bench/README.md "Cold open", ML-25M shape, 66 MB of
scoring arrays): DuckDB's buffer pool keeps the blocks it read (105 MB), fetchall()
materialises the result and then makes one Python bytes object per BLOB (66 MB each, the
first freed into DuckDB's allocator, which keeps it), and numpy viewed the bytes. Here:

- One Arrow query per set of arrays (scoring now, the optimizer state when FINETUNE asks):
  DuckDB writes the BLOBs straight into one Arrow binary buffer, and every array is a numpy
  view of its slice (a copy only where a slice is not aligned for its dtype). One query, not
  one per array: DuckDB reads the BLOB column of every row in a vector whatever the filter
  (7 queries took 1.7 s where one takes 0.4 s).

The blocks the read brings into DuckDB's buffer pool stay there as DuckDB's cache (unpinned,
evicted when DuckDB needs the memory), bounded by memory_limit like everything else DuckDB
holds. They are not given back: DuckDB has no statement that evicts cached blocks, and the one
lever, lowering memory_limit for a moment, is a setting of the whole database instance (DuckDB
refuses it per connection: "cannot be set locally", and every duckdb.connect of the same file
in a process shares the instance). While it was lowered, every other cursor saw the lowered
value and ran under it, so a concurrent query could fail for want of memory. A user who wants
the cache smaller sets memory_limit (connect(config={"memory_limit": ...})); sqlrec never
changes it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from sqlrec.store.session import Session


def read(session: Session, sql: str, params: list, *, where: str) -> list[tuple[str, str, list, np.ndarray | None]]:
    """Rows (name, dtype, shape, data) of `sql` (selecting those four columns), data as a uint8
    view of Arrow's buffer (None for NULL)."""
    table = session.arrow(sql, params, where=where)
    names, dtypes, shapes = (table.column(i).to_pylist() for i in range(3))
    return list(zip(names, dtypes, shapes, _blobs(table.column(3)), strict=True))


def _blobs(column: pa.ChunkedArray) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = []
    for chunk in column.chunks:
        if pa.types.is_binary_view(chunk.type) or not (pa.types.is_binary(chunk.type)
                                                        or pa.types.is_large_binary(chunk.type)):
            chunk = chunk.cast(pa.large_binary())  # a layout without one offsets + data buffer
        _, offsets, data = chunk.buffers()
        ends = np.frombuffer(offsets, np.int64 if pa.types.is_large_binary(chunk.type) else np.int32)
        ends = ends[chunk.offset:chunk.offset + len(chunk) + 1]
        body = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        valid = chunk.is_valid().to_numpy(zero_copy_only=False)
        out.extend(body[ends[i]:ends[i + 1]] if valid[i] else None for i in range(len(chunk)))
    return out


def view(data: np.ndarray | bytes, dtype: np.dtype, shape: list[int]) -> np.ndarray:
    """`data` as an array of dtype and shape: a view, or a copy where the bytes are misaligned
    (numpy accepts unaligned arrays, but BLAS and scipy would copy them on every use)."""
    out = np.frombuffer(data, dtype=dtype).reshape(shape)
    return out if out.flags.aligned else out.copy()
