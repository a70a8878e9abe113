"""The recommend API: recommendations asked for with Python values instead of SQL text.

    con.recommend("movie_rec", users=[1, 2], k=10).df()
    con.recommend("movie_rec", items=[50], kind="item_item").fetchall()
    con.recommend("movie_rec", liked=[50, 172, 133], k=5).arrow()   # a new user: fold-in

gives exactly what ``SELECT * FROM movie_rec WHERE userId IN (1, 2) USING n_recommendations = 10``
gives (columns, order, ties, types, cold start for unknown ids, errors), without building that
text: the arguments are checked here, by name, and sqlrec.exec.recommend scores them. Like a
query it runs on its cursor, in the cursor's transaction, and leaves its rows there: a
``Recommendations`` reads them once, as a cursor does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sqlrec.errors import OptionError, did_you_mean
from sqlrec.exec import recommend as exec_recommend
from sqlrec.sql.options import RECOMMENDER_TYPE_CHOICES  # the kinds a call takes: as USING recommender_type

if TYPE_CHECKING:
    import pandas
    import pyarrow

    from sqlrec.exec.router import Context

MAX_K = 100_000  # as USING n_recommendations
MAX_NPROBE = 65_536  # as USING nprobe


class Cursor(Protocol):
    """What the recommend API needs of sqlrec.api.connection.Cursor (which imports this module):
    a statement context on it, and its result read as a query's."""

    @property
    def description(self) -> list[tuple] | None: ...
    def fetchall(self) -> list[tuple]: ...
    def fetchmany(self, size: int | None = None) -> list[tuple]: ...
    def fetchone(self) -> tuple | None: ...
    def arrow(self) -> "pyarrow.Table": ...
    def df(self) -> "pandas.DataFrame": ...
    def __iter__(self) -> Iterator[tuple]: ...
    def _statement(self, result: bool) -> AbstractContextManager["Context"]: ...


class Recommendations:
    """The rows of one recommend call, left on its cursor: read them with fetchall / fetchmany /
    fetchone, .arrow() (a pyarrow Table) or .df() (pandas). Once read they are gone, as a
    cursor's; a later statement on the same cursor replaces them."""

    def __init__(self, cursor: "Cursor", answer: exec_recommend.Answer):
        self._cursor = cursor
        self.model = answer.model  # the model's own spelling of its name
        self.version = answer.version  # the version scored
        self.kind = answer.kind
        self.columns = answer.columns
        self.new_user = answer.new_user  # with liked=: the id the new user was scored as

    @property
    def description(self) -> list[tuple] | None:
        return self._cursor.description

    def fetchall(self) -> list[tuple]:
        return self._cursor.fetchall()

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        return self._cursor.fetchmany(size)

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone()

    def arrow(self) -> "pyarrow.Table":
        return self._cursor.arrow()

    def df(self) -> "pandas.DataFrame":
        """The rows as a pandas DataFrame (pandas is imported only here)."""
        return self._cursor.df()

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._cursor)

    def __repr__(self) -> str:
        return f"<Recommendations {self.kind} of {self.model!r} v{self.version}: {', '.join(self.columns)}>"


def recommend(cursor: "Cursor", model: str, *, users: Sequence[Any] | None = None,
              items: Sequence[Any] | None = None, kind: str | None = None, k: int | None = None,
              exclude_seen: bool | None = None, candidates: Sequence[Any] | None = None,
              liked: Sequence[Any] | None = None, new_user: Any = None, version: int | None = None,
              approximate: bool | None = None, nprobe: int | None = None,
              max_scored: int | None = None) -> Recommendations:
    """Recommendations of `model` on `cursor` (see Cursor.recommend for the arguments)."""
    request = _request(model, users, items, kind, k, exclude_seen, candidates, liked, new_user, version,
                       approximate, nprobe, max_scored)
    with cursor._statement(result=True) as ctx:
        answer = exec_recommend.recommend(ctx, request)
    return Recommendations(cursor, answer)


def training_items(cursor: "Cursor", model: str, user: Any) -> list[Any]:
    """The items `user` interacted with in `model`'s training data (none for an unknown user)."""
    _check_name(model, "training_items")
    if not _is_id(user):
        raise OptionError(f"training_items({model!r}): user must be one id, got {user!r}")
    with cursor._statement(result=False) as ctx:
        return exec_recommend.training_items(ctx, model, _plain(user))


