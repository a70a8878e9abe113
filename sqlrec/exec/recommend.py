"""Recommendations asked for with Python values (sqlrec.api's recommend), not with SQL text.

`recommend` does with a model name, a kind and key values what a query
``SELECT * FROM m WHERE key IN (...) USING ...`` does with them: the same option table and
bounds, the same max_scored bound, and the same function computes the rows (queries.ask for the
options' defaults, queries.recommend for cold start, fold-in of liked items and scoring); the
rows are handed to DuckDB cast back to the model's id types (queries.typed_select). So its
result is that query's: columns, order, ties, types, values.

The only SQL it runs is the model path's own: the registered rows read back through DuckDB, and
a new user's liked items read as the fold-in's interactions. `training_items` and `item_counts`
are what a model learnt from its training data, for pages that show it (sqlrec.serve.insights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from sqlrec.errors import QueryError
from sqlrec.exec import queries
from sqlrec.exec.router import Context
from sqlrec.models.model import RECOMMENDER_TYPES, Model, Side
from sqlrec.sql import options as opts

# The argument that carries each side's ids (users=, items=).
ARGUMENT = {"user": "users", "item": "items"}


@dataclass(frozen=True)
class Request:
    """What the caller asks, its values checked for shape by sqlrec.api.recommend (lists are lists,
    k is an integer in range...); what only the model can tell is checked here."""

    model: str
    kind: str  # a recommender_type: user_item, item_user, item_item, user_user or rating
    users: list[Any] | None = None  # None: not given
    items: list[Any] | None = None
    k: int | None = None
    exclude_seen: bool | None = None
    candidates: list[Any] | None = None  # item ids the ranking may return
    liked: list[Any] | None = None  # items a new user liked (fold-in)
    new_user: Any = None  # with liked: that user's id (None: one no trained user has)
    version: int | None = None
    approximate: bool | None = None
    nprobe: int | None = None
    max_scored: int | None = None


@dataclass(frozen=True)
class Answer:
    """What the rows left pending on the handle are: the model and version scored, the kind, the
    result's columns, and the id the liked items were folded in for."""

    model: str
    version: int
    kind: str
    columns: list[str]
    new_user: Any = None


def where_of(name: str) -> str:
    """The label every error of a recommend call starts with."""
    return f"recommend({name!r})"


def recommend(ctx: Context, request: Request) -> Answer:
    """Score `request` and leave its rows pending on ctx.session's handle, as a query would."""
    session, where = ctx.session, where_of(request.model)
    model = _load(ctx, request.model, request.version, where)
    q = opts.resolve({"recommender_type": request.kind, "n_recommendations": request.k,
                      "exclude_seen": request.exclude_seen, "approximate": request.approximate,
                      "nprobe": request.nprobe, "max_scored": request.max_scored}, opts.QUERY_OPTIONS, where)
    new_user, keys, targets, candidates = None, None, None, None
    if request.kind == "rating":
        _check_rating(request, where)
        keys = _ids(model.side("user"), request.users, "users", where)
        targets = _ids(model.side("item"), request.items, "items", where)
    else:
        key = model.side(RECOMMENDER_TYPES[request.kind].key)
        keys = _ids(key, _given(request, key.name), ARGUMENT[key.name], where)
        targets = _targets(model, request, where)
        if request.liked is not None:
            new_user, q["interactions"] = _liked(ctx, model, request, where)
        else:
            _check_bound(key, keys, q["max_scored"], where)
        if request.candidates is not None:
            candidates = _ids(model.side("item"), request.candidates, "candidates", where)
    # the same rows as the query's: one function computes every model reference's rows
    rows = queries.recommend(session, model, queries.ask(model, q, where), keys, targets=targets,
                             candidates=candidates, where=where, cancelled=ctx.cancelled, scored=ctx.scored)
    ctx.registered.append(session.register("rel", rows))
    session.run(_typed_sql(model, rows.column_names, ctx.registered[-1]))
    return Answer(model.name, model.version, request.kind, list(rows.column_names), new_user)


def training_items(ctx: Context, name: str, user: Any) -> list[Any]:
    """The items `user` had in the training data (what exclude_seen excludes), in the model's item
    order; empty for a user the model does not know."""
    where = f"training_items({name!r})"
    model = ctx.catalog.load(name, where)
    side = model.side("user")
    values = _ids(side, [user], "user", where) if _maybe_id(side, user) else []
    if not values:  # text that no integer id equals, or a number no id of the type can be
        return []
    _, pos = side.lookup(values, where)
    if pos[0] < 0:
        return []
    items = np.sort(model.seen[int(pos[0])].indices)
    return model.items.take(pa.array(items, pa.int64())).to_pylist()


def item_counts(ctx: Context, name: str) -> pa.Table:
    """(item id, users): every item of the model, in its item order, with the number of users who
    had it in the training data."""
    model = ctx.catalog.load(name, f"item_counts({name!r})")
    counts = np.asarray(model.seen.getnnz(axis=0), np.int64)
    return pa.table({model.side("item").column: model.items, "users": pa.array(counts, pa.int64())})


# The typed SELECT text over the rows (queries.typed_select), by what it depends on: the columns
# and each side's id column and types. Printing it with sqlglot costs a third of a one-user call.
_SELECTS: dict[tuple, str] = {}
_SCAN = "__sqlrec_recommend_rows__"
MAX_SELECTS = 256


