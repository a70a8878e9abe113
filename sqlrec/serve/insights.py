"""What the web pages show, as plain data: titles, item search, a user's history, the most
consumed vs most recommended items, a model's curve and versions. No HTML here (sqlrec.serve.pages).

Titles come from a label source: the server's ``--labels`` (a table or view name, or a SELECT
whose first two columns are item id and title; the operator's SQL) or a request's ``labels=``,
which may only name a table or view: it is checked as an identifier and quoted, never pasted.
Every value from a request (search text, ids) is a bound parameter.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from sqlrec.api.vocabulary import SYSTEM
from sqlrec.sql import quote_ident
from sqlrec.serve.service import ServeError, Service

TOP_N = 5  # the distribution of recommended items is over everyone's top 5
HEAD = 0.1  # the popular head: the 10% most consumed items (as popularity_bias_at_k)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass
class Popularity:
    """Most consumed vs most recommended items of one model version."""

    n_items: int
    n_users: int
    consumed: list[tuple[Any, int]]  # (item, users who interacted), most consumed first
    recommended: list[tuple[Any, int]]  # (item, top-5 lists it is in), most recommended first
    coverage: float  # share of the catalogue in at least one top 5
    popularity_bias: float  # share of top-5 slots that go to the popular head
    head_size: int
    head_share_of_interactions: float
    head_items: set[Any]


def label_source(spec: str | None) -> str | None:
    """The SQL of a label source: a table or view name (quoted) or the operator's SELECT."""
    if spec is None or not spec.strip():
        return None
    spec = spec.strip().rstrip(";")
    if _IDENT.match(spec):
        return "SELECT * FROM " + ".".join(quote_ident(p) for p in spec.split("."))
    return spec


def request_labels(value: str | None) -> str | None:
    """A request's labels=: only a table or view name (anything else is refused)."""
    if value is None or not value.strip():
        return None
    if not _IDENT.match(value.strip()):
        raise ServeError(400, f"labels= names a table or view (id, title, ...), got {value!r}")
    return label_source(value)


