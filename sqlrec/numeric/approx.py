"""Approximate top-k for large catalogues: a faiss IVF index over the items' scoring vectors.

Scoring is an inner product of augmented vectors ([U | bu | 1] . [V | 1 | bi] = U.V + bu + bi,
see scoring.augment_query / augment_targets). Maximum inner product becomes nearest neighbour
by lifting each item row x to [x | sqrt(M - |x|^2)] (M: the largest squared norm, so every
lifted row has the same norm) and each query q to [q | 0]: |q' - x'|^2 = |q|^2 + M - 2 q.x
(Bachrach et al. 2014). An L2 inverted-file index over the lifted rows then clusters them
with plain k-means into `nlist` lists, and a query scans only the `nprobe` lists nearest to
it. On LightFM-shaped factors at 10^6 items this found more of the exact top-10 than faiss's
inner-product IVF at the same nlist, in less time (0.995 vs 0.986 at nprobe 32: bench/README.md).
The items found are re-scored exactly (q.x), so scores and ties follow scoring.top_k.
item_item has its own index over the unit vectors (cosine).

What the catalog stores is the clustering, not a faiss file: the centroids (nlist x (d + 1)
float32) and every item's list (int32). The faiss index is put together from them and the
model's own vectors on the first approximate query (faiss.contrib.ivf_tools.add_preassigned).
So a database file never feeds bytes to faiss's reader (not hardened against crafted input),
the vectors are not stored twice, and the arrays are checked like every other stored array.

Rows that need an exact answer are scored by scoring.top_k: all of them with candidates or a
target filter (Indexes.pick), and those whose k plus excluded items exceed MAX_SEARCH_K, or
whose visited lists held fewer than k items they may get.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlrec.lazy import sparse as sp

from sqlrec.errors import Cancelled, OptionError, QueryError, unlabelled
from sqlrec.numeric.scoring import augment_query, top_k as exact_top_k

# The two indexes a model may have: by stored name, whether it serves a similarity kind.
INDEXES = {"ip": False, "cos": True}
KIND_INDEX = {"user_item": "ip", "item_item": "cos"}
# Measured by bench/approx.py (bench/README.md), LightFM-shaped factors, 2 cores: at 10^6 items
# 2 sqrt(n) lists (2,000) with 32 scanned found 99.5% of the exact top-10 at 13-20x the exact
# speed (a batch of 2,000 users); 4,096 lists (--nlist 4096) took 6x the build time in a trial. The
# batch speed-up at nprobe 32 was 3.8x at 10^5 items, 4.5x at 2 x 10^5, 6.2x at 3 x 10^5:
# 'auto' starts where it reaches about 5x (one user's query is 17x faster there already).
AUTO_MIN_ITEMS = 200_000
DEFAULT_NPROBE = 32
# 'auto' keeps an index only if it finds this share of the exact top-10 on a sample: factors
# without structure (isotropic noise: recall 0.23 at 10^6 items) stay exact.
AUTO_MIN_RECALL = 0.98
LISTS_PER_SQRT_ITEM = 2.0  # default nlist = 2 sqrt(n_items)
MIN_ITEMS_PER_LIST = 39  # faiss's own floor on training points per centroid
MAX_NLIST = 65_536
TRAIN_POINTS_PER_LIST = 64  # k-means sample: more costs build time, not recall (bench)
KMEANS_ITERATIONS = 10
# Above this many results per query row (k + excluded items) the row is scored exactly.
MAX_SEARCH_K = 2048
_SEARCH_ROWS = 1024  # query rows per faiss call: cancellation is checked between calls
_SEARCH_RESULTS = 1 << 17  # ...and results per call: their vectors are gathered to re-score them
INSTALL = "install sqlrec[approx] (pip install 'sqlrec[approx]')"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def available() -> bool:
    return _faiss() is not None


def require() -> Any:
    """faiss, or an OptionError naming the option that asked for it (labelled by the caller's
    sqlrec.errors.context, as every error of this module)."""
    faiss = _faiss()
    if faiss is None:
        raise unlabelled(OptionError(f"option approximate needs the faiss library, which is not installed; {INSTALL}"))
    return faiss


def default_nlist(n_items: int) -> int:
    return int(np.clip(round(LISTS_PER_SQRT_ITEM * np.sqrt(n_items)), 1, MAX_NLIST))


def wanted(value: Any, n_items: int) -> bool:
    """Whether CREATE builds an index: approximate = true, or 'auto' on a large catalogue with
    faiss installed (without it 'auto' stays exact rather than failing)."""
    if value == "auto":
        return n_items >= AUTO_MIN_ITEMS and available()
    return bool(value)


@dataclass
class IndexFacts:
    """What DESCRIBE m.model shows of a model's index (approximate_<key> of to_dict's keys), kept
    in the model's info as approximate_index."""

    nlist: int
    build_seconds: float
    nprobe: int | None = None
    recall_at_10: dict[str, float] = field(default_factory=dict)  # by index name (INDEXES)
    dropped: dict[str, str] = field(default_factory=dict)  # 'auto': the indexes below AUTO_MIN_RECALL, and why

    def to_dict(self) -> dict[str, Any]:
        """The stored form (the keys sqlrec has always written: nlist, ip_recall_at_10, ...)."""
        out: dict[str, Any] = {"nlist": self.nlist, "build_seconds": self.build_seconds}
        if self.nprobe is not None:
            out["nprobe"] = self.nprobe
        out.update({f"{name}_recall_at_10": recall for name, recall in self.recall_at_10.items()})
        out.update({f"{name}_dropped": why for name, why in self.dropped.items()})
        return out

    @classmethod
    def from_dict(cls, facts: dict[str, Any]) -> IndexFacts:
        """The typed form of to_dict's; TypeError naming a key of the wrong type, KeyError a missing one."""
        def number(key: str, kind: type = float) -> Any:
            value = facts[key]
            if isinstance(value, bool) or not isinstance(value, int if kind is int else (int, float)):
                raise TypeError(f"{key} is {str(value)[:40]!r}")
            return value
        dropped = {name: facts[f"{name}_dropped"] for name in INDEXES if f"{name}_dropped" in facts}
        if not all(isinstance(why, str) for why in dropped.values()):
            raise TypeError("a dropped index's reason is not text")
        return cls(nlist=number("nlist", int), build_seconds=number("build_seconds"),
                   nprobe=None if facts.get("nprobe") is None else number("nprobe", int),
                   recall_at_10={name: number(f"{name}_recall_at_10") for name in INDEXES
                                 if f"{name}_recall_at_10" in facts},
                   dropped=dropped)