def _typed_sql(model: Model, columns: list[str], relation: str) -> str:
    sides = tuple((s.column, s.type, str(s.ids.type)) for s in (model.side("user"), model.side("item")))
    key = (tuple(columns), sides)
    text = _SELECTS.get(key)
    if text is None:
        if len(_SELECTS) >= MAX_SELECTS:
            _SELECTS.clear()
        text = _SELECTS[key] = queries.typed_select(_SCAN, model, columns).sql(dialect="duckdb")
    return text.replace(_SCAN, relation)


def _load(ctx: Context, name: str, version: int | None, where: str) -> Model:
    if version is None:
        return ctx.catalog.load(name, where)
    return ctx.catalog.load_version(name, version, f"{where} with version = {version}")


def _given(request: Request, side: str) -> list[Any] | None:
    return request.users if side == "user" else request.items


def _ids(side: Side, values: list[Any] | None, argument: str, where: str) -> list[Any] | None:
    """Ids of `side` as a query's literals of them would be (sqlrec.models.model.Side.representable),
    text that is no integer refused by the argument's name where the ids are integers."""
    if values is None:
        return None
    if pa.types.is_integer(side.ids.type):
        for v in values:
            if isinstance(v, str) and not _integer_text(v):
                raise QueryError(f"{where}: {argument} id {v!r} is not an integer (the model's {side.column} "
                                 f"ids are {side.type})")
    return side.representable(values, where)


def _integer_text(text: str) -> bool:
    try:
        int(text.strip())
    except ValueError:
        return False
    return True


def _maybe_id(side: Side, value: Any) -> bool:
    return not (pa.types.is_integer(side.ids.type) and isinstance(value, str) and not _integer_text(value))


def _targets(model: Model, request: Request, where: str) -> list[Any] | None:
    """The ids of the other argument: the targets scored (as `AND movieId IN (...)` in a query)."""
    spec = RECOMMENDER_TYPES[request.kind]
    other = "item" if spec.key == "user" else "user"
    given = _given(request, other)
    if given is None:
        return None
    if spec.target != other:
        raise QueryError(f"{where}: kind {request.kind!r} ranks {ARGUMENT[spec.target]} for "
                         f"{ARGUMENT[spec.key]}; {ARGUMENT[other]} cannot be given with it")
    return _ids(model.side(other), given, ARGUMENT[other], where)


def _check_rating(request: Request, where: str) -> None:
    """kind 'rating' predicts exactly the asked (user, item) pairs: the ranking's arguments do not
    apply, and items must be given (named as the Python arguments, not as USING options)."""
    unused = [name for name, value in (("k", request.k), ("exclude_seen", request.exclude_seen),
                                       ("candidates", request.candidates), ("liked", request.liked),
                                       ("approximate", request.approximate), ("nprobe", request.nprobe),
                                       ("max_scored", request.max_scored)) if value is not None]
    if unused:
        raise QueryError(f"{where}: {unused[0]} does not apply to kind 'rating' (it predicts exactly the "
                         "asked pairs, seen or not, of known ids)")
    if request.items is None:
        raise QueryError(f"{where}: kind 'rating' predicts given pairs: give items too, e.g. "
                         "users=[1], items=[1, 2]")


def _check_bound(key: Side, keys: list[Any] | None, max_scored: int | None, where: str) -> None:
    """As a SELECT: scoring more than max_scored keys in one call is refused (0: no bound)."""
    bound = queries.max_scored(max_scored)
    n = len(key.ids) if keys is None else len(keys)
    if not bound or n <= bound:
        return
    what = f"{n:,} {ARGUMENT[key.name]}" if keys is not None else f"all {n:,} {ARGUMENT[key.name]} of the model"
    raise QueryError(f"{where}: it would score {what}, more than max_scored = {bound:,}; pass "
                     f"{ARGUMENT[key.name]}=[...], a larger max_scored, or max_scored=0 (no bound)")


def _liked(ctx: Context, model: Model, request: Request, where: str) -> tuple[Any, str]:
    """(the new user's id, the relation of its liked items): the interactions a fold-in reads, as
    `USING interactions = '...'` would give them."""
    user, item = model.side("user"), model.side("item")
    new_user = _new_user(user) if request.new_user is None else request.new_user
    user_ids, _ = user.lookup(_ids(user, [new_user], "new_user", where), where)
    if len(user_ids) == 0:
        raise QueryError(f"{where}: new_user {new_user!r} cannot be a {user.column} ({user.type})")
    liked = _ids(item, request.liked, "liked", where)
    item_ids, _ = item.lookup(liked, where)
    table = pa.table({user.column: pa.array([user_ids[0].as_py()] * len(item_ids), user_ids.type),
                      item.column: item_ids})
    ctx.registered.append(ctx.session.register("liked", table))
    return user_ids[0].as_py(), ctx.registered[-1]


def _new_user(user: Side) -> Any:
    """An id no trained user has, for a new user given only by liked items (the far end of an
    integer type's range, an all-zero UUID, or a name no data uses)."""
    upper = user.type.upper()
    if upper.startswith("U") and "INT" in upper:
        return {"UTINYINT": 255, "USMALLINT": 65535}.get(upper, 2**31 - 1)
    if "INT" in upper:
        return {"TINYINT": -127, "SMALLINT": -32767}.get(upper, -(2**31) + 1)
    if upper == "UUID":
        return "00000000-0000-0000-0000-000000000000"
    return "__new_user__"