def item_counts(cursor: "Cursor", model: str) -> "pyarrow.Table":
    """(item id, users): every item of `model` with the number of training users who had it."""
    _check_name(model, "item_counts")
    with cursor._statement(result=False) as ctx:
        return exec_recommend.item_counts(ctx, model)


def _request(model: str, users: Any, items: Any, kind: Any, k: Any, exclude_seen: Any, candidates: Any,
             liked: Any, new_user: Any, version: Any, approximate: Any, nprobe: Any,
             max_scored: Any) -> exec_recommend.Request:
    """The arguments checked by name (what does not need the model) into an exec-level request."""
    _check_name(model, "recommend")
    where = exec_recommend.where_of(model)
    users, items = _ids(users, "users", where), _ids(items, "items", where)
    candidates, liked = _ids(candidates, "candidates", where), _ids(liked, "liked", where)
    if kind is not None and kind not in RECOMMENDER_TYPE_CHOICES:
        hint = did_you_mean(str(kind), RECOMMENDER_TYPE_CHOICES) if isinstance(kind, str) else ""
        raise OptionError(f"{where}: kind must be one of {', '.join(RECOMMENDER_TYPE_CHOICES)}, got {kind!r}{hint}")
    if liked is not None:
        if users is not None or items is not None:
            raise OptionError(f"{where}: liked gives one new user: give liked, or users / items, not both")
        if not liked:
            raise OptionError(f"{where}: liked must hold at least one item id")
        if kind not in (None, "user_item", "user_user"):
            raise OptionError(f"{where}: liked items give a new user: kind must be user_item or user_user, "
                              f"got {kind!r}")
    elif new_user is not None:
        raise OptionError(f"{where}: new_user names the user of liked=[...]; give liked too")
    if new_user is not None and not _is_id(new_user):
        raise OptionError(f"{where}: new_user must be one id, got {new_user!r}")
    if kind is None:
        kind = "item_item" if items is not None and users is None else "user_item"
    _check_int(k, "k", where, 1, MAX_K)
    _check_int(nprobe, "nprobe", where, 1, MAX_NPROBE)
    _check_int(max_scored, "max_scored", where, 0, None)
    _check_int(version, "version", where, 1, None)
    for name, value in (("exclude_seen", exclude_seen), ("approximate", approximate)):
        if value is not None and not isinstance(value, (bool, np.bool_)):
            raise OptionError(f"{where}: {name} must be True, False or None, got {value!r}")
    return exec_recommend.Request(
        model=model, kind=kind, users=users, items=items, k=_plain(k), candidates=candidates, liked=liked,
        exclude_seen=None if exclude_seen is None else bool(exclude_seen), new_user=_plain(new_user),
        version=_plain(version), approximate=None if approximate is None else bool(approximate),
        nprobe=_plain(nprobe), max_scored=_plain(max_scored))


def _check_name(model: Any, call: str) -> None:
    if not isinstance(model, str) or not model.strip():
        raise OptionError(f"{call}: model must be a model's name, got {model!r}")


def _ids(values: Any, name: str, where: str) -> list[Any] | None:
    """A list of ids from a list, tuple, numpy array, pandas Series or pyarrow Array (in order);
    a lone id, a set (no order) or a mapping is refused by name."""
    if values is None:
        return None
    if hasattr(values, "to_pylist"):  # pyarrow
        values = values.to_pylist()
    elif hasattr(values, "tolist") and not isinstance(values, (str, bytes)):  # numpy, pandas
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise OptionError(f"{where}: {name} must be a list of ids, got {type(values).__name__} {values!r:.60}"
                          + (f"; for one id: {name}=[{values!r}]" if _is_id(values) else ""))
    out = [_plain(v) for v in values]
    bad = next((v for v in out if not _is_id(v)), _NONE)
    if bad is not _NONE:
        raise OptionError(f"{where}: {name} holds {bad!r}, which is no id (ids are numbers, text, dates...)")
    return out


_NONE = object()


def _is_id(value: Any) -> bool:
    return value is not None and not isinstance(value, (bool, list, tuple, dict, set, frozenset, bytes, np.bool_))


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (ids and counts from arrays)."""
    return value.item() if isinstance(value, np.generic) else value


def _check_int(value: Any, name: str, where: str, low: int, high: int | None) -> None:
    if value is None:
        return
    value = _plain(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f"from {low:,} to {high:,}" if high is not None else f"of at least {low:,}"
        raise OptionError(f"{where}: {name} must be an integer {span}, got {value!r}")
