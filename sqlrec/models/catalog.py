"""Models, versions and arrays stored inside the DuckDB file (schema `sqlrec`).

Three plain tables, no pickle: opening a database never executes code.
  sqlrec.models  one row per model version: options, params, info and metrics as JSON
  sqlrec.arrays  numpy arrays as raw bytes + dtype + shape
  sqlrec.ids     the id of every user/item index, as text plus the column's DuckDB type
Saving is one transaction; a crash mid-save leaves the previous version active and intact.
A version is read in one transaction too, so a save on another cursor never shows half of it.
What is read is checked (sqlrec.models.stored) before any of it reaches SQL or scoring: a database
file may have been crafted: the tables are checked first (sqlrec.models.cache.check_catalog) and
every function sqlrec's SQL calls is DuckDB's own (SYSTEM), so nothing the file carries runs.
Loaded models are cached per connection, keyed by (name, version, identity): each version gets a
UUID when saved, because version numbers are reused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
import uuid
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from sqlrec.store import arraystore
from sqlrec.models import stored
from sqlrec.models.cache import SCHEMA, CatalogCache, check_catalog, identity
from sqlrec.engines import HANDLERS
from sqlrec.errors import ModelNotFoundError, ParseError, context, did_you_mean
from sqlrec.numeric.evaluation import METRIC_NAMES
from sqlrec.models.model import Model, result_columns
from sqlrec.store.session import SYSTEM, Session


# Versions whose arrays are kept when the model's keep_versions option is not set: the active
# one, the one before (the usual rollback) and one more, so one bad RETRAIN and one bad rollback
# are both undoable, for at most 3x the model's storage.
KEEP_VERSIONS = 3

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.models (
    key VARCHAR, name VARCHAR, version INTEGER, active BOOLEAN, engine VARCHAR,
    created_at TIMESTAMP, train_seconds DOUBLE, options JSON, params JSON, info JSON, metrics JSON, uid UUID,
    PRIMARY KEY (key, version));
CREATE TABLE IF NOT EXISTS {SCHEMA}.arrays (
    key VARCHAR, version INTEGER, name VARCHAR, dtype VARCHAR, shape BIGINT[], data BLOB);
CREATE TABLE IF NOT EXISTS {SCHEMA}.ids (
    key VARCHAR, version INTEGER, kind VARCHAR, idx INTEGER, id VARCHAR);
"""

SUMMARY_METRICS = ("precision_at_k", "recall_at_k", "auc")  # the columns of m.versions
_SQL_TYPES = {int: "INTEGER", float: "DOUBLE", str: "VARCHAR", bool: "BOOLEAN"}


def _view_params() -> dict[str, str]:
    """Parameter -> SQL type of the sqlrec.metrics columns: what the registered engines declare
    (Handler.summary_params), typed by their options; the first engine to name one types it."""
    out: dict[str, str] = {}
    for cls in HANDLERS.values():
        kinds = {o.name: o.kind for o in cls.params_spec}
        for p in cls.summary_params:
            out.setdefault(p, "INTEGER" if p == "epochs_trained" else _SQL_TYPES.get(kinds[p], "VARCHAR"))
    return out


def _json(column: str, path: str) -> str:
    """`column->>'$.path'` by DuckDB's own function: the ->> operator is a function name a macro
    in the file could take."""
    return f"{SYSTEM}.json_extract_string({column}, '$.{path}')"


