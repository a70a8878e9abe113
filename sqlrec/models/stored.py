"""What a stored model must look like before sqlrec uses it.

A database file can come from anywhere. The catalog reads rows; this module turns them into a
Model only when they are what sqlrec itself writes: JSON objects where JSON is stored, a known
engine, plain column names, DuckDB type names from the allow-list (they are cast to in SQL),
arrays of the dtypes sqlrec writes with sizes that match their shapes, index arrays inside
their bounds and factors that are finite. Anything else is a CorruptModelError naming the
model, never a raw exception, a wrong answer or SQL taken from the file.
"""

from __future__ import annotations

import json
from datetime import datetime
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from sqlrec.lazy import sparse as sp

from sqlrec.numeric import approx
from sqlrec.store import arraystore
from sqlrec.errors import CorruptModelError, context, unlabelled
from sqlrec.engines import HANDLERS
from sqlrec.models.model import Model
from sqlrec.models.info import ModelInfo, ModelOptions, check_stored
from sqlrec.sql.options import COMMON_OPTIONS
from sqlrec.sql.types import check_type

# Every dtype sqlrec writes (little-endian float32/64, int32/64, bool).
DTYPES = frozenset({"<f4", "<f8", "<i4", "<i8", "|b1"})
_MAX_N_RECOMMENDATIONS = 100_000


def _corrupt(name: Any, what: str) -> CorruptModelError:
    """The error for a stored model that is not what sqlrec writes; the caller's
    sqlrec.errors.context names the statement that read it."""
    return unlabelled(CorruptModelError(f"model {name!r} is corrupt ({what}); recreate it with CREATE OR REPLACE MODEL"))


def _object(value: Any, name: Any, field: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise _corrupt(name, f"its {field} are not a JSON object")
    return parsed


def metadata(row: tuple) -> dict[str, Any]:
    """A models-table row as checked metadata: its info typed (ModelInfo), its options checked
    to have the types ModelOptions reads."""
    name, engine, options, params, info, metrics, created_at, train_seconds = row
    meta = {"name": name, "engine": engine, "created_at": created_at, "train_seconds": train_seconds or 0.0,
            **{f: _object(v, name, f) for f, v in
               (("options", options), ("params", params), ("info", info), ("metrics", metrics))}}
    if not isinstance(name, str) or not name:
        raise _corrupt(name, "no name")
    if engine not in HANDLERS:
        raise _corrupt(name, f"unknown engine {engine!r}")
    info = meta["info"]
    for side in ("user", "item"):
        if not isinstance(info.get(f"{side}_col"), str) or not info[f"{side}_col"]:
            raise _corrupt(name, f"{side} id column name missing")
        if check_type(info.get(f"{side}_type")) is None:
            raise _corrupt(name, f"{side} id type {str(info.get(f'{side}_type'))[:60]!r} is not a DuckDB type "
                                        "sqlrec stores")
        if not _count(info.get(f"n_{side}s")):
            raise _corrupt(name, f"n_{side}s is not a count")
    n_rec = meta["options"].get("n_recommendations")
    if n_rec is not None and not (_count(n_rec) and 1 <= n_rec <= _MAX_N_RECOMMENDATIONS):
        raise _corrupt(name, f"n_recommendations {n_rec!r} out of range")
    try:  # every other key sqlrec reads back: of the type it writes
        meta["info"] = ModelInfo.from_dict(info)
        ModelOptions.from_dict(meta["options"])
        check_stored(meta["params"], HANDLERS[engine].params_spec, "parameter")
        check_stored({k: v for k, v in meta["params"].items() if k == "random_state"}, COMMON_OPTIONS, "parameter")
    except ValueError as exc:
        raise _corrupt(name, str(exc)) from exc
    return meta


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def arrays(rows: list[tuple], name: str) -> dict[str, np.ndarray]:
    """(name, dtype, shape, bytes) rows as numpy arrays, each checked against its shape; the
    bytes may be any buffer (sqlrec.store.arraystore passes views of Arrow's), viewed, not copied."""
    out: dict[str, np.ndarray] = {}
    for array, dtype, shape, data in rows:
        if dtype not in DTYPES or not isinstance(shape, list) or not all(_count(d) for d in shape):
            raise _corrupt(name, f"array {array!r} has dtype {dtype!r} and shape {shape!r}")
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if data is None or len(data) != expected:
            raise _corrupt(name, f"array {array!r} holds {0 if data is None else len(data)} bytes, "
                                        f"its shape needs {expected}")
        out[array] = arraystore.view(data, np.dtype(dtype), shape)
    return out


def _seen(arrays_: dict[str, np.ndarray], n_users: int, n_items: int, name: str) -> sp.csr_matrix:
    indptr, indices = arrays_.get("seen_indptr"), arrays_.get("seen_indices")
    if indptr is None or indices is None or indptr.ndim != 1 or indices.ndim != 1 or len(indptr) != n_users + 1:
        raise _corrupt(name, "seen interactions missing or of the wrong size")
    if indptr[0] != 0 or indptr[-1] != len(indices) or np.any(np.diff(indptr) < 0):
        raise _corrupt(name, "seen interactions index pointers out of order")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_items):
        raise _corrupt(name, "seen interactions name items the model does not have")
    return _csr(indptr, indices, (n_users, n_items))


