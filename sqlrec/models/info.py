"""A model's metadata, typed: ModelInfo (Model.info) and ModelOptions (Model.settings).

The catalog stores both as JSON (sqlrec.models.catalog); the JSON keys are the ones sqlrec has
always written, so older database files load and DESCRIBE, m.versions and SQL over the catalog
(`info->>'$.n_users'`) read what they read before. ModelInfo.from_dict and to_dict are the one
place the two forms meet. Keys this version does not know (a newer sqlrec's) are ignored on
reading, deliberately: the stored row keeps them, and a later version (FINETUNE copies its
parent's info) must not carry facts sqlrec cannot keep true. A key of the wrong type is a
ValueError naming it, which sqlrec.models.stored turns into a CorruptModelError.

A model's create options stay a plain dict (Model.options): it is their stored and displayed
form, and RETRAIN replays it. ModelOptions is the typed view of the ones sqlrec reads back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sqlrec.errors import OptionError
from sqlrec.numeric.approx import IndexFacts
from sqlrec.sql.options import COMMON_OPTIONS, FEATURE_OPTIONS, Option

SIDES = ("user", "item")


@dataclass
class SideInfo:
    """What a model knows of its user or its item side."""

    column: str  # the id column (JSON: user_col / item_col)
    type: str  # its DuckDB type, from sqlrec.sql.types' allow-list (user_type / item_type)
    n: int  # ids the model has (n_users / n_items)
    # ids only option users / items gave (sqlrec.ingest.known_ids); None: the option was not given
    # (n_catalogue_only_users / n_catalogue_only_items, written only then)
    n_catalogue_only: int | None = None
    # ids FINETUNE added to its parent's (n_new_users / n_new_items, FINETUNE's versions only)
    n_new: int | None = None
    # the feature spec sqlrec.ingest.features wrote (features.user / features.item); None: no features
    features: dict[str, Any] | None = None


@dataclass
class ModelInfo:
    """Columns, id types, data sizes and the training query of one model version."""

    user: SideInfo
    item: SideInfo
    rating_col: str | None = None
    weight_col: str | None = None
    timestamp_col: str | None = None
    n_pairs: int | None = None  # distinct (user, item) pairs trained on
    n_positives: int | None = None
    n_source_rows: int | None = None  # rows the training query returned
    source_sql: str | None = None  # the training query (RETRAIN, FINETUNE run it again)
    source_database: str | None = None  # the attached database it ran in (None: the current one)
    num_threads: int | None = None
    kind: str | None = None  # 'create', 'retrain' or 'finetune' (m.versions)
    notes: str | None = None
    tuning: dict[str, Any] | None = None  # tune = true: the trials (sqlrec.exec.tuning), m.trials
    approximate_index: IndexFacts | None = None  # sqlrec.numeric.approx's index, when the model keeps one

    def side(self, name: str) -> SideInfo:
        return self.user if name == "user" else self.item

    @property
    def has_features(self) -> bool:
        return self.user.features is not None or self.item.features is not None

    def replace(self, **changes: Any) -> ModelInfo:
        """A copy with these fields changed (sides are copied too: a new version never shares them)."""
        sides = {s: dataclasses.replace(self.side(s)) for s in SIDES if s not in changes}
        return dataclasses.replace(self, **sides, **changes)

    # --- the stored form ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the catalog stores: the keys sqlrec has always written. Keys it wrote
        only sometimes (tuning, the catalogue and FINETUNE counts) are left out when unset."""
        out: dict[str, Any] = {
            "user_col": self.user.column, "item_col": self.item.column, "rating_col": self.rating_col,
            "weight_col": self.weight_col, "timestamp_col": self.timestamp_col,
            "user_type": self.user.type, "item_type": self.item.type,
            "n_users": self.user.n, "n_items": self.item.n, "n_pairs": self.n_pairs,
            "n_positives": self.n_positives, "n_source_rows": self.n_source_rows,
            "source_sql": self.source_sql, "source_database": self.source_database, "num_threads": self.num_threads,
            "features": {s: self.side(s).features for s in SIDES if self.side(s).features is not None},
            "kind": self.kind, "notes": self.notes,
            "approximate_index": None if self.approximate_index is None else self.approximate_index.to_dict(),
        }
        if self.tuning is not None:
            out["tuning"] = self.tuning
        for s in SIDES:
            if self.side(s).n_catalogue_only is not None:
                out[f"n_catalogue_only_{s}s"] = self.side(s).n_catalogue_only
            if self.side(s).n_new is not None:
                out[f"n_new_{s}s"] = self.side(s).n_new
        return out

    @classmethod
    def from_dict(cls, info: dict[str, Any]) -> ModelInfo:
        """The typed form of a stored info object; ValueError naming a key of the wrong type."""
        features = _get(info, "features", dict) or {}
        for s, spec in features.items():
            if s not in SIDES or not isinstance(spec, dict):
                raise ValueError(f"info features.{str(s)[:20]} is not a feature spec")
        sides = {s: SideInfo(column=_get(info, f"{s}_col", str, required=True),
                             type=_get(info, f"{s}_type", str, required=True),
                             n=_get(info, f"n_{s}s", int, required=True),
                             n_catalogue_only=_get(info, f"n_catalogue_only_{s}s", int),
                             n_new=_get(info, f"n_new_{s}s", int),
                             features=features.get(s)) for s in SIDES}
        facts = _get(info, "approximate_index", dict)
        try:
            approximate = None if facts is None else IndexFacts.from_dict(facts)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"info approximate_index is not what sqlrec writes ({exc})") from exc
        return cls(
            **sides, rating_col=_get(info, "rating_col", str), weight_col=_get(info, "weight_col", str),
            timestamp_col=_get(info, "timestamp_col", str), n_pairs=_get(info, "n_pairs", int),
            n_positives=_get(info, "n_positives", int), n_source_rows=_get(info, "n_source_rows", int),
            source_sql=_get(info, "source_sql", str), source_database=_get(info, "source_database", str),
            num_threads=_get(info, "num_threads", int), kind=_get(info, "kind", str), notes=_get(info, "notes", str),
            tuning=_get(info, "tuning", dict), approximate_index=approximate)


