"""Models, versions and arrays stored inside the DuckDB file (schema `sqlrec`).

Three plain tables, no pickle: opening a database never executes code.
  sqlrec.models  one row per model version: options, params, info and metrics as JSON
  sqlrec.arrays  numpy arrays as raw bytes + dtype + shape
  sqlrec.ids     the id of every user/item index, as text plus the column's DuckDB type
Saving is one transaction; a crash mid-save leaves the previous version active and intact.
Loaded models are cached per connection, keyed by (name, version).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from .errors import ModelNotFoundError, did_you_mean, wrap_duckdb
from .evaluation import METRIC_NAMES
from .handlers import HANDLERS, Handler

SCHEMA = "sqlrec"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.models (
    key VARCHAR, name VARCHAR, version INTEGER, active BOOLEAN, engine VARCHAR,
    created_at TIMESTAMP, train_seconds DOUBLE, options JSON, params JSON, info JSON, metrics JSON,
    PRIMARY KEY (key, version));
CREATE TABLE IF NOT EXISTS {SCHEMA}.arrays (
    key VARCHAR, version INTEGER, name VARCHAR, dtype VARCHAR, shape BIGINT[], data BLOB);
CREATE TABLE IF NOT EXISTS {SCHEMA}.ids (
    key VARCHAR, version INTEGER, kind VARCHAR, idx INTEGER, id VARCHAR);
"""

# Compare models with SQL: one row per model and version, one column per metric, the params
# beside them. A view over the JSON, so older versions and dropped metrics need no migration.
_VIEW_PARAMS = {"loss": "VARCHAR", "no_components": "INTEGER", "epochs": "INTEGER",
                "epochs_trained": "INTEGER", "learning_rate": "DOUBLE", "learning_schedule": "VARCHAR",
                "item_alpha": "DOUBLE", "user_alpha": "DOUBLE"}
METRICS_VIEW = (
    f"CREATE OR REPLACE VIEW {SCHEMA}.metrics AS SELECT name, version, active, engine, created_at, "
    "train_seconds, TRY_CAST(metrics->>'$.k' AS INTEGER) AS k, metrics->>'$.split' AS split, "
    "TRY_CAST(metrics->>'$.test_size' AS DOUBLE) AS test_size, "
    + "".join(f"TRY_CAST(metrics->>'$.values.{m}' AS DOUBLE) AS {m}, " for m in METRIC_NAMES)
    + "".join(f"TRY_CAST(params->>'$.{p}' AS {t}) AS {p}, " for p, t in _VIEW_PARAMS.items())
    + f"params FROM {SCHEMA}.models"
)


@dataclass(frozen=True)
class ModelSummary:
    """One active model as SHOW MODELS and the front-ends see it (no arrays loaded)."""

    name: str
    engine: str
    version: int
    user_col: str
    item_col: str
    n_users: int
    n_items: int
    created_at: datetime
    train_seconds: float
    metrics: dict[str, float]  # held-out metric values (empty without evaluation)

    def columns(self, kind: str = "user_item") -> list[str]:
        """Result columns of a recommendation query of this kind."""
        from .model import result_columns

        return result_columns(self.user_col, self.item_col, kind)


@dataclass
class StoredModel:
    name: str
    engine: str
    options: dict[str, Any]  # resolved create-time options (common ones)
    params: dict[str, Any]  # resolved engine parameters
    info: dict[str, Any]  # columns, id types, counts, training query
    metrics: dict[str, Any]
    users: pa.Array
    items: pa.Array
    seen: sp.csr_matrix
    popularity: np.ndarray  # item scores, the cold-start fallback
    handler: Handler
    version: int = 0
    created_at: datetime | None = None
    train_seconds: float = 0.0
    extra_arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def user_col(self) -> str:
        return self.info["user_col"]

    @property
    def item_col(self) -> str:
        return self.info["item_col"]

    def item_seen_by(self) -> sp.csr_matrix:
        """items x users: who has each item (exclusion for item_user), built once."""
        if "_seen_t" not in self.__dict__:
            self.__dict__["_seen_t"] = self.seen.T.tocsr()
        return self.__dict__["_seen_t"]


