"""The runtime model: one trained version loaded from the catalog, and its recommendations.

A Model holds what was stored (metadata, id maps, the seen matrix, popularity, the handler's
factors) and derives, once and on itself, what scoring needs: hash indexes from id to
position, unit vectors for similarity, the seen matrix from the item side, the fold-in scale.
``Model.recommend`` is the one entry for the four recommender types and for cold start: the
caller hands it vectors for unknown ids (sqlrec.exec.coldstart builds them) and it scores known
keys, covered unknown keys and the popularity fallback alike. One known key takes a shorter road
to the same rows (``Model.one_key_table``); recommender_type 'rating' scores given pairs
(``Model.predict_ratings``). Everything that scores reads the Model and nothing here reads back
from a module that needs it: the dependency goes one way. No DuckDB here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlrec.lazy import sparse as sp

from sqlrec.numeric import approx, scoring
from sqlrec.errors import QueryError, UnknownIdError, context
from sqlrec.engines import Handler
from sqlrec.models.info import ModelInfo, ModelOptions, SideInfo
from sqlrec.numeric.lookups import FEW_KEYS, cast_or_none, csr_rows, few_positions, plain_ints, take, typed
from sqlrec.numeric.scoring import DIRECT_ROWS, flatten_top_k, normalize_rows, prepare_targets, top_k

if TYPE_CHECKING:  # pandas is imported where it is used: `import sqlrec` and plain SQL never load it
    import pandas as pd

SIDES = ("user", "item")
OTHER = {"user": "item", "item": "user"}

# Fold-in ridge, in units of the mean squared norm of the fixed side's vectors; measured on
# MovieLens (bench/coldstart.py): 1 to 10 all beat popularity, 10 was best.
FOLD_IN_L2 = 10.0
# Rows per key when neither the query nor the model's n_recommendations says (Model.n_recommendations).
DEFAULT_N_RECOMMENDATIONS = 10


@dataclass(frozen=True)
class RecommenderType:
    """A recommender_type: whose rows are asked for (key) and what is ranked for them (target)."""

    name: str
    key: str  # "user" or "item"
    target: str
    exclude_seen: bool  # the default of exclude_seen

    @property
    def similarity(self) -> bool:
        return self.key == self.target


RECOMMENDER_TYPES = {k.name: k for k in (
    RecommenderType("user_item", "user", "item", True),
    RecommenderType("item_user", "item", "user", True),
    RecommenderType("item_item", "item", "item", False),
    RecommenderType("user_user", "user", "user", False),
)}


def result_columns(user_col: str, item_col: str, kind: str) -> list[str]:
    """Columns of a recommendation relation: the key id, the target id, score, rank."""
    k = RECOMMENDER_TYPES[kind]
    cols = {"user": user_col, "item": item_col}
    target = f"similar_{cols[k.target]}" if k.similarity else cols[k.target]
    return [cols[k.key], target, "score", "rank"]


@dataclass
class ColdVectors:
    """Vectors for some ids the model does not know, on a query's key side (sqlrec.exec.coldstart)."""

    side: str
    ids: pa.Array  # typed like the model's ids
    vectors: np.ndarray  # (n, d) float32
    biases: np.ndarray  # (n,) float32
    given: list[np.ndarray]  # per id: target indices of its given interactions (excluded when seen is)

    def positions(self, key_ids: pa.Array) -> np.ndarray:
        """Row in this set of every key id (-1 = not covered)."""
        if len(key_ids) == 0 or len(self.ids) == 0:
            return np.full(len(key_ids), -1, np.int64)
        import pandas as pd  # here, not at module level: `import sqlrec` and plain SQL never need it

        return np.asarray(pd.Index(self.ids.to_pandas()).get_indexer(key_ids.to_pandas()), np.int64)


