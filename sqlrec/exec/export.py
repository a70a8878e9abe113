"""EXPORT RECOMMENDATIONS m TO 'dir/' [(FORMAT parquet, k 10, ...)]: every user's top-N, scored on
Spark and written as Parquet files, with the columns and rows `SELECT * FROM m` gives.

The statement has the shape of DuckDB's `EXPORT DATABASE db TO 'dir' (FORMAT parquet)` and
takes COPY-style options; it works for a model of any engine (every score is U·V + biases).
It writes files, so it is refused where DuckDB's own COPY ... TO would be (a connection with
enable_external_access = false: sqlrec.connect(safe=True), `sqlrec serve`) and, like every write,
on a read-only connection.

A local directory that exists is replaced only with OVERWRITE, and only when it holds nothing
but what Spark writes (part files, _SUCCESS, checksums): Spark deletes the whole directory first.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import numpy as np
import pyarrow as pa

from sqlrec.sql import options as opts
from sqlrec.models.catalog import Catalog
from sqlrec.errors import OptionError, QueryError
from sqlrec.models.model import Model
from sqlrec.store.session import SYSTEM, Session
from sqlrec.spark import runtime as spark
from sqlrec.spark.batch import Job, write_top_k
from sqlrec.sql import ExportRecommendations, parse_select

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# What a Spark Parquet write leaves in its directory: part files, markers, Hadoop checksums.
_SPARK_OUTPUT = re.compile(r"^(part-.*|_SUCCESS|_committed_.*|_started_.*|\..*\.crc)$")


def export(session: Session, catalog: Catalog, st: ExportRecommendations) -> pa.Table:
    where = f"EXPORT RECOMMENDATIONS {st.name}"
    o = opts.resolve(st.options, opts.EXPORT_OPTIONS, f"{where} options")
    model = catalog.load(st.name, where)
    if not session.one(f"SELECT {SYSTEM}.current_setting('enable_external_access')", where=where)[0]:
        raise QueryError(f"{where}: this connection may not write files (enable_external_access = false, as with "
                         f"sqlrec.connect(safe=True) or sqlrec serve); export from a connection that may")
    spark.check_available("EXPORT RECOMMENDATIONS", where)
    master = spark.resolve_master(o["spark_master"], where)
    path = target_path(st.path, master, o["overwrite"], where)
    job = _job(session, model, o, where)
    started = time.perf_counter()
    spark_session = spark.get_session(master, where)
    with spark.spark_errors(f"{where} on {master!r}"):
        n_rows = write_top_k(spark_session, job, path, overwrite=o["overwrite"], partitions=o["partitions"])
    return pa.table({
        "name": [model.name], "version": pa.array([model.version], pa.int32()), "path": [path],
        "format": [o["format"]], "k": pa.array([job.k], pa.int32()), "n_users": pa.array([len(job.user_ids)], pa.int64()),
        "n_rows": pa.array([n_rows], pa.int64()), "seconds": [round(time.perf_counter() - started, 3)],
    })


def _job(session: Session, model: Model, o: dict[str, Any], where: str) -> Job:
    """The model's factors restricted to the candidates, the seen matrix to drop, and k."""
    user, item = model.side("user"), model.side("item")
    user_vecs, user_bias = user.factors
    item_vecs, item_bias = item.factors
    allowed = np.arange(len(item.ids))
    if o["candidates"] is not None:
        sql = parse_select(o["candidates"], f"{where}: option candidates")
        asked = [r[0] for r in session.rows(sql, where=f"{where}: the candidates query failed")]
        _, pos = item.lookup(asked, where)
        allowed = np.unique(pos[pos >= 0])
    seen = model.seen[:, allowed].tocsr() if o["exclude_seen"] else None
    if seen is not None:
        seen.sort_indices()
    k = model.n_recommendations(o["n_recommendations"])
    return Job(user_ids=user.ids, user_vecs=np.asarray(user_vecs, np.float32), user_bias=np.asarray(user_bias, np.float32),
               seen=seen, item_ids=item.ids.take(pa.array(allowed)),
               item_vecs=np.asarray(item_vecs, np.float32)[allowed], item_bias=np.asarray(item_bias, np.float32)[allowed],
               k=int(min(k, len(allowed))), columns=model.columns("user_item"))


def target_path(path: str, master: str, overwrite: bool, where: str) -> str:
    """Where Spark writes. A local path (a local master, or file:) becomes absolute and is checked
    first: an existing one needs overwrite and may hold Spark output only."""
    if path.startswith("file://"):
        path = path[len("file://"):]
    elif _SCHEME.match(path) or not spark.is_local(master):
        return path  # the cluster's file system (hdfs://, s3a://, or its default one) judges it
    local = os.path.abspath(os.path.expanduser(path))
    if not os.path.lexists(local):
        return local
    if not overwrite:
        raise OptionError(f"{where}: {path!r} exists; add OVERWRITE to the options to replace it, "
                          f"or choose another path")
    if not os.path.isdir(local) or os.path.islink(local):
        raise OptionError(f"{where}: {path!r} is not a directory; OVERWRITE replaces a directory of "
                          f"Parquet output only")
    others = sorted(name for name in os.listdir(local) if not _SPARK_OUTPUT.match(name))
    if others:
        raise OptionError(f"{where}: OVERWRITE would delete {path!r}, which holds more than Parquet output "
                          f"({', '.join(others[:3])}{' ...' if len(others) > 3 else ''}); choose another path")
    return local