def _csr(indptr: np.ndarray, indices: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """A checked (indptr, indices) pair as a csr matrix of ones, with no copy of the indices.

    The constructor would copy them (scipy's prune copies an index array that is a small view
    of a larger buffer, and ours view Arrow's one buffer) and a float32 of ones would add 4
    bytes per pair: the ones are bool (scoring reads only the pattern; sums count them)."""
    out = sp.csr_matrix(shape, dtype=bool)
    index_dtype = np.int32 if len(indices) < np.iinfo(np.int32).max else np.int64
    out.indptr = np.asarray(indptr, index_dtype)
    out.indices = np.asarray(indices, index_dtype)
    out.data = np.ones(len(indices), bool)
    return out


def training_only(engine: str) -> list[str]:
    """Stored names of the arrays an engine needs for training further only (read on demand)."""
    cls = HANDLERS.get(engine)
    return [f"h.{a}" for a in getattr(cls, "training_only_arrays", ())]


def build_model(meta: dict[str, Any], arrays_: dict[str, np.ndarray], users: pa.Array, items: pa.Array,
                version: int,
                load_rest: Callable[[], dict[str, np.ndarray]] | None = None) -> Model:
    """The Model of checked rows. load_rest, when given, reads training_only(engine) later
    (by stored name); the handler asks for them when FINETUNE first needs them (in FINETUNE's
    sqlrec.errors.context, which labels what is wrong with them)."""
    name, info = meta["name"], meta["info"]
    n_users, n_items = len(users), len(items)
    if (n_users, n_items) != (info.user.n, info.item.n):
        raise _corrupt(name, f"{n_users} user ids and {n_items} item ids stored, "
                                    f"{info.user.n} and {info.item.n} expected")
    seen = _seen(arrays_, n_users, n_items, name)
    popularity = arrays_.get("popularity")
    if popularity is None or popularity.shape != (n_items,) or not np.isfinite(popularity).all():
        raise _corrupt(name, "item popularity missing or of the wrong size")
    handler_arrays = {k[2:]: v for k, v in arrays_.items() if k.startswith("h.")}
    lazy = training_only(meta["engine"])
    rest = None
    if load_rest is not None and lazy and not all(a in arrays_ for a in lazy):
        def rest() -> dict[str, np.ndarray]:
            got = load_rest()
            missing = [a for a in lazy if a not in got]
            if missing:
                raise _corrupt(name, f"its training state {', '.join(missing)} is missing")
            for a in lazy:  # an accumulator has the shape of the factors it belongs to
                base = handler_arrays.get(a[2:].split("_")[0] + ("_embeddings" if "_embedding_" in a else "_biases"))
                if base is not None and got[a].shape != base.shape:
                    raise _corrupt(name, f"its training state {a[2:]} has shape {got[a].shape}")
            return {a[2:]: got[a] for a in lazy}
    try:
        kwargs = {} if rest is None else {"load_rest": rest}
        handler = HANDLERS[meta["engine"]].from_arrays(meta["params"], handler_arrays, **kwargs)
        factors = [handler.user_factors(), handler.item_factors()]
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise _corrupt(name, f"its {meta['engine']} state cannot be read: {exc}") from exc
    d = meta["params"].get("no_components")
    width = factors[1][0].shape[1] if factors[1][0].ndim == 2 else None
    if HANDLERS[meta["engine"]].incremental_finetune and d is not None and width is not None and width != d:
        # FINETUNE grows the factors by the parameter's width: a wider one would write past them
        raise _corrupt(name, f"parameter no_components is {d} but its factors have {width} columns")
    for side, n, (vecs, bias) in (("user", n_users, factors[0]), ("item", n_items, factors[1])):
        if vecs.ndim != 2 or len(vecs) != n or np.shape(bias) != (n,):
            raise _corrupt(name, f"{side} factors of shape {vecs.shape} for {n} {side}s")
        if not (np.isfinite(vecs).all() and np.isfinite(bias).all()):
            raise _corrupt(name, f"{side} factors are not all finite")
    index_arrays = {k[2:]: v for k, v in arrays_.items() if k.startswith("a.")}
    dims = factors[1][0].shape[1]  # the index's rows: [V | 1 | bi] (user_item), unit V (item_item)
    if (problem := approx.check(index_arrays, n_items, {"ip": dims + 2, "cos": dims})) is not None:
        raise _corrupt(name, problem)
    return Model(
        name=name, engine=meta["engine"], options=meta["options"], params=meta["params"], info=info,
        metrics=meta["metrics"], users=users, items=items, seen=seen, popularity=popularity, handler=handler,
        version=version, created_at=meta["created_at"], train_seconds=float(meta["train_seconds"]),
        extra_arrays={k[2:]: v for k, v in arrays_.items() if k.startswith("x.")}, index_arrays=index_arrays,
    )


def model_arrays(model: Model) -> dict[str, np.ndarray]:
    """Every array a model stores, by its stored name."""
    out = {"seen_indptr": model.seen.indptr.astype(np.int64),
           "seen_indices": model.seen.indices.astype(np.int32),
           "popularity": model.popularity.astype(np.float32)}
    out.update({f"h.{k}": v for k, v in model.handler.arrays().items()})
    out.update({f"x.{k}": v for k, v in model.extra_arrays.items()})
    out.update({f"a.{k}": v for k, v in model.index_arrays.items()})
    return out


def summary_fields(name: str, info: Any, metrics: Any) -> tuple[tuple[Any, Any, Any, Any], dict[str, float]]:
    """((user_col, item_col, n_users, n_items), metric values) of a models-table row, for SHOW
    MODELS: only what it lists is read (the rest of the info is checked when the model is loaded)."""
    with context("SHOW MODELS"):
        info, metrics = _object(info, name, "info"), _object(metrics, name, "metrics")
        for key in ("user_col", "item_col", "n_users", "n_items"):
            if key not in info:
                raise _corrupt(name, f"{key} missing")
        values = metrics.get("values") or {}
        if not isinstance(values, dict):
            raise _corrupt(name, "its metric values are not a JSON object")
    return (info["user_col"], info["item_col"], info["n_users"], info["n_items"]), values


def to_json(value: Any) -> str:
    """Model metadata as stored: numpy scalars and datetimes as plain JSON values."""
    return json.dumps(value, default=_jsonable, sort_keys=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in model metadata")
