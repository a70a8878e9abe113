"""Which keys a query asks for: the id filters pushed into scoring (tree analysis only).

On the key column (userId of user_item) any superset of the keys the query can return is
enough: the rows of one key do not depend on the other keys, and the WHERE clause and the joins
stay as written for DuckDB to apply. So these are pushed:

- `key = v`, `key IN (v, ...)` of literals;
- `key IN (SELECT ...)`, `key = (SELECT ...)`: the subquery runs first, its distinct values are
  pushed (uncorrelated ones only: a column qualified by a table of the outer query keeps it out);
- `OR` of such filters (union); `AND` (intersection; a part that is no id filter is skipped);
- `key = x.col` in WHERE or in the ON of a join that keeps only matching rows of the model
  (inner, SEMI, the model side of a LEFT JOIN's right, a RIGHT JOIN's left), and `USING (key)`:
  the distinct x.col values of that source under its own filters.

On the target column (sqlrec.exec.queries) pushed values are ranked among themselves, so only exact
sets are taken there: literals, OR of literal filters, AND of those.

Subqueries are run by a callback (`Run`): DuckDB work belongs to sqlrec.exec.queries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp

from sqlrec.exec.rewrite import ModelRef, conjuncts, is_literal, refers_to, with_visible_ctes
from sqlrec.sql import option_value

# Names of the relations sqlrec registers (Session.unique_name): a model reference already
# replaced by one may be a stream that can be scanned once (sqlrec.exec.streaming), so none is read.
_RELATIONS = "__sqlrec_"

# (standalone query, what it is) -> its first column's distinct non-null values; None: not pushed.
Run = Callable[[exp.Query, str], list[Any] | None]


def keys(ref: ModelRef, key: str, run: Run) -> list[Any] | None:
    """The keys the query may return rows of (a superset), or None when it may return any."""
    if ref.select is None:
        return None
    finder = _Finder(ref, key, run)
    sets = [finder.of(part) for part in conjuncts(ref.select.args.get("where"))]
    sets += finder.joins()
    return _intersect([s for s in sets if s is not None])


def targets(ref: ModelRef, column: str) -> list[Any] | None:
    """The exact set of targets asked by `=` / `IN` literal filters (and OR / AND of those)."""
    if ref.select is None:
        return None
    finder = _Finder(ref, column, None)
    sets = [finder.of(part) for part in conjuncts(ref.select.args.get("where"))]
    return _intersect([s for s in sets if s is not None])


def _intersect(sets: list[list[Any]]) -> list[Any] | None:
    if not sets:
        return None
    result = list(dict.fromkeys(sets[0]))
    for other in sets[1:]:
        allowed = set(other)
        result = [v for v in result if v in allowed]
    return result


def _union(sets: list[list[Any]]) -> list[Any]:
    return list(dict.fromkeys(v for s in sets for v in s))


class _Finder:
    """Key sets of one model reference's filters; `run` None: exact literal sets only."""

    def __init__(self, ref: ModelRef, key: str, run: Run | None):
        self.ref, self.key, self.run = ref, key, run
        select = ref.select
        assert select is not None
        self.select = select
        self.sources = {node.alias_or_name.lower(): node for node in _sources(select)}

    def of(self, node: exp.Expression) -> list[Any] | None:
        if isinstance(node, exp.Paren):
            return self.of(node.this)
        if isinstance(node, (exp.And, exp.Or)):
            parts = [self.of(p) for p in node.flatten()]
            if isinstance(node, exp.Or) or self.run is None:  # exact: every part must be an id filter
                return None if any(p is None for p in parts) else (
                    _union(parts) if isinstance(node, exp.Or) else _intersect(parts))
            return _intersect([p for p in parts if p is not None])
        if isinstance(node, exp.EQ):
            for col, other in ((node.this, node.expression), (node.expression, node.this)):
                if self._is_key(col):
                    return self._equal_to(other)
            return None
        if isinstance(node, exp.In) and self._is_key(node.this):
            query = node.args.get("query")
            if query is not None:
                return self._subquery(query)
            items = node.expressions
            if items and not node.args.get("unnest") and all(is_literal(v) for v in items):
                return [option_value(v) for v in items]
        return None

    def _is_key(self, node: exp.Expression) -> bool:
        return isinstance(node, exp.Column) and refers_to(node, self.key, self.ref.alias)

    def _equal_to(self, other: exp.Expression) -> list[Any] | None:
        if is_literal(other):
            return [option_value(other)]
        if isinstance(other, exp.Subquery):
            return self._subquery(other)
        if isinstance(other, exp.Column) and other.table and other.table.lower() != self.ref.alias.lower():
            return self._source_values(other.table, other.name, [])
        return None

    def _subquery(self, node: exp.Expression) -> list[Any] | None:
        inner = node.this if isinstance(node, exp.Subquery) else node
        if self.run is None or not isinstance(inner, exp.Query) or _correlated(inner):
            return None
        query = exp.select("*").distinct().from_(exp.Subquery(this=inner.copy(), alias=exp.TableAlias(
            this=exp.to_identifier("_sqlrec_keys")))).order_by(exp.Literal.number(1))
        return self._run(query, f"the subquery on {self.key}")

    def _run(self, query: exp.Select, what: str) -> list[Any] | None:
        """The query's values, run alone with the WITH clauses it sees; not one reading a model
        (DuckDB has no such table) or the relation computed for one (a stream is read once)."""
        query = with_visible_ctes(query, self.select)
        ctes = {c.alias_or_name.lower() for c in query.find_all(exp.CTE)}
        for table in query.find_all(exp.Table):
            name = (table.db or table.name).lower()
            if name in self.ref.models and (table.db or name not in ctes):
                return None
        if any(i.name.lower().startswith(_RELATIONS) for i in query.find_all(exp.Identifier)):
            return None
        return None if self.run is None else self.run(query, what)

    def _source_values(self, alias: str, column: str, on: list[exp.Expression]) -> list[Any] | None:
        """Distinct `alias.column` of that source of the query, under its own WHERE / ON filters."""
        source = self.sources.get(alias.lower())
        if self.run is None or source is None or source is self.ref.table:
            return None
        own = [p for p in conjuncts(self.select.args.get("where")) + on if _only_of(p, alias)]
        query = exp.select(exp.column(column, table=alias)).distinct().from_(source.copy())
        for part in own:
            query = query.where(part.copy(), copy=False)
        query = query.order_by(exp.Literal.number(1), copy=False)
        if _correlated(query):  # a LATERAL subquery reading the model...
            return None
        return self._run(query, f"the {alias}.{column} values joined on {self.key}")

    def joins(self) -> list[list[Any]]:
        """Key sets of the joins that keep only the model rows matching another source."""
        found = []
        joins = self.select.args.get("joins") or []
        first = self.select.args.get("from_")
        for i, join in enumerate(joins):
            if self.run is None or not _filters_model(join, join.this is self.ref.table):
                continue
            on = conjuncts(join.args.get("on"))
            for part in on:
                if not isinstance(part, exp.EQ):
                    continue
                for col, other in ((part.this, part.expression), (part.expression, part.this)):
                    if (self._is_key(col) and isinstance(other, exp.Column) and other.table
                            and other.table.lower() != self.ref.alias.lower()):
                        values = self._source_values(other.table, other.name, on)
                        if values is not None:
                            found.append(values)
            using = [u.name.lower() for u in join.args.get("using") or []]
            if self.key.lower() in using and i == 0 and first is not None:
                other_node = first.this if join.this is self.ref.table else join.this
                if any(self.ref.table is node for node in (first.this, join.this)):
                    values = self._source_values(other_node.alias_or_name, self.key, [])
                    if values is not None:
                        found.append(values)
        return found