def build(vectors: Callable[[bool], np.ndarray], n_items: int, kinds: tuple[str, ...], *, approximate: bool | str,
          nlist: int | None = None, seed: int | None = None) -> tuple[dict[str, np.ndarray], IndexFacts | None]:
    """The stored arrays of the indexes a model needs (none when it wants none), and the facts
    DESCRIBE shows. vectors(similarity) is the augmented item matrix (n_items, d) float32;
    approximate, nlist and seed (random_state) are the model's options."""
    if not wanted(approximate, n_items):
        return {}, None
    faiss = require()
    nlist = int(min(nlist or default_nlist(n_items), max(1, n_items // MIN_ITEMS_PER_LIST)))
    started = time.perf_counter()
    arrays: dict[str, np.ndarray] = {}
    for name, similarity in INDEXES.items():
        if not any(KIND_INDEX.get(kind) == name for kind in kinds):
            continue
        centroids, lists = _cluster(faiss, np.ascontiguousarray(vectors(similarity), np.float32), nlist, seed)
        arrays[f"{name}.centroids"], arrays[f"{name}.lists"] = centroids, lists
    return arrays, IndexFacts(nlist=nlist, build_seconds=round(time.perf_counter() - started, 3))


def attach(model: Any) -> None:
    """Build the indexes a model's options ask for (or none) on a model about to be saved:
    CREATE, RETRAIN and FINETUNE call this, so the index always matches the saved factors.
    Each index's recall@10 against exact scoring is measured on a sample and stored (DESCRIBE
    m.model); with 'auto', an index below AUTO_MIN_RECALL is dropped (the model stays exact)."""
    item, options = model.side("item"), model.settings
    arrays, facts = build(lambda similarity: item.prepared(similarity, not similarity).T,
                          len(model.items), model.handler.recommender_types, approximate=options.approximate,
                          nlist=options.nlist, seed=options.random_state)
    model.index_arrays = {}
    if arrays and facts is not None:
        indexes = Indexes(arrays, lambda similarity: item.prepared(similarity, not similarity).T, options.nprobe)
        facts.nprobe = indexes.nprobe
        for name, index in indexes.by_name.items():
            facts.recall_at_10[name] = recall = sampled_recall(model, index, name, indexes.nprobe)
            if options.approximate != "auto" or recall >= AUTO_MIN_RECALL:
                model.index_arrays.update({k: v for k, v in arrays.items() if k.startswith(f"{name}.")})
            else:
                facts.dropped[name] = f"recall below {AUTO_MIN_RECALL} ('auto'): {kinds_of(name)} stays exact"
    model.info.approximate_index = facts if model.index_arrays else None


def kinds_of(name: str) -> str:
    return ", ".join(kind for kind, index in KIND_INDEX.items() if index == name)


def sampled_recall(model: Any, index: "IvfIndex", name: str, nprobe: int, sample: int = 256) -> float:
    """Mean share of the exact top-10 the index finds, over a fixed sample of users (ip) or items (cos)."""
    item = model.side("item")
    similarity = INDEXES[name]
    key = item if similarity else model.side("user")
    rows = np.random.default_rng(0).permutation(len(key.ids))[:sample]
    vecs, bias = (item.unit, None) if similarity else item.factors
    q, qb = (item.unit[rows], None) if similarity else (key.factors[0][rows], key.factors[1][rows])
    k = min(10, len(item.ids) - similarity)
    if k <= 0:
        return 1.0
    common = dict(exclude_index=rows if similarity else None, prepared=item.prepared(similarity, not similarity))
    want = exact_top_k(np.asarray(q, np.float32), qb, vecs, bias, k, **common)[0]
    got = top_k(index, np.asarray(q, np.float32), qb, vecs, bias, k, nprobe=nprobe, **common)[0]
    found = [len(set(g[g >= 0]) & set(w[w >= 0])) / max(1, int((w >= 0).sum())) for g, w in zip(got, want)]
    return round(float(np.mean(found)) if found else 1.0, 4)


def lift(x: np.ndarray) -> np.ndarray:
    """[x | sqrt(M - |x|^2)] float32: L2 neighbours of [q | 0] among these rows are q's best by q.x."""
    sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    top = float(sq.max()) if len(sq) else 0.0
    return np.ascontiguousarray(np.hstack([x, np.sqrt(np.maximum(top - sq, 0.0))[:, None]]), dtype=np.float32)


def _cluster(faiss: Any, x: np.ndarray, nlist: int, seed: Any) -> tuple[np.ndarray, np.ndarray]:
    """k-means centroids of a sample of the lifted rows, and every row's nearest centroid."""
    lifted = lift(x)
    d = lifted.shape[1]
    clus = faiss.Clustering(d, nlist)
    clus.niter = KMEANS_ITERATIONS
    clus.max_points_per_centroid = TRAIN_POINTS_PER_LIST
    clus.seed = int(seed if seed is not None else 1234) % (2**31)
    quantizer = faiss.IndexFlatL2(d)
    clus.train(lifted, quantizer)
    _, assign = quantizer.search(lifted, 1)
    centroids = faiss.vector_to_array(clus.centroids).reshape(nlist, d).astype(np.float32)
    return centroids, assign[:, 0].astype(np.int32)


def check(arrays: dict[str, np.ndarray], n_items: int, dims: dict[str, int]) -> str | None:
    """What is wrong with stored index arrays (None: nothing), for a CorruptModelError."""
    names = {k.split(".")[0] for k in arrays}
    for name in names:
        centroids, lists = arrays.get(f"{name}.centroids"), arrays.get(f"{name}.lists")
        if name not in INDEXES or centroids is None or lists is None or len(arrays) != 2 * len(names):
            return f"approximate index arrays {sorted(arrays)} are not the ones sqlrec writes"
        if (centroids.dtype != np.float32 or centroids.ndim != 2 or not 1 <= len(centroids) <= max(n_items, 1)
                or centroids.shape[1] != dims[name] + 1 or not np.isfinite(centroids).all()):
            return f"approximate index {name!r} has centroids of shape {centroids.shape}"
        if lists.dtype != np.int32 or lists.shape != (n_items,) or (
                n_items and (lists.min() < 0 or lists.max() >= len(centroids))):
            return f"approximate index {name!r} assigns items to lists it does not have"
    return None


class IvfIndex:
    """One stored clustering, and the faiss index made from it and the vectors on first use."""

    def __init__(self, centroids: np.ndarray, lists: np.ndarray, vectors: Callable[[], np.ndarray]):
        self.centroids, self.lists, self._vectors = centroids, lists, vectors
        self._index: Any = None
        self._lock = threading.Lock()  # cursors of one connection share the model

    @property
    def nlist(self) -> int:
        return len(self.centroids)

    def faiss_index(self) -> Any:
        with self._lock:
            if self._index is None:
                faiss = require()
                from faiss.contrib.ivf_tools import add_preassigned

                lifted = lift(np.asarray(self._vectors(), np.float32))
                quantizer = faiss.IndexFlatL2(lifted.shape[1])
                quantizer.add(np.ascontiguousarray(self.centroids))
                index = faiss.IndexIVFFlat(quantizer, lifted.shape[1], self.nlist, faiss.METRIC_L2)
                add_preassigned(index, lifted, self.lists.astype(np.int64))
                self._index = index
        return self._index

    def search(self, queries: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, exact scores q.x) of the k best items in the nprobe nearest lists (-1, -inf: none)."""
        faiss = require()
        params = faiss.SearchParametersIVF(nprobe=int(min(nprobe, self.nlist)))
        queries = np.ascontiguousarray(queries, np.float32)
        lifted = np.hstack([queries, np.zeros((len(queries), 1), np.float32)])
        _, idx = self.faiss_index().search(lifted, int(k), params=params)
        # Re-scored from the vectors: the L2 distance holds q.x only up to |q|^2 + M's rounding.
        found = np.asarray(self._vectors())[np.maximum(idx, 0)]  # (rows, k, d)
        scores = np.matmul(found, queries[:, :, None])[:, :, 0]
        scores[idx < 0] = -np.inf
        return idx, scores


@dataclass(frozen=True)
class Search:
    """A query's USING approximate / nprobe (None: the model's setting)."""

    approximate: bool | None = None
    nprobe: int | None = None


class Indexes:
    """A model's stored index arrays (stored names without the 'a.' prefix) as IvfIndex objects."""

    def __init__(self, arrays: dict[str, np.ndarray], vectors: Callable[[bool], np.ndarray], nprobe: int | None):
        self.nprobe = nprobe or DEFAULT_NPROBE
        self.by_name = {name: IvfIndex(arrays[f"{name}.centroids"], arrays[f"{name}.lists"],
                                        lambda s=similarity: vectors(s))
                         for name, similarity in INDEXES.items() if f"{name}.centroids" in arrays}

    def scorer(self, kind: str, search: Search | None, restricted: bool) -> Callable[..., tuple]:
        """What scores a query of this kind: scoring.top_k, or top_k over the model's index.
        restricted: candidates or a target filter, scored exactly (a subset needs no index)."""
        search = search or Search()
        if search.approximate is False:
            return exact_top_k
        index = self.by_name.get(KIND_INDEX.get(kind, ""))
        if index is None and (search.approximate or search.nprobe is not None):
            option = "approximate = true" if search.approximate else "nprobe"
            reason = (f"recommender_type {kind!r} is always scored exactly (approximate serves user_item and "
                      "item_item)" if kind not in KIND_INDEX else
                      f"the model has no approximate index for {kind} (CREATE OR REPLACE MODEL ... USING "
                      "approximate = true builds one)")
            raise unlabelled(QueryError(f"USING: option {option}: {reason}"), separator=" ")
        if index is None or restricted:
            return exact_top_k
        if not available():  # a machine without faiss still answers the model, exactly, unless told otherwise
            if search.approximate:
                require()
            return exact_top_k
        return functools.partial(top_k, index, nprobe=search.nprobe or self.nprobe)


def top_k(index: IvfIndex, query: np.ndarray, query_bias: np.ndarray | None, targets: np.ndarray,
          target_bias: np.ndarray | None, k: int, *, nprobe: int,
          exclude: sp.spmatrix | None = None, exclude_index: np.ndarray | None = None,
          candidates: np.ndarray | None = None,
          cancelled: Callable[[], bool] | None = None,
          prepared: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scoring.top_k's result, from the index: same shapes, order (score descending, then the
    lower index) and padding. Exact for the rows it falls back on; the rest may miss an item
    outside the visited lists. candidates are scored exactly."""
    if candidates is not None:
        return exact_top_k(query, query_bias, targets, target_bias, k, exclude=exclude, candidates=candidates,
                           exclude_index=exclude_index, cancelled=cancelled)
    m, n = len(query), len(targets)
    out_idx = np.full((m, k), -1, np.int64)
    out_val = np.full((m, k), -np.inf, np.float32)
    if m == 0 or k == 0 or n == 0:
        return out_idx, out_val
    exclude = None if exclude is None else sp.csr_matrix(exclude)
    extra = np.zeros(m, np.int64) if exclude is None else np.diff(exclude.indptr).astype(np.int64)
    if exclude_index is not None:
        extra += np.asarray(exclude_index) >= 0
    need = k + extra
    # need < n: every such row has more than k items it may get, so a short row is the index's miss.
    easy = np.flatnonzero((need <= MAX_SEARCH_K) & (need < n))
    easy = easy[np.argsort(need[easy], kind="stable")]  # rows of one faiss call share its k
    short = [np.flatnonzero((need > MAX_SEARCH_K) | (need >= n))]
    a = 0
    while a < len(easy):
        if cancelled is not None and cancelled():
            raise Cancelled(f"statement cancelled while scoring ({a:,} of {m:,} rows done); nothing was returned")
        widest = int(need[easy[min(a + _SEARCH_ROWS, len(easy)) - 1]])  # easy is sorted by need
        rows = easy[a: a + max(1, min(_SEARCH_ROWS, _SEARCH_RESULTS // widest))]
        a += len(rows)
        q = augment_query(query[rows], None if query_bias is None else np.asarray(query_bias)[rows],
                          target_bias is not None)
        idx, val = index.search(q, int(need[rows].max()), nprobe)
        idx, val, got = _keep(idx, val, rows, k, n, exclude, exclude_index)
        out_idx[rows], out_val[rows] = idx, val
        short.append(rows[got < k])
    redo = np.sort(np.concatenate(short))
    if len(redo):
        out_idx[redo], out_val[redo] = exact_top_k(
            query[redo], None if query_bias is None else np.asarray(query_bias)[redo], targets, target_bias, k,
            exclude=None if exclude is None else exclude[redo],
            exclude_index=None if exclude_index is None else np.asarray(exclude_index)[redo],
            cancelled=cancelled, prepared=prepared)
    return out_idx, out_val


def _keep(idx: np.ndarray, val: np.ndarray, rows: np.ndarray, k: int, n: int, exclude: sp.csr_matrix | None,
          exclude_index: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k best of faiss's results per row once excluded items are dropped, ordered as
    scoring.top_k orders them; and how many each row had."""
    drop = idx < 0
    if exclude is not None:
        sub = exclude[rows]
        seen = np.repeat(np.arange(len(rows), dtype=np.int64), np.diff(sub.indptr)) * n + sub.indices
        drop |= np.isin(np.arange(len(rows), dtype=np.int64)[:, None] * n + idx, seen)
    if exclude_index is not None:
        drop |= idx == np.asarray(exclude_index)[rows][:, None]
    idx = np.where(drop, n, idx)
    val = np.where(drop, -np.inf, val).astype(np.float32)
    order = np.lexsort((idx, -val), axis=-1)[:, :k]
    idx, val = np.take_along_axis(idx, order, axis=1), np.take_along_axis(val, order, axis=1)
    got = (~drop).sum(axis=1)
    idx[idx >= n] = -1
    return idx, val, got