class Side:
    """The user or the item side of a model: its ids, column, type, factors and derived arrays."""

    def __init__(self, model: "Model", name: str):
        self.model, self.name = model, name
        self._prepared: dict[tuple[bool, bool], np.ndarray] = {}

    @property
    def other(self) -> "Side":
        return self.model.side(OTHER[self.name])

    @property
    def ids(self) -> pa.Array:
        return self.model.users if self.name == "user" else self.model.items

    @property
    def info(self) -> SideInfo:
        """What the model's info says of this side."""
        return self.model.info.side(self.name)

    @property
    def column(self) -> str:
        return self.info.column

    @property
    def type(self) -> str:
        return self.info.type

    @property
    def features(self) -> dict[str, Any] | None:
        """The feature spec of this side (sqlrec.ingest.features), None without features."""
        return self.info.features

    @property
    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(vectors (n, d) float32, biases (n,) float32) as scoring sees them."""
        h = self.model.handler
        return h.user_factors() if self.name == "user" else h.item_factors()

    @functools.cached_property
    def index(self) -> pd.Index:
        import pandas as pd  # here, not at module level: `import sqlrec` and plain SQL never need it

        return pd.Index(self.ids.to_pandas())

    def prepared(self, similarity: bool, query_bias: bool) -> np.ndarray:
        """This side as scoring's GEMM reads it (scoring.prepare_targets), made once per shape."""
        key = (similarity, query_bias)
        if key not in self._prepared:
            vecs, bias = (self.unit, None) if similarity else self.factors
            self._prepared[key] = prepare_targets(vecs, bias, query_bias)
        return self._prepared[key]

    @functools.cached_property
    def unit(self) -> np.ndarray:
        """L2-normalised vectors: cosine similarity by dot product."""
        return normalize_rows(np.asarray(self.factors[0], np.float32))

    @functools.cached_property
    def seen(self) -> sp.csr_matrix:
        """This side x the other: which targets each of this side's ids has (for exclusion)."""
        return self.model.seen if self.name == "user" else self.model.seen.T.tocsr()

    @functools.cached_property
    def popularity(self) -> np.ndarray:
        """Scores of this side's ids as fallback targets: item popularity, user activity."""
        if self.name == "item":
            return self.model.popularity
        return np.asarray(self.model.seen.getnnz(axis=1), np.float32)

    @functools.cached_property
    def fold_in_scale(self) -> tuple[float, float]:
        """(mean training-positive score u . t, ridge) for folding in a new id of this side."""
        users, _ = self.model.side("user").factors
        items, _ = self.model.side("item").factors
        seen = self.model.seen.tocoo()
        # A fixed sample bounds the cost on large models; the mean needs no more.
        take = np.random.default_rng(0).choice(seen.nnz, min(seen.nnz, 200_000), replace=False)
        dots = np.einsum("ij,ij->i", np.asarray(users, np.float64)[seen.row[take]],
                         np.asarray(items, np.float64)[seen.col[take]])
        targets = np.asarray(self.other.factors[0], np.float64)
        score = float(dots.mean()) if len(dots) else 1.0
        return score, FOLD_IN_L2 * float(np.mean(np.sum(targets ** 2, axis=1)))

    def representable(self, values: Sequence[Any], where: str) -> list[Any]:
        """The values that an id of this side can equal. A number with a fraction or out of range
        for integer ids equals no id (as in DuckDB, `userId = 1.5` is simply false): dropped."""
        values = list(values)
        if plain_ints(values, self.ids.type) or cast_or_none(values, self.ids.type) is not None or \
                not pa.types.is_integer(self.ids.type):
            return values
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) < len(values):
            self.lookup([v for v in values if v not in numbers], where)  # the error names them
        return [v for v in numbers if cast_or_none([v], self.ids.type) is not None]

    def lookup(self, values: Sequence[Any], where: str) -> tuple[pa.Array, np.ndarray]:
        """Requested ids cast to the id column's type, and their positions (-1 = unknown)."""
        ids = self.ids
        try:
            keys = typed(list(values), ids.type) if len(values) else pa.array([], ids.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError) as exc:
            raise QueryError(f"{where}: {list(values)[:5]} cannot be compared with column {self.column} "
                             f"({ids.type})") from exc
        if len(keys) <= FEW_KEYS and (pa.types.is_integer(ids.type) or pa.types.is_string(ids.type)):
            # a few keys (one user's query): hash look-ups, without building a pandas array
            return keys, few_positions(self.index, keys.to_pylist())
        positions = self.index.get_indexer(keys.to_pandas()) if len(keys) else np.zeros(0, np.int64)
        return keys, np.asarray(positions, np.int64)

    def blank(self, pos: np.ndarray, known: np.ndarray) -> np.ndarray:
        """Known ids that only the catalogue gave (options users / items) and no feature scores: nothing
        was learned about them, so they get the fallback as unknown ids do (never cold_start's error)."""
        blank = np.zeros(len(pos), bool)
        if self.info.n_catalogue_only is None or not known.any():
            return blank
        rows, indptr = pos[known], self.seen.indptr
        empty = (indptr[rows + 1] == indptr[rows]) & (self.features is None or ~self.factors[0][rows].any(axis=1))
        blank[np.flatnonzero(known)[empty]] = True
        return blank

    def popular(self, key_positions: np.ndarray, k: int, cand_idx: np.ndarray | None) -> tuple:
        """This side's most popular ids (items; most active users) as every unknown key's list: the
        cold_start fallback, with request positions `key_positions`."""
        pop = self.popularity
        allowed = np.arange(len(pop)) if cand_idx is None else cand_idx
        top = allowed[np.lexsort((allowed, -pop[allowed]))][:k]
        n = len(key_positions)
        return (np.repeat(key_positions, len(top)), self.ids.take(pa.array(np.tile(top, n))),
                np.tile(pop[top], n).astype(np.float32), np.tile(np.arange(1, len(top) + 1), n))