def _get(stored: dict[str, Any], key: str, kind: type, required: bool = False, what: str = "info") -> Any:
    """stored[key] when it has the type `kind` (None when absent or null, unless required)."""
    value = stored.get(key)
    if value is None and not required:
        return None
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        expected = {int: "a count", float: "a number", str: "text", dict: "a JSON object", bool: "true or false"}
        raise ValueError(f"{what} {key} is {str(value)[:40]!r}, not {expected.get(kind, kind.__name__)}")
    return float(value) if kind is float else value


@dataclass(frozen=True)
class ModelOptions:
    """The create options sqlrec reads back from a trained model (Model.settings), typed."""

    cold_start: str | None = None  # 'popularity', 'error' or 'features'
    n_recommendations: int | None = None
    threshold: float | None = None  # the one that applied (CREATE stores the midpoint default it chose)
    keep_versions: int | None = None
    eval_k: int | None = None
    tune: bool = False
    rating: str | None = None
    weight: str | None = None
    item_names: str | None = None
    users: str | None = None  # the catalogue options (sqlrec.ingest.known_ids)
    items: str | None = None
    approximate: bool | str = "auto"  # a model saved before the option existed: 'auto'
    nlist: int | None = None
    nprobe: int | None = None
    random_state: int | None = None
    # option name -> type, for from_dict's checks (approximate, true, false or 'auto', apart). Not
    # annotated: a class attribute, not a field.
    _KINDS = {"cold_start": str, "n_recommendations": int, "threshold": float, "keep_versions": int, "eval_k": int,
              "tune": bool, "rating": str, "weight": str, "item_names": str, "users": str, "items": str,
              "nlist": int, "nprobe": int, "random_state": int}

    def catalogue(self, side: str) -> str | None:
        """The catalogue option of a side (users / items)."""
        return self.users if side == "user" else self.items

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> ModelOptions:
        """The typed view of a model's stored options; ValueError naming an option of the wrong type.
        Options sqlrec does not read back are left to the dict."""
        values = {name: _get(options, name, kind, what="option") for name, kind in cls._KINDS.items()}
        check_stored(options, (*COMMON_OPTIONS, *FEATURE_OPTIONS), "option")
        if values["tune"] is None:
            values["tune"] = False
        approximate = options.get("approximate")
        if not (approximate is None or isinstance(approximate, bool) or approximate == "auto"):
            raise ValueError(f"option approximate is {str(approximate)[:40]!r}, not true, false or 'auto'")
        return cls(**values, approximate="auto" if approximate is None else approximate)



def check_stored(stored: dict[str, Any], specs: tuple[Option, ...], what: str) -> None:
    """Every stored value of an option in `specs` within the option's type and bounds, as USING
    would have it (a crafted no_components = 1e8 or nlist = 0 must never reach an engine); the
    bounds of this machine (threads) excepted: stored counts are capped where they are used.
    ValueError naming the first that is not."""
    by_name = {o.name: o for o in specs}
    for key, value in stored.items():
        spec = by_name.get(key)
        if spec is None:
            continue
        try:
            spec.coerce(value, "stored", stored=True)
        except OptionError as exc:
            raise ValueError(f"{what} {str(exc).partition(': option ')[2]}") from exc  # "parameter n must be ..."