class Catalog:
    def __init__(self, duck: duckdb.DuckDBPyConnection, cache: dict | None = None):
        self.duck = duck
        # Shared by every cursor of a connection; mutated in place, never rebound.
        self._cache: dict[tuple[str, int], StoredModel] = {} if cache is None else cache

    # --- reading -----------------------------------------------------------------------

    def _has_schema(self) -> bool:
        return bool(self.duck.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = 'models' "
            "AND database_name = current_database()", [SCHEMA]
        ).fetchone()[0])

    def names(self) -> list[str]:
        if not self._has_schema():
            return []
        return [r[0] for r in self.duck.execute(
            f"SELECT name FROM {SCHEMA}.models WHERE active ORDER BY name").fetchall()]

    def active_version(self, name: str) -> tuple[str, int] | None:
        """(stored name, version) of the active version, or None."""
        if not self._has_schema():
            return None
        row = self.duck.execute(
            f"SELECT name, version FROM {SCHEMA}.models WHERE key = ? AND active", [name.lower()]
        ).fetchone()
        return (row[0], row[1]) if row else None

    def exists(self, name: str) -> bool:
        return self.active_version(name) is not None

    def require(self, name: str, where: str) -> tuple[str, int]:
        found = self.active_version(name)
        if found is None:
            raise ModelNotFoundError(
                f"{where}: model {name!r} does not exist{did_you_mean(name, self.names())}"
                + ("" if self.names() else " (no models yet: CREATE MODEL first)")
            )
        return found

    def load(self, name: str, where: str) -> StoredModel:
        stored_name, version = self.require(name, where)
        key = (name.lower(), version)
        if key in self._cache:
            return self._cache[key]
        model = self._read(name.lower(), version)
        self._forget(key[0])
        self._cache[key] = model
        return model

    def _read(self, key: str, version: int) -> StoredModel:
        row = self.duck.execute(
            f"SELECT name, engine, options, params, info, metrics, created_at, train_seconds "
            f"FROM {SCHEMA}.models WHERE key = ? AND version = ?", [key, version]).fetchone()
        name, engine, options, params, info, metrics, created_at, train_seconds = row
        options, params, info, metrics = (json.loads(x) for x in (options, params, info, metrics))
        arrays: dict[str, np.ndarray] = {}
        for array, dtype, shape, data in self.duck.execute(
                f"SELECT name, dtype, shape, data FROM {SCHEMA}.arrays WHERE key = ? AND version = ?",
                [key, version]).fetchall():
            arrays[array] = np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape)
        users = self._read_ids(key, version, "user", info["user_type"])
        items = self._read_ids(key, version, "item", info["item_type"])
        seen = sp.csr_matrix(
            (np.ones(len(arrays["seen_indices"]), np.float32), arrays["seen_indices"], arrays["seen_indptr"]),
            shape=(len(users), len(items)))
        handler_arrays = {k[2:]: v for k, v in arrays.items() if k.startswith("h.")}
        handler = HANDLERS[engine].from_arrays(params, handler_arrays)
        return StoredModel(
            name=name, engine=engine, options=options, params=params, info=info, metrics=metrics,
            users=users, items=items, seen=seen, popularity=arrays["popularity"], handler=handler,
            version=version, created_at=created_at, train_seconds=train_seconds,
            extra_arrays={k[2:]: v for k, v in arrays.items() if k.startswith("x.")},
        )

    def _read_ids(self, key: str, version: int, kind: str, type_name: str) -> pa.Array:
        table = self.duck.sql(
            f"SELECT CAST(id AS {type_name}) AS id FROM {SCHEMA}.ids "
            f"WHERE key = ? AND version = ? AND kind = ? ORDER BY idx", params=[key, version, kind]).to_arrow_table()
        return table.column(0).combine_chunks()

    def rows(self) -> list[dict[str, Any]]:
        """Every active model as a dict (SHOW MODELS)."""
        if not self._has_schema():
            return []
        cur = self.duck.execute(
            f"SELECT name, version, engine, created_at, train_seconds, options, info, metrics "
            f"FROM {SCHEMA}.models WHERE active ORDER BY name")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    def summaries(self) -> list[ModelSummary]:
        """Every active model, by name."""
        out = []
        for r in self.rows():
            info, metrics = json.loads(r["info"]), json.loads(r["metrics"])
            out.append(ModelSummary(
                name=r["name"], engine=r["engine"], version=r["version"], user_col=info["user_col"],
                item_col=info["item_col"], n_users=info["n_users"], n_items=info["n_items"],
                created_at=r["created_at"], train_seconds=r["train_seconds"],
                metrics=dict(metrics.get("values") or {})))
        return out

    # --- writing -----------------------------------------------------------------------

    def save(self, model: StoredModel) -> int:
        """Store a new active version of `model` in one transaction; returns its version."""
        key = model.name.lower()
        with self._transaction():
            self.duck.execute(DDL)
            self.duck.execute(METRICS_VIEW)
            version = self.duck.execute(
                f"SELECT coalesce(max(version), 0) + 1 FROM {SCHEMA}.models WHERE key = ?", [key]).fetchone()[0]
            # Older versions keep their metadata (history, comparisons) but not their arrays.
            self.duck.execute(f"UPDATE {SCHEMA}.models SET active = false WHERE key = ?", [key])
            for table in ("arrays", "ids"):
                self.duck.execute(f"DELETE FROM {SCHEMA}.{table} WHERE key = ?", [key])
            created = datetime.now(timezone.utc).replace(tzinfo=None)
            self.duck.execute(
                f"INSERT INTO {SCHEMA}.models VALUES (?, ?, ?, true, ?, ?, ?, ?, ?, ?, ?)",
                [key, model.name, version, model.engine, created, model.train_seconds,
                 _json(model.options), _json(model.params), _json(model.info), _json(model.metrics)])
            arrays = {"seen_indptr": model.seen.indptr.astype(np.int64),
                      "seen_indices": model.seen.indices.astype(np.int32),
                      "popularity": model.popularity.astype(np.float32)}
            arrays.update({f"h.{k}": v for k, v in model.handler.arrays().items()})
            arrays.update({f"x.{k}": v for k, v in model.extra_arrays.items()})
            self.duck.executemany(
                f"INSERT INTO {SCHEMA}.arrays VALUES (?, ?, ?, ?, ?, ?)",
                [[key, version, name, a.dtype.str, list(a.shape), np.ascontiguousarray(a).tobytes()]
                 for name, a in arrays.items()])
            for kind, ids in (("user", model.users), ("item", model.items)):
                self._write_ids(key, version, kind, ids)
        model.version, model.created_at = version, created
        self._forget(key)
        self._cache[(key, version)] = model
        return version

    def _write_ids(self, key: str, version: int, kind: str, ids: pa.Array) -> None:
        view = "__sqlrec_ids_upload"
        self.duck.register(view, pa.table({"idx": pa.array(np.arange(len(ids), dtype=np.int32)), "id": ids}))
        try:
            self.duck.execute(
                f"INSERT INTO {SCHEMA}.ids SELECT ?, ?, ?, idx, CAST(id AS VARCHAR) FROM {view}",
                [key, version, kind])
        finally:
            self.duck.unregister(view)

    def drop(self, name: str) -> None:
        key = name.lower()
        with self._transaction():
            for table in ("models", "arrays", "ids"):
                self.duck.execute(f"DELETE FROM {SCHEMA}.{table} WHERE key = ?", [key])
        self._forget(key)

    def _forget(self, key: str) -> None:
        for cached in [k for k in self._cache if k[0] == key]:
            del self._cache[cached]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction around a catalog write, unless the user has one open (theirs covers us)."""
        try:
            self.duck.execute("BEGIN TRANSACTION")
            own = True
        except duckdb.TransactionException:
            own = False
        except duckdb.Error as exc:
            raise wrap_duckdb(exc, "saving the model") from exc
        try:
            yield
        except BaseException:
            if own:
                self.duck.execute("ROLLBACK")
            raise
        if own:
            self.duck.execute("COMMIT")


def _json(value: Any) -> str:
    return json.dumps(value, default=_jsonable, sort_keys=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (datetime,)):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in model metadata")