@dataclass(frozen=True)
class Ranking:
    """The rows one call computed, and how many keys it scored: known keys and cold keys with
    vectors (the fallback's keys cost no scoring). Per call, so that what pushdown saves is
    visible per statement (sqlrec.exec.queries.recommend) without a counter on the shared model."""

    rows: pa.Table
    scored: int


@dataclass(eq=False)
class Model:
    name: str
    engine: str
    options: dict[str, Any]  # resolved create-time options (common ones)
    params: dict[str, Any]  # resolved engine parameters
    info: ModelInfo  # columns, id types, counts, training query (stored as JSON: ModelInfo.to_dict)
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
    index_arrays: dict[str, np.ndarray] = field(default_factory=dict)  # sqlrec.numeric.approx's stored clustering
    # Whether SQL stored in the model (its feature sources) may run: true when this connection
    # trained it or was opened with trust_stored_sql; a file from elsewhere never runs its SQL.
    trusted: bool = field(default=False, compare=False)

    @functools.cached_property
    def _sides(self) -> dict[str, Side]:
        return {s: Side(self, s) for s in SIDES}

    def side(self, name: str) -> Side:
        return self._sides[name]

    @functools.cached_property
    def settings(self) -> ModelOptions:
        """The create options sqlrec reads back, typed (self.options, the dict, is their stored form;
        sqlrec.models.stored checked its types before a stored model is built)."""
        return ModelOptions.from_dict(self.options)

    @functools.cached_property
    def approx(self) -> approx.Indexes:
        """The approximate indexes (sqlrec.numeric.approx), assembled on the first query that uses one."""
        item = self.side("item")
        return approx.Indexes(self.index_arrays, lambda sim: item.prepared(sim, not sim).T,
                              self.settings.nprobe)

    @property
    def user_col(self) -> str:
        return self.info.user.column

    @property
    def item_col(self) -> str:
        return self.info.item.column

    def columns(self, kind: str) -> list[str]:
        return result_columns(self.user_col, self.item_col, kind)

    def key_column(self, kind: str) -> str:
        return self.side(RECOMMENDER_TYPES[kind].key).column

    def n_recommendations(self, asked: int | None = None) -> int:
        """Rows per key: the number asked for (a query's n_recommendations, EXPORT's, PREDICT's
        nrec, EVALUATE's k), else the model's n_recommendations, else DEFAULT_N_RECOMMENDATIONS.
        The one place this default is decided."""
        return asked or self.settings.n_recommendations or DEFAULT_N_RECOMMENDATIONS

    def recommend(self, kind: str, keys: Sequence[Any] | None, k: int, *, exclude_seen: bool,
                  candidates: Sequence[Any] | None = None, cold: ColdVectors | None = None,
                  where: str = "SELECT", cancelled: Callable[[], bool] | None = None,
                  targets: Sequence[Any] | None = None, span: tuple[int, int] | None = None,
                  search: approx.Search | None = None) -> pa.Table:
        """Top-k rows for the requested keys (None = every known id of the key side, or those at
        positions span[0]..span[1]-1), ordered by request order then rank, with the model's own
        column names. `targets` (a filter on the target column) scores just those targets: every
        one the model knows and the key may have (exclude_seen, self-similarity) gets a row,
        ranked among them, k ignored. `cancelled` is asked between scoring chunks
        (sqlrec.errors.Cancelled when it says so). `search`: USING approximate / nprobe."""
        return self.rank(kind, keys, k, exclude_seen=exclude_seen, candidates=candidates, cold=cold, where=where,
                         cancelled=cancelled, targets=targets, span=span, search=search).rows

    def rank(self, kind: str, keys: Sequence[Any] | None, k: int, *, exclude_seen: bool,
             candidates: Sequence[Any] | None = None, cold: ColdVectors | None = None,
             where: str = "SELECT", cancelled: Callable[[], bool] | None = None,
             targets: Sequence[Any] | None = None, span: tuple[int, int] | None = None,
             search: approx.Search | None = None) -> Ranking:
        """recommend()'s rows, with the number of keys scored for them."""
        if kind not in self.handler.recommender_types:
            raise QueryError(
                f"{where}: engine {self.engine!r} does not support recommender_type {kind!r} "
                f"(supported: {', '.join(self.handler.recommender_types)})")
        spec = RECOMMENDER_TYPES[kind]
        if keys is not None and len(keys) == 1 and cold is None and candidates is None and targets is None and (
                one := self.one_key_table(spec, keys[0], k, exclude_seen=exclude_seen, search=search,
                                          cancelled=cancelled, where=where)) is not None:
            return Ranking(one, 1)
        key, target = self.side(spec.key), self.side(spec.target)
        key_ids, pos, known, unknown, cold_rows = self._keys(key, keys, span, cold, where)
        cand_idx = self._allowed(spec, kind, candidates, targets, where)
        if targets is not None:
            k = len(cand_idx)
        k = min(k, len(target.ids))  # more slots than targets would only allocate padding
        scorer = self._scorer(kind, search, cand_idx is not None, where)
        rows = pos[known]
        if spec.similarity:
            q, qb, exclude = key.unit[rows], None, None
        else:
            q, qb = key.factors[0][rows], key.factors[1][rows]
            exclude = csr_rows(key.seen, rows) if exclude_seen else None
        top = functools.partial(self._top, scorer=scorer)
        covered = np.flatnonzero(cold_rows >= 0)
        with context(where):  # the scorer may be sqlrec.numeric.approx's, whose errors this labels
            parts = [top(spec, q, qb, exclude, k, cand_idx, np.flatnonzero(known),
                         rows if spec.similarity else None, cancelled)]
            if len(covered):
                parts.append(self._cold_top(spec, cold, cold_rows[covered], covered, k, cand_idx, exclude_seen,
                                            cancelled, top))
        if unknown.any():
            parts.append(target.popular(np.flatnonzero(unknown), k, cand_idx))
        key_rows = np.concatenate([p[0] for p in parts])
        order = np.lexsort((np.concatenate([p[3] for p in parts]), key_rows))  # request order, then rank
        same = len(parts) == 1 and bool((order == np.arange(len(order))).all())  # one key's list: as is
        return Ranking(pa.table([
            key_ids.take(pa.array(key_rows[order])),
            parts[0][1] if same else pa.concat_arrays([p[1] for p in parts]).take(pa.array(order)),
            pa.array(np.concatenate([p[2] for p in parts])[order].astype(np.float32, copy=False)),
            pa.array(np.concatenate([p[3] for p in parts])[order].astype(np.int32)),
        ], names=self.columns(kind)), int(len(rows) + len(covered)))

    def _keys(self, key: Side, keys: Sequence[Any] | None, span: tuple[int, int] | None, cold: ColdVectors | None,
              where: str) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(key ids, positions, known, unknown, rows in `cold`) of a request's keys; an error for
        unknown ones when cold_start is 'error'."""
        if keys is None:
            a, b = span or (0, len(key.ids))
            key_ids, pos = key.ids[a:b], np.arange(a, b, dtype=np.int64)
        else:
            key_ids, pos = key.lookup(list(dict.fromkeys(keys)), where)
        known = pos >= 0
        cold_rows = cold.positions(key_ids) if cold is not None else np.full(len(pos), -1, np.int64)
        cold_rows[known] = -1
        unknown = ~known & (cold_rows < 0)
        if unknown.any() and self.settings.cold_start == "error":
            missing = key_ids.filter(pa.array(unknown)).to_pylist()
            raise UnknownIdError(
                f"{where}: unknown {key.column} {', '.join(map(repr, missing[:10]))}"
                f"{' and more' if len(missing) > 10 else ''} (the model's cold_start option is 'error')")
        blank = key.blank(pos, known)
        return key_ids, pos, known & ~blank, unknown | blank, cold_rows

    def rank_all(self, kind: str, k: int, *, exclude_seen: bool, candidates: Sequence[Any] | None = None,
                 where: str = "SELECT", cancelled: Callable[[], bool] | None = None,
                 targets: Sequence[Any] | None = None, batch_keys: int = 32_768,
                 search: approx.Search | None = None) -> Iterator[Ranking]:
        """rank(kind, None, ...) in tables of batch_keys keys each, scored as they are asked
        for: all rows of a large model are never held at once."""
        n = len(self.side(RECOMMENDER_TYPES[kind].key).ids) if kind in RECOMMENDER_TYPES else 0
        for a in range(0, max(n, 1), batch_keys):
            yield self.rank(kind, None, k, exclude_seen=exclude_seen, candidates=candidates, where=where,
                            cancelled=cancelled, targets=targets, span=(a, min(a + batch_keys, n)), search=search)

    # One known key (a user's query by its id), scored by scoring.top_one. The general path above
    # looks keys up in bulk, scores known, cold and unknown keys apart and orders several keys'
    # lists: for one known key that bookkeeping costs about as much as scoring it. These give the
    # same rows from the same GEMV and selection (bit for bit: tests/test_onekey.py), as the Arrow
    # table rank() returns, or as numpy columns for sqlrec.exec.plans: with the caches cold after
    # the GEMV, DuckDB scans ten rows from numpy arrays ~0.15 ms sooner than from an Arrow table,
    # and no table is built (bench/README, item 1).

    def one_key_table(self, spec: RecommenderType, value: Any, k: int, *, exclude_seen: bool,
                      search: approx.Search | None, cancelled: Callable[[], bool] | None,
                      where: str) -> pa.Table | None:
        """recommend(spec.name, [value], k, ...)'s table; None where its general path must answer
        (an unknown or catalogue-only key, similarity, an approximate index)."""
        top = self._one_key_top(spec, value, k, exclude_seen, search, cancelled, where)
        if top is None:
            return None
        key_ids, cols, scores, ranks = top
        return pa.table([take(key_ids, np.zeros(len(ranks), np.int64)), take(self.side(spec.target).ids, cols),
                         pa.array(scores), pa.array(ranks)], names=self.columns(spec.name))

    def one_key_columns(self, spec: RecommenderType, value: Any, k: int, *, exclude_seen: bool,
                        search: approx.Search | None, cancelled: Callable[[], bool] | None,
                        where: str) -> dict[str, np.ndarray] | None:
        """one_key_table()'s rows as numpy columns, where DuckDB reads those as it reads the table's
        Arrow columns: integer ids without nulls, scores without NaN (DuckDB reads a numpy NaN as
        NULL). None otherwise, or where one_key_table() has none."""
        key, target = self.side(spec.key).ids, self.side(spec.target).ids
        if not (_plain_ids(key) and _plain_ids(target)):
            return None
        top = self._one_key_top(spec, value, k, exclude_seen, search, cancelled, where)
        if top is None or np.isnan(top[2]).any():
            return None
        key_ids, cols, scores, ranks = top
        names = self.columns(spec.name)
        return {names[0]: np.repeat(key_ids.to_numpy(), len(ranks)), names[1]: target.to_numpy()[cols],
                names[2]: scores, names[3]: ranks}

    def _one_key_top(self, spec: RecommenderType, value: Any, k: int, exclude_seen: bool,
                     search: approx.Search | None, cancelled: Callable[[], bool] | None, where: str
                     ) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray] | None:
        """(the key id as the id column's type, target positions, scores, ranks int32) of the rows."""
        if spec.similarity or spec.name not in self.handler.recommender_types:
            return None
        key, target = self.side(spec.key), self.side(spec.target)
        if plain_ints([value], key.ids.type):  # the id at its position is the value, typed
            pos = few_positions(key.index, [value])
            key_ids = key.ids.slice(max(int(pos[0]), 0), 1)
        else:
            key_ids, pos = key.lookup([value], where)
        # after the look-up, as in the general path: an unknown key's error comes before the index's
        if (p := int(pos[0])) < 0 or key.blank(pos, pos >= 0)[0] or \
                self._scorer(spec.name, search, False, where) is not scoring.top_k:
            return None
        (vectors, biases), seen = key.factors, key.seen
        idx, val = scoring.top_one(
            np.ascontiguousarray(vectors[p:p + 1], np.float32), biases[p:p + 1], *target.factors, k,
            exclude=seen.indices[seen.indptr[p]:seen.indptr[p + 1]] if exclude_seen else None, cancelled=cancelled)
        keep = idx >= 0
        return key_ids, idx[keep], val[keep], np.flatnonzero(keep).astype(np.int32) + 1  # ranks as flatten_top_k's

    def _scorer(self, kind: str, search: approx.Search | None, restricted: bool, where: str) -> Callable[..., tuple]:
        """What scores this query (approx.Indexes.scorer), its refusals labelled with the statement."""
        with context(where):
            return self.approx.scorer(kind, search, restricted)

    def _allowed(self, spec: RecommenderType, kind: str, candidates: Sequence[Any] | None,
                 targets: Sequence[Any] | None, where: str) -> np.ndarray | None:
        """Target indices the ranking may return (None = all): candidates and asked targets."""
        allowed = None
        if candidates is not None:
            if spec.target != "item":
                raise QueryError(f"{where}: candidates restricts items; recommender_type {kind!r} returns users")
            _, cand_pos = self.side("item").lookup(list(candidates), where)
            allowed = np.unique(cand_pos[cand_pos >= 0])
        if targets is not None:
            _, pos = self.side(spec.target).lookup(list(targets), where)
            pos = np.unique(pos[pos >= 0])
            allowed = pos if allowed is None else np.intersect1d(allowed, pos)
        return allowed

    def score_pairs(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """The user_item score of each (user position, item position) pair, as the ranking
        computes it: U[u]·V[i] + bu[u] + bi[i] (float32)."""
        u, bu = self.side("user").factors
        v, bi = self.side("item").factors
        user_idx, item_idx = np.asarray(user_idx, np.int64), np.asarray(item_idx, np.int64)
        dots = np.einsum("ij,ij->i", np.asarray(u, np.float32)[user_idx], np.asarray(v, np.float32)[item_idx])
        return (dots + np.asarray(bu, np.float32)[user_idx] + np.asarray(bi, np.float32)[item_idx]).astype(np.float32)

    def predict_ratings(self, users: Sequence[Any] | None, items: Sequence[Any] | None,
                        where: str = "SELECT") -> Ranking:
        """recommender_type 'rating': (user, item, rating) for every asked user (None = all) and
        asked item the model knows, by request order of users then items. rating is the pair's
        score, clipped to the training ratings' range for an engine that predicts ratings."""
        if items is None:
            raise QueryError(f"{where}: recommender_type 'rating' predicts given pairs: filter the item column "
                             f"too, e.g. WHERE {self.user_col} = 1 AND {self.item_col} IN (1, 2)")
        user, item = self.side("user"), self.side("item")
        if users is None:
            user_ids, upos = user.ids, np.arange(len(user.ids), dtype=np.int64)
        else:
            user_ids, upos = user.lookup(list(dict.fromkeys(users)), where)
        item_ids, ipos = item.lookup(list(dict.fromkeys(items)), where)
        ku, ki = np.flatnonzero(upos >= 0), np.flatnonzero(ipos >= 0)
        uu, ii = np.repeat(ku, len(ki)), np.tile(ki, len(ku))
        rating = self.score_pairs(upos[uu], ipos[ii])
        if (bounds := self.handler.rating_range()) is not None:
            rating = np.clip(rating, *bounds)
        return Ranking(pa.table({self.user_col: user_ids.take(pa.array(uu)), self.item_col: item_ids.take(pa.array(ii)),
                                 "rating": pa.array(rating, pa.float32())}), len(ku))

    def _top(self, spec: RecommenderType, q: np.ndarray, qb: np.ndarray | None, exclude: sp.spmatrix | None, k: int,
             cand_idx: np.ndarray | None, key_positions: np.ndarray, self_idx: np.ndarray | None,
             cancelled: Callable[[], bool] | None, scorer: Callable[..., tuple] = top_k) -> tuple:
        target = self.side(spec.target)
        t, tb = (target.unit, None) if spec.similarity else target.factors
        idx, scores = scorer(np.ascontiguousarray(q, np.float32), qb, t, tb, k, exclude=exclude,
                             candidates=cand_idx, exclude_index=self_idx, cancelled=cancelled,
                             prepared=None if len(q) <= DIRECT_ROWS else target.prepared(spec.similarity, qb is not None))
        qrows, tcols, tscores, ranks = flatten_top_k(idx, scores)
        return key_positions[qrows], target.ids.take(pa.array(tcols)), tscores, ranks

    def _cold_top(self, spec: RecommenderType, cold: ColdVectors, rows: np.ndarray, key_positions: np.ndarray, k: int,
                  cand_idx: np.ndarray | None, exclude_seen: bool, cancelled: Callable[[], bool] | None,
                  top: Callable[..., tuple]) -> tuple:
        """Covered unknown keys, scored like known ones from the vectors cold start built."""
        q, qb = cold.vectors[rows], cold.biases[rows]
        exclude = None
        if spec.similarity:
            q, qb = normalize_rows(q.astype(np.float32)), None
        elif exclude_seen:
            given = [cold.given[r] for r in rows]
            indptr = np.concatenate([[0], np.cumsum([len(g) for g in given])]).astype(np.int64)
            idx = np.concatenate(given) if given else np.zeros(0, np.int64)
            exclude = sp.csr_matrix((np.ones(len(idx), np.float32), idx, indptr),
                                    shape=(len(rows), len(self.side(spec.target).ids)))
        return top(spec, q, qb, exclude, k, cand_idx, key_positions, None, cancelled)


def _plain_ids(ids: pa.Array) -> bool:
    return pa.types.is_integer(ids.type) and not ids.null_count