def _filters_model(join: exp.Join, model_joined: bool) -> bool:
    """Whether the join keeps only the model rows that match its condition."""
    if join.args.get("method"):  # NATURAL, ASOF, POSITIONAL: not analysed
        return False
    side, kind = (join.args.get("side") or "").upper(), (join.args.get("kind") or "").upper()
    if kind in ("CROSS", "ANTI", "ANY"):
        return False
    if kind == "SEMI":
        return not model_joined and not side
    if side == "LEFT":
        return model_joined
    if side == "RIGHT":
        return not model_joined
    return not side and (join.args.get("on") is not None or bool(join.args.get("using")))


def _sources(select: exp.Select) -> list[exp.Expression]:
    first = select.args.get("from_")
    nodes = [first.this] if first is not None else []
    return nodes + [j.this for j in select.args.get("joins") or []]


def _only_of(part: exp.Expression, alias: str) -> bool:
    """A filter reading the source `alias` alone (every column qualified by it)."""
    tables = {c.table.lower() for c in part.find_all(exp.Column)}
    return bool(tables) and tables == {alias.lower()}


def _correlated(query: exp.Query) -> bool:
    """Whether a column of the subquery names a table it does not define (one of the outer query)."""
    defined = {t.alias_or_name.lower() for t in query.find_all(exp.Table)}
    defined |= {s.alias.lower() for s in query.find_all(exp.Subquery) if s.alias}
    defined |= {c.alias_or_name.lower() for c in query.find_all(exp.CTE)}
    defined |= {a.name.lower() for a in query.find_all(exp.TableAlias) if a.name}
    return any(c.table and c.table.lower() not in defined for c in query.find_all(exp.Column))
