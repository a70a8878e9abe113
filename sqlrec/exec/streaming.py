"""Recommendations over every key handed to DuckDB as a stream of Arrow batches.

``CREATE TABLE recs AS SELECT * FROM m`` over 162k users is 1.6M rows: built as one Arrow table
and then copied by DuckDB, they were held twice. A stream is scored batch by batch while DuckDB
reads it (pyarrow RecordBatchReader), so only a batch is held besides DuckDB's copy.

A reader can be scanned once. It is used only where DuckDB scans the reference once and runs the
statement to completion before returning: CREATE TABLE AS and INSERT, the reference in a FROM or
JOIN of the statement's own query (not in a CTE, which DuckDB may inline once per use, nor in an
expression's subquery), outside a user's transaction (a statement that fails mid-stream aborts
an open DuckDB transaction: inside one the rows are built first, as before). Everything else
gets the materialised table.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
from sqlglot import exp

from sqlrec.exec import rewrite
from sqlrec.errors import Error
from sqlrec.store.session import Session

# Keys scored per batch. Scoring a batch holds ~3.5x its rows (top-k arrays, flattening,
# ordering, Arrow) and glibc keeps much of that after it is freed, so at 100 recommendations a
# user 32k keys peaked at 1.8x DuckDB's own table (20M rows: 1079 MB over a 580 MB table), 8k
# keys at 1.25x (719 MB), about what DuckDB alone reading a RecordBatchReader peaks at (729 MB);
# CREATE TABLE AS over ML-25M at 10 a user took the same 24 s with either (bench/stream_rss.py,
# bench/scale_engines.py). 8k keys x 10 rows are 2 MB of Arrow.
BATCH_KEYS = 8_192
# Rows per batch at most (8k keys at 100 a user, as measured above): with n_recommendations in the
# thousands a batch holds fewer keys, so a batch's memory stays bounded whatever N is.
BATCH_ROWS = 819_200


def batch_keys(k: int) -> int:
    """Keys per streamed batch for top-k lists of length k."""
    return max(1, min(BATCH_KEYS, BATCH_ROWS // max(k, 1)))


class RecsStream:
    """Tables of recommendations as one RecordBatchReader; the first is scored at once (bad
    options fail before DuckDB runs), the rest as DuckDB asks for them."""

    def __init__(self, tables: Iterator[pa.Table]):
        first = next(tables)
        self.column_names: list[str] = first.column_names
        self.error: BaseException | None = None  # what stopped scoring (Cancelled...), DuckDB only sees a failure
        self.reader = pa.RecordBatchReader.from_batches(first.schema, self._batches(first, tables))

    def _batches(self, first: pa.Table, rest: Iterator[pa.Table]) -> Iterator[pa.RecordBatch]:
        # Only the batch DuckDB reads is referenced here: a name still bound to the first table,
        # or to the last one while the next is scored, would hold one more batch of rows.
        tables = itertools.chain([first], rest)
        del first
        try:
            for table in tables:
                batches = table.to_batches()
                del table
                while batches:
                    yield batches.pop(0)
        except BaseException as exc:
            self.error = exc
            raise


def streamable(session: Session, tree: exp.Expression, table: exp.Table) -> bool:
    """Whether the model reference `table` in statement `tree` may be read as a stream."""
    if not isinstance(tree, (exp.Create, exp.Insert)):
        return False
    if rewrite.created_kind(tree) not in (None, "TABLE"):
        return False
    node = table
    while node.parent is not None and node is not tree:
        derived = isinstance(node, exp.Subquery) and isinstance(node.parent, (exp.From, exp.Join))
        if isinstance(node, exp.CTE) or isinstance(node, exp.Subquery) and not derived:
            return False
        node = node.parent
    return not session.in_transaction("CREATE TABLE AS")


@contextmanager
def errors_of(streams: list[RecsStream]) -> Iterator[None]:
    """DuckDB reports a failed stream as its own error: the scoring error that failed it is raised."""
    try:
        yield
    except Error:
        failed = next((s.error for s in streams if s.error is not None), None)
        if failed is not None:
            raise failed from None
        raise