def metrics_view() -> str:
    """Compare models with SQL: one row per model and version, one column per metric, the engines'
    summary params beside them. A view over the JSON, so older versions and dropped metrics need no
    migration; recreated at every save, so it follows the engines registered then."""
    return (
        f"CREATE OR REPLACE VIEW {SCHEMA}.metrics AS SELECT name, version, active, engine, created_at, "
        f"train_seconds, TRY_CAST({_json('metrics', 'k')} AS INTEGER) AS k, {_json('metrics', 'split')} AS split, "
        f"TRY_CAST({_json('metrics', 'test_size')} AS DOUBLE) AS test_size, "
        + "".join(f"TRY_CAST({_json('metrics', 'values.' + m)} AS DOUBLE) AS {m}, " for m in METRIC_NAMES)
        + "".join(f"TRY_CAST({_json('params', p)} AS {t}) AS {p}, " for p, t in _view_params().items())
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
        return result_columns(self.user_col, self.item_col, kind)


def check_name(name: str, where: str) -> None:
    """A model name sqlrec can store and find again: not empty, not sqlrec's own schema or scratch
    prefix (a model named sqlrec would shadow sqlrec.metrics), no control characters."""
    if not name.strip():
        raise ParseError(f"{where}: a model needs a name (got {name!r})")
    if name.lower() == SCHEMA or name.lower().startswith("__sqlrec"):
        raise ParseError(f"{where}: the name {name!r} is reserved for sqlrec's own tables; choose another")
    if len(name) > 255 or any(ord(c) < 32 for c in name):
        raise ParseError(f"{where}: model name {name[:40]!r} is too long or holds control characters")


class Catalog:
    def __init__(self, session: Session, cache: CatalogCache | None = None, trust_stored_sql: bool = False):
        self.session = session
        # Whether models read from the file may re-run the SQL stored in them (see Model.trusted).
        self.trust_stored_sql = trust_stored_sql
        # Shared by every cursor of a connection; mutated in place, never rebound.
        self.cache = cache if cache is not None else CatalogCache(f"catalog:{id(self)}")
        self._cache = self.cache.models
        self.in_user_transaction = False  # set when catalog work joined a transaction the user opened

    # --- reading -----------------------------------------------------------------------

    def actives(self) -> dict[str, tuple[str, int]]:
        """Model key -> (stored name, active version), as this handle sees them (cached)."""
        return self.cache.active_versions(self.session)

    def names(self) -> list[str]:
        return sorted(name for name, _ in self.actives().values())

    def active_version(self, name: str) -> tuple[str, int] | None:
        """(stored name, version) of the active version, or None."""
        return self.actives().get(name.lower())

    def exists(self, name: str) -> bool:
        return self.active_version(name) is not None

    def require(self, name: str, where: str) -> tuple[str, int]:
        found = self.active_version(name)
        if found is None:
            names = self.names()
            raise ModelNotFoundError(
                f"{where}: model {name!r} does not exist{did_you_mean(name, names)}"
                + ("" if names else " (no models yet: CREATE MODEL first)"))
        return found

    def table_exists(self, name: str) -> bool:
        """A table or view of that name (any case) in the current schema."""
        return bool(self.session.rows(
            f"SELECT 1 FROM {SYSTEM}.duckdb_tables() WHERE {SYSTEM}.lower(table_name) = {SYSTEM}.lower($1) "
            f"AND schema_name = {SYSTEM}.current_schema() AND database_name = {SYSTEM}.current_database() "
            f"UNION ALL SELECT 1 FROM {SYSTEM}.duckdb_views() WHERE {SYSTEM}.lower(view_name) = {SYSTEM}.lower($1) "
            f"AND NOT internal AND schema_name = {SYSTEM}.current_schema() "
            f"AND database_name = {SYSTEM}.current_database()", [name], where="looking up tables"))

    def load(self, name: str, where: str) -> Model:
        _, version = self.require(name, where)
        key = (name.lower(), version, self.cache.identity(self.session, name.lower(), version) or "")
        if key in self._cache:
            return self._cache[key]
        with self._transaction(where):
            # Looked up again inside the read transaction: a save on another cursor between the
            # first look-up and this read would otherwise leave half a version to read.
            uid = "uid" if "uid" in self.cache.versions(self.session).columns else "NULL"
            row = self.session.one(f"SELECT version, created_at, {uid} FROM {SCHEMA}.models WHERE key = ? AND active",
                                   [key[0]], where="reading the model catalog")
            if row is None:
                self.cache.wrote()
                raise ModelNotFoundError(f"{where}: model {name!r} was dropped while it was being read")
            found = (key[0], row[0], identity(key[0], *row))
            if found != key:  # changed since the versions were cached: read them again next time
                self.cache.wrote()
            key = found
            model = self._read(key[0], row[0], where)
        model.trusted = self.trust_stored_sql
        self._forget(key[0])
        self._cache[key] = model
        return model

    def load_version(self, name: str, version: int, where: str) -> Model:
        """A given version of a model (USING version = n): any version whose arrays are kept."""
        stored_name, active = self.require(name, where)
        if version == active:
            return self.load(name, where)
        key = (name.lower(), int(version), self.cache.identity(self.session, name.lower(), int(version)) or "")
        if key not in self._cache:
            with self._transaction(where):
                self._check_version(stored_name, key[1], where)
                model = self._read(key[0], key[1], where)
            model.trusted = self.trust_stored_sql
            self._cache[key] = model
        return self._cache[key]

    def _check_version(self, name: str, version: int, where: str) -> None:
        """A clear error unless `version` of the model exists with its arrays."""
        rows = dict(self.session.rows(
            f"SELECT m.version, (SELECT {SYSTEM}.count_star() FROM {SCHEMA}.ids i WHERE i.key = m.key "
            "AND i.version = m.version) "
            f"FROM {SCHEMA}.models m WHERE m.key = ? ORDER BY m.version", [name.lower()], where=where))
        kept = [v for v, n in rows.items() if n]
        listing = f"versions with arrays: {', '.join(map(str, kept))}"
        if version not in rows:
            raise ModelNotFoundError(f"{where}: model {name!r} has no version {version} ({listing})")
        if not rows[version]:
            raise ModelNotFoundError(f"{where}: version {version} of model {name!r} keeps its metadata only; its "
                                     f"arrays were removed by the keep_versions option ({listing})")

    def versions(self, name: str, where: str) -> pa.Table:
        """One row per stored version of a model (DESCRIBE m.versions, SELECT * FROM m.versions)."""
        stored_name, _ = self.require(name, where)
        metrics = "".join(f"TRY_CAST({_json('m.metrics', 'values.' + k)} AS DOUBLE) AS {k}, " for k in SUMMARY_METRICS)
        kind = _json("m.info", "kind")
        return self.session.arrow(
            f"SELECT m.version, m.created_at, CASE WHEN {kind} IS NULL THEN 'create' ELSE {kind} END AS kind, m.engine, "
            f"{_json('m.info', 'source_sql')} AS source, TRY_CAST({_json('m.info', 'n_source_rows')} AS BIGINT) AS \"rows\", "
            f"TRY_CAST({_json('m.info', 'n_users')} AS BIGINT) AS users, "
            f"TRY_CAST({_json('m.info', 'n_items')} AS BIGINT) AS items, "
            f"m.train_seconds, {metrics}m.active, EXISTS (SELECT 1 FROM {SCHEMA}.ids i WHERE i.key = m.key "
            f"AND i.version = m.version) AS stored, {_json('m.info', 'notes')} AS notes "
            f"FROM {SCHEMA}.models m WHERE m.key = ? ORDER BY m.version", [stored_name.lower()], where=where)

    def _read(self, key: str, version: int, where: str) -> Model:
        label = f"{where}: reading model {key!r}"
        row = self.session.one(
            f"SELECT name, engine, options, params, info, metrics, created_at, train_seconds "
            f"FROM {SCHEMA}.models WHERE key = ? AND version = ?", [key, version], where=label)
        if row is None:  # replaced by another cursor between the lookup and this read
            raise ModelNotFoundError(f"{where}: model {key!r} changed while it was being read; run the query again")
        with context(where):  # labels what sqlrec.models.stored finds wrong with the rows
            meta = stored.metadata(row)
            later = stored.training_only(meta["engine"])  # optimizer state: more than half the bytes, FINETUNE's only
            select = f"SELECT name, dtype, shape, data FROM {SCHEMA}.arrays WHERE key = ? AND version = ?"
            raw = arraystore.read(self.session, select + f" AND {SYSTEM}.list_position(?, name) IS NULL", [key, version, later],
                                  where=label)
            arrays = stored.arrays(raw, meta["name"])
            del raw  # the views live on in `arrays` (numpy keeps Arrow's buffer alive), nothing else
            users = self._read_ids(key, version, "user", meta["info"].user.type, label)
            items = self._read_ids(key, version, "item", meta["info"].item.type, label)
            def load_rest() -> dict[str, np.ndarray]:  # when FINETUNE first asks, in its own errors.context
                return stored.arrays(arraystore.read(self.session, select + f" AND {SYSTEM}.list_position(?, name) IS NOT NULL", [
                    key, version, later], where=f"{where}: reading the training state of model {key!r}"), meta["name"])
            return stored.build_model(meta, arrays, users, items, version, load_rest=load_rest)

    def _read_ids(self, key: str, version: int, kind: str, type_name: str, where: str) -> pa.Array:
        # type_name passed stored.metadata's allow-list: it is a DuckDB type, not SQL text.
        table = self.session.arrow(
            f"SELECT CAST(id AS {type_name}) AS id FROM {SCHEMA}.ids "
            f"WHERE key = ? AND version = ? AND kind = ? ORDER BY idx", [key, version, kind], where=where)
        return table.column(0).combine_chunks()

    def summaries(self) -> list[ModelSummary]:
        """Every active model, by name."""
        if not self.actives():  # also: no catalog table in this file
            return []
        rows = self.session.rows(
            f"SELECT name, engine, version, created_at, train_seconds, info, metrics "
            f"FROM {SCHEMA}.models WHERE active ORDER BY name", where="reading the model catalog")
        out = []
        for name, engine, version, created_at, seconds, info, metrics in rows:
            (user_col, item_col, n_users, n_items), values = stored.summary_fields(name, info, metrics)
            out.append(ModelSummary(
                name=name, engine=engine, version=version, user_col=user_col, item_col=item_col,
                n_users=n_users, n_items=n_items, created_at=created_at,
                train_seconds=seconds, metrics=values))
        return out

    # --- writing -----------------------------------------------------------------------

    def save(self, model: Model, where: str) -> int:
        """Store a new active version of `model` in one transaction; returns its version."""
        key = model.name.lower()
        label = f"{where}: saving the model failed; " + (
            "the open transaction is aborted: ROLLBACK it (neither the model nor its other changes are kept)"
            if self.session.in_transaction(where) else "the previous version is intact")
        run = self.session.run
        with self._transaction(label):
            run(DDL, where=label)
            columns = check_catalog(self.session, label, writing=True) or set()
            run(metrics_view(), where=label)
            newest = self.session.one(f"SELECT {SYSTEM}.max(version) FROM {SCHEMA}.models WHERE key = ?",
                                      [key], where=label)[0]
            version = (newest or 0) + 1
            # keep_versions versions keep their arrays, for rollback and USING version: this one, the
            # previous active one (after a rollback it need not be the newest), then the newest;
            # older ones keep their metadata (history, comparisons) only.
            keep = model.settings.keep_versions or KEEP_VERSIONS
            for table in ("arrays", "ids"):
                run(f"DELETE FROM {SCHEMA}.{table} WHERE key = ? AND version NOT IN (SELECT version FROM "
                    f"{SCHEMA}.models WHERE key = ? ORDER BY active DESC, version DESC LIMIT ?)",
                    [key, key, keep - 1], where=label)
            run(f"UPDATE {SCHEMA}.models SET active = false WHERE key = ?", [key], where=label)
            created = datetime.now(timezone.utc).replace(tzinfo=None)
            uid = uuid.uuid4() if "uid" in columns else None  # made here: gen_random_uuid() would be a call
            run(f"INSERT INTO {SCHEMA}.models (key, name, version, active, engine, created_at, train_seconds, options, "
                f"params, info, metrics{', uid' if uid else ''}) VALUES (?, ?, ?, true, ?, ?, ?, ?, ?, ?, ?"
                f"{', ?' if uid else ''})",
                [key, model.name, version, model.engine, created, model.train_seconds,
                 *map(stored.to_json, (model.options, model.params, model.info.to_dict(), model.metrics)),
                 *([str(uid)] if uid else [])], where=label)
            self.session.many(
                f"INSERT INTO {SCHEMA}.arrays VALUES (?, ?, ?, ?, ?, ?)",
                [[key, version, name, a.dtype.str, list(a.shape), np.ascontiguousarray(a).tobytes()]
                 for name, a in stored.model_arrays(model).items()], where=label)
            for side in ("user", "item"):
                with self.session.registered("ids", pa.table({
                        "idx": pa.array(np.arange(len(model.side(side).ids), dtype=np.int32)),
                        "id": model.side(side).ids})) as view:
                    run(f"INSERT INTO {SCHEMA}.ids SELECT ?, ?, ?, idx, CAST(id AS VARCHAR) FROM {view}",
                        [key, version, side], where=label)
        model.version, model.created_at = version, created
        model.trusted = True  # this connection wrote it: its stored SQL is the user's own
        self.cache.wrote()
        self._forget(key)
        if not self.in_user_transaction:  # a ROLLBACK would leave a cached version that never was
            self._cache[(key, version, identity(key, version, created, uid))] = model
        return version

    def set_version(self, name: str, version: int, where: str) -> None:
        """Make a kept version the active one (ALTER MODEL m SET VERSION n: rollback)."""
        stored_name, _ = self.require(name, where)
        key = stored_name.lower()
        with self._transaction(where):
            self._check_version(stored_name, version, where)
            self.session.run(f"UPDATE {SCHEMA}.models SET active = (version = ?) WHERE key = ?", [version, key],
                             where=where)
        self.cache.wrote()
        self._forget(key)

    def drop_version(self, name: str, version: int, where: str) -> None:
        """Remove one version that is not the active one (DROP MODEL m VERSION n)."""
        stored_name, active = self.require(name, where)
        if version == active:
            raise ModelNotFoundError(f"{where}: version {version} is the active version of model {stored_name!r}; "
                                     "make another one active first (ALTER MODEL ... SET VERSION) or DROP MODEL")
        key = stored_name.lower()
        with self._transaction(where):
            if not self.session.rows(f"SELECT 1 FROM {SCHEMA}.models WHERE key = ? AND version = ?",
                                     [key, version], where=where):
                raise ModelNotFoundError(f"{where}: model {stored_name!r} has no version {version}")
            for table in ("models", "arrays", "ids"):
                self.session.run(f"DELETE FROM {SCHEMA}.{table} WHERE key = ? AND version = ?", [key, version],
                                 where=where)
        for cached in [k for k in self._cache if k[:2] == (key, version)]:
            del self._cache[cached]

    def drop(self, name: str, where: str) -> None:
        key = name.lower()
        with self._transaction(where):
            for table in ("models", "arrays", "ids"):
                self.session.run(f"DELETE FROM {SCHEMA}.{table} WHERE key = ?", [key], where=where)
        self.cache.wrote()
        self._forget(key)

    def _forget(self, key: str) -> None:
        for cached in [k for k in self._cache if k[0] == key]:
            del self._cache[cached]

    @contextmanager
    def _transaction(self, where: str) -> Iterator[None]:
        """Catalog work in one transaction (Session.transaction: the user's when one is open)."""
        with self.session.transaction(where) as joined:
            if joined:
                self.in_user_transaction = True
            yield