class Insights:
    def __init__(self, service: Service, labels: str | None = None):
        self.service = service
        self.labels = label_source(labels)
        self._lock = threading.Lock()
        self._popularity: dict[tuple[str, int], Popularity] = {}
        self._item_counts: dict[tuple[str, int], tuple[list[Any], np.ndarray, dict[Any, int]]] = {}

    def _labelled(self, source: str | None) -> str:
        if source is None:
            raise ServeError(400, "no label source: start the server with --labels or pass labels=TABLE")
        return f"SELECT CAST(id AS VARCHAR) AS id, CAST(title AS VARCHAR) AS title FROM ({source}) AS l(id, title)"

    def titles(self, ids: list[Any], source: str | None) -> dict[str, str]:
        """str(item id) -> title, for the ids that have one (none without a label source)."""
        ids = list(dict.fromkeys(str(i) for i in ids))
        if source is None or not ids:
            return {}
        sql = f"SELECT id, title FROM ({self._labelled(source)}) AS t WHERE id IN ({', '.join('?' * len(ids))})"
        return {r[0]: r[1] for r in self.service.sql(sql, ids).rows}

    def search(self, name: str, text: str, source: str | None, limit: int = 20) -> list[tuple[str, str]]:
        """Items of the model whose title (or id, without labels) contains `text`, case-blind."""
        s = self.service.summary(name)
        ids = f"SELECT CAST(id AS VARCHAR) AS id FROM {quote_ident(s.name)}.item_embeddings"
        if source is None:
            # DuckDB's own functions (SYSTEM): the file may carry macros of these names.
            sql = (f"SELECT id, id FROM ({ids}) AS i WHERE {SYSTEM}.contains({SYSTEM}.lower(id), {SYSTEM}.lower(?)) "
                   f"ORDER BY id LIMIT {int(limit)}")
        else:
            sql = (f"SELECT l.id, l.title FROM ({self._labelled(source)}) AS l JOIN ({ids}) AS i USING (id) "
                   f"WHERE {SYSTEM}.contains({SYSTEM}.lower(l.title), {SYSTEM}.lower(?)) "
                   f"ORDER BY l.title, l.id LIMIT {int(limit)}")
        return [(r[0], r[1]) for r in self.service.sql(sql, [text]).rows]

    def users(self, name: str, limit: int = 200) -> list[str]:
        """The first known users (for the picker's suggestions)."""
        s = self.service.summary(name)
        rows = self.service.sql(f"SELECT CAST(id AS VARCHAR) FROM {quote_ident(s.name)}.user_embeddings "
                                f"ORDER BY id LIMIT {int(limit)}").rows
        return [r[0] for r in rows]

    def seen(self, name: str, user: str, limit: int = 10) -> list[Any]:
        """Items a known user had in training (the most consumed of them first)."""
        s = self.service.summary(name)
        with self.service.cursor() as cur:
            items = cur.training_items(s.name, user)
        if not items:
            return []
        ids, counts, position = self._counts(s)
        rows = np.asarray([position[i] for i in items], np.int64)
        order = np.lexsort((rows, -counts[rows]))[:limit]
        return [ids[int(rows[j])] for j in order]

    def popularity(self, name: str) -> Popularity:
        """Most consumed (training interactions) vs most recommended (everyone's top 5) items."""
        s = self.service.summary(name)
        key = (s.name, s.version)
        with self._lock:
            if key in self._popularity:
                return self._popularity[key]
        result = self._measure(s)
        with self._lock:
            self._popularity = {k: v for k, v in self._popularity.items() if k[0] != key[0]}
            self._popularity[key] = result
        return result

    def _counts(self, s: Any) -> tuple[list[Any], np.ndarray, dict[Any, int]]:
        """(item ids in the model's order, users who had each, id -> position), kept per version."""
        key = (s.name, s.version)
        with self._lock:
            if key in self._item_counts:
                return self._item_counts[key]
        with self.service.cursor() as cur:
            table = cur.item_counts(s.name)
        ids = table.column(0).to_pylist()
        found = (ids, table.column("users").to_numpy(), {v: i for i, v in enumerate(ids)})
        with self._lock:
            self._item_counts = {k: v for k, v in self._item_counts.items() if k[0] != key[0]}
            self._item_counts[key] = found
        return found

    def _measure(self, s: Any) -> Popularity:
        ids, counts, _ = self._counts(s)
        order = np.lexsort((np.arange(len(ids)), -counts))
        consumed = [(ids[j], int(counts[j])) for j in order]
        # everyone's top 5, through the recommend API (the counting is ours): most recommended first
        with self.service.cursor() as cur, self.service.time_limit(cur):
            table = cur.recommend(s.name, k=TOP_N).arrow()
        column = table.column(s.item_col).to_pylist()
        tally = Counter(column)
        recommended = sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))
        slots = sum(n for _, n in recommended)
        head_size = max(1, int(round(len(ids) * HEAD)))
        head = {ids[j] for j in order[:head_size]}
        in_head = sum(n for i, n in recommended if i in head)
        total = int(counts.sum())
        return Popularity(
            n_items=len(ids), n_users=s.n_users, consumed=consumed, recommended=recommended,
            coverage=len(recommended) / max(len(ids), 1), popularity_bias=in_head / max(slots, 1),
            head_size=head_size, head_share_of_interactions=sum(c for _, c in consumed[:head_size]) / max(total, 1),
            head_items=head)

    def history(self, name: str) -> tuple[list[str], list[tuple]]:
        s = self.service.summary(name)
        result = self.service.sql(f"SELECT * FROM {quote_ident(s.name)}.history ORDER BY epoch")
        return result.columns, result.rows

    def versions(self, name: str) -> tuple[list[str], list[tuple]]:
        """Every stored version of the model (sqlrec.metrics), newest first."""
        s = self.service.summary(name)
        result = self.service.sql(f"SELECT * FROM sqlrec.metrics WHERE {SYSTEM}.lower(name) = {SYSTEM}.lower(?) "
                                  "ORDER BY version DESC",
                                  [s.name])
        return result.columns, result.rows
