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
- Then the blocks that read brought into DuckDB's buffer pool are given back (release_blocks):
  they are a cache of bytes now held as numpy arrays, and DuckDB evicts cached blocks only when
  the memory limit presses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from sqlrec.errors import SqlRecError
from sqlrec.store.session import Session

# A read that brought less than this into the buffer pool leaves it alone: small models are not
# worth touching a global setting for, even for one statement.
RELEASE_MIN_BYTES = 16 << 20

_DEFAULT_LIMIT: list[str] = []  # DuckDB's default memory_limit as it prints, found once per process


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


def pool_bytes(session: Session, where: str) -> int:
    """Bytes DuckDB's buffer manager holds now (every tag)."""
    return int(session.one("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()", where=where)[0])


def release_blocks(session: Session, before: int, where: str, default_limit: Callable[[], str] | None = None) -> bool:
    """Evict from DuckDB's buffer pool about what a read added since `before` (pool_bytes), by
    lowering memory_limit for one statement and resetting it. True when it did.

    DuckDB has no statement that evicts cached blocks; lowering memory_limit is the one way
    (BufferPool::SetLimit evicts unpinned blocks first and refuses, leaving the limit as it
    was, when it cannot). The limit is global and prints rounded (a round trip through
    current_setting drifts: 18.8 GiB -> 18.7 GiB), so it is touched only when it can be put
    back exactly: when it is DuckDB's default, which RESET restores. A limit the user chose is
    never touched (those blocks then stay cached until DuckDB needs the memory). Never inside
    a transaction: a failed SET would abort it. Any failure is ignored: this only frees a cache.
    """
    added = pool_bytes(session, where) - before
    if added < RELEASE_MIN_BYTES or session.in_transaction(where):
        return False
    limit = session.one("SELECT current_setting('memory_limit')", where=where)[0]
    if limit != (default_limit or _default_limit)():
        return False
    target = max(before, 1 << 20)
    try:
        session.run(f"SET memory_limit = '{int(target)}B'", where=where)
    except SqlRecError:
        return False  # DuckDB could not evict enough (blocks in use): it kept the limit as it was
    finally:
        session.run("RESET memory_limit", where=where)
    return True


def _default_limit() -> str:
    # A throwaway in-memory database with no settings prints the default the way ours does.
    if not _DEFAULT_LIMIT:
        import duckdb
        fresh = duckdb.connect(":memory:")
        try:
            _DEFAULT_LIMIT.append(fresh.execute("SELECT current_setting('memory_limit')").fetchone()[0])
        finally:
            fresh.close()
    return _DEFAULT_LIMIT[0]
