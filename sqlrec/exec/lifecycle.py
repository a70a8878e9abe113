"""RETRAIN: a model's next version, trained from scratch on its stored (or a new) source.

RETRAIN m re-runs the training query stored in the model (the user asks for it by name, so
this is allowed whatever ``trust_stored_sql`` says); the stored text is checked first to be
exactly one read-only SELECT (sqlrec.sql.parse_select), so a crafted file cannot make RETRAIN
run a DROP or a second statement. The stored options and engine parameters are merged with the
statement's USING (the statement's win) and the result is trained and saved exactly like
CREATE OR REPLACE MODEL, as a new version of kind 'retrain'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlrec.exec import training
from sqlrec.sql import options as opts
from sqlrec.models.catalog import Catalog
from sqlrec.errors import OptionError
from sqlrec.engines import HANDLERS
from sqlrec.models.model import Model
from sqlrec.store.session import Session
from sqlrec.sql import CreateModel, Retrain, Source, parse_select

# Facts of a trained model that are not options to train the next version with.
_NOT_OPTIONS = {"epochs_trained", "engine"}


def stored_source(model: Model, where: str) -> Source:
    """The model's stored training query, checked to be one read-only SELECT."""
    sql = model.info.source_sql
    if sql is None:
        raise OptionError(f"{where}: model {model.name!r} has no stored training query; give one with FROM (SELECT ...)")
    query = parse_select(sql, f"{where}: the model's stored training query")
    return Source(query=query, database=model.info.source_database)


def stored_options(model: Model, new: dict[str, Any]) -> dict[str, Any]:
    """The options the model was trained with, as USING would give them, then the new ones."""
    given = {k.lower() for k in new}
    out: dict[str, Any] = {"engine": model.engine}
    out.update({k: v for k, v in model.options.items() if v is not None and k not in ("engine", "overwrite")})
    if out.get("num_threads") is not None:  # the count of the machine that trained it, at most this one's bound
        out["num_threads"] = opts.capped_threads(out["num_threads"])
    info = model.info
    for option, column in (("user_id", info.user.column), ("item_id", info.item.column), ("rating", info.rating_col),
                           ("weight", info.weight_col), ("timestamp", info.timestamp_col)):
        if column is not None:
            out[option] = column
    for side, spec in ((s, info.side(s).features) for s in ("user", "item")):
        if spec is None:
            continue
        out[f"{side}_features"] = spec["source"]
        out[f"{side}_identity"] = spec.get("identity", True)
        if spec.get("bucket_numeric") is not None:
            out["bucket_numeric"] = spec["bucket_numeric"]
    engine = str(next((v for k, v in new.items() if k.lower() == "engine"), model.engine)).lower()
    if engine == model.engine and not model.settings.tune:
        # The same engine keeps its parameters (tuned ones included); another engine gets its defaults.
        names = {o.name for o in HANDLERS[engine].params_spec} if engine in HANDLERS else set()
        out.update({k: v for k, v in model.params.items() if k in names and k not in _NOT_OPTIONS})
    if model.settings.cold_start in ("features", "popularity") and "cold_start" not in given:
        out.pop("cold_start", None)  # the default: re-derived from whether the new version has features
    out = {k: v for k, v in out.items() if k.lower() not in given}
    out.update(new)
    return out


def retrain(session: Session, catalog: Catalog, st: Retrain, cancelled: Callable[[], bool]) -> tuple[Model, str]:
    where = f"RETRAIN {st.name}"
    model = catalog.load(st.name, where)
    source = st.source if st.source is not None else stored_source(model, where)
    create = CreateModel(name=model.name, source=source, options=stored_options(model, st.options), replace=True,
                         text=st.text, line=st.line, col=st.col)
    return training.create(session, catalog, create, cancelled, kind="retrain")
