"""Statements seen before run without the parser: a plan per statement text.

An application asks the same statement again and again with new parameters (`SELECT * FROM m
WHERE userId = ?`). Parsing it with sqlglot, finding its model references, printing it back and
registering the result with DuckDB cost several times what scoring one user does. So the second
time a text is run (the first may be a one-off), its plan is learnt from a fresh parse, and later
runs of the same text follow the plan:

- ``Plain``: a read-only query that reads no model, no sqlrec view, no ML.* function and has no
  USING: DuckDB runs the text with the parameters, as the full path would.
- ``Lookup``: one SELECT over one model (no join, subquery or CTE) whose key filter is `=` / `IN`
  of literals and placeholders. Its options, the source of each key (a literal or the n-th
  parameter) and the SQL that DuckDB runs over the rows (placeholders kept, bound by DuckDB) are
  worked out once (its options by queries.ask, as the full path resolves them). A run scores the
  asked keys by queries.recommend, the function the full path computes a reference's rows by, and
  hands the rows to DuckDB by a replacement scan (a name in the calling frame), with no
  register/unregister round trip. What differs between the two paths is how the keys are found
  and how the rows reach DuckDB, never how they are computed.

A plan holds while no statement has written anything (the catalog's write count, sqlrec.models.catalog)
and the handle sees the same active model versions it was learnt with; otherwise the text takes
the full path again and is learnt afresh. Anything a plan does not cover simply has no plan.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from sqlrec.exec import pushdown, queries, rewrite, views
from sqlrec.models.catalog import Catalog
from sqlrec.models.model import RECOMMENDER_TYPES
from sqlrec.store.session import SYSTEM, Session
from sqlrec.sql import OPTIONS_ARG, READ_ONLY, Query, parse_script
from sqlrec.sql.compat.foreign import MINDSDB_PROJECT, SqlRecMLCall

# Texts remembered (plans and first sightings): an application has a handful of statement shapes;
# a client inlining literals makes new texts all the time, and those must not grow memory.
MAX_PLANS = 512
# Keys written in a planned text at most: longer lists take the full path (and its max_scored bound).
MAX_KEYS = 1_000
# Query-time options that read the database or another version: those take the full path.
_UNPLANNED_OPTIONS = ("candidates", "user_features", "item_features", "interactions", "version")


@dataclass(frozen=True)
class Plain:
    text: str

    def run(self, session: Session, catalog: Catalog, params: Any, registered: list[str], keep: list[Any],
            cancelled: Callable[[], bool], scored: list[int] | None = None) -> bool:
        session.run(self.text, params)
        return True


@dataclass(frozen=True)
class Lookup:
    model: str
    asked: queries.Ask  # the reference's options, resolved as the full path resolves them
    keys: tuple  # ("param", index) | ("value", v) per key; the same for targets
    targets: tuple | None
    scan: str  # the name DuckDB reads the rows under
    sql: str  # what DuckDB runs, placeholders kept
    by_scan: bool  # replacement scan allowed (else register under the same name for the statement)
    bind: bool  # the SQL has placeholders for DuckDB to bind (false: its filters were all pushed)
    arity: int  # parameters the statement takes: exactly (?), at least ($n)
    numbered: bool

    def run(self, session: Session, catalog: Catalog, params: Any, registered: list[str], keep: list[Any],
            cancelled: Callable[[], bool], scored: list[int] | None = None) -> bool:
        """Score (queries.recommend, as the full path does) and hand the rows to DuckDB; False
        (nothing run) where the full path must answer."""
        values = list(params) if params is not None else []
        if len(values) != self.arity and not (self.numbered and len(values) > self.arity):
            return False  # the full path says what is wrong with the parameters
        asked = [_value(s, values) for s in self.keys]
        targets = None if self.targets is None else [_value(s, values) for s in self.targets]
        if any(v is _UNBOUND for v in asked + (targets or [])):
            return False  # a parameter missing or of a type only the full path converts
        model = catalog.load(self.model, "SELECT")  # the version planned: plans hold for the handle's actives
        where = f"SELECT FROM {model.name}"
        spec = RECOMMENDER_TYPES[self.asked.kind]
        keys = model.side(spec.key).representable(asked, where)
        if targets is not None:
            targets = model.side(spec.target).representable(targets, where)
        rows = queries.recommend(session, model, self.asked, keys, targets=targets, where=where, cancelled=cancelled,
                                 columns=self.by_scan, scored=scored)
        keep.append(rows)  # DuckDB may read the rows until the result is fetched
        params = params if self.bind else None
        if self.by_scan:
            session.run(self.sql, params, objects={self.scan: rows})
        else:
            registered.append(session.register("rows", rows, name=self.scan))
            session.run(self.sql, params)
        return True


class _Never(Exception):
    """A text that no plan can serve whatever the catalog holds (a script, a write)."""


_UNBOUND = object()
# Parameter values used as keys as they are: the full path turns others into SQL literals first.
_KEY_TYPES = (int, float, str)


def _value(source: tuple, params: list[Any]) -> Any:
    kind, v = source
    if kind == "value":
        return v
    if v >= len(params) or type(params[v]) not in _KEY_TYPES:
        return _UNBOUND
    return params[v]


class Plans:
    """The plans of one engine (every cursor of a connection), by statement text."""

    def __init__(self) -> None:
        # text -> (write count it holds for, or None for always; active versions; plan or None)
        self._plans: dict[str, tuple[int | None, dict, Plain | Lookup | None]] = {}
        self._seen: dict[str, None] = {}
        self._lock = threading.Lock()
        self._scans = iter(range(1 << 62))

    def find(self, sql: str, catalog: Catalog, params: Any) -> Plain | Lookup | None:
        """The plan to run `sql` by: its valid one, or one learnt now (see learn)."""
        entry = self._plans.get(sql)
        if entry is not None:
            generation, actives, plan = entry
            if generation is None or (generation == catalog.cache.generation() and actives == catalog.actives()):
                return plan
        return self.learn(sql, catalog, params)

    def learn(self, sql: str, catalog: Catalog, params: Any) -> Plain | Lookup | None:
        """The plan of `sql` on its second sighting (worked out before it runs: planning asks
        DuckDB things, which would drop a pending result); None on the first, or when it has none."""
        if sql not in self._seen and sql not in self._plans:
            with self._lock:
                _bounded(self._seen)[sql] = None
            return None
        generation, actives = catalog.cache.generation(), dict(catalog.actives())
        try:
            plan = self._plan(sql, catalog, params)
        except _Never:
            generation = plan = None  # not a read-only query: no catalog change will give it a plan
        except Exception:  # noqa: BLE001 - what cannot be planned takes the full path, which reports errors
            plan = None
        with self._lock:
            _bounded(self._plans)[sql] = (generation, actives, plan)
        return plan

    def forget(self, sql: str) -> None:
        with self._lock:
            self._plans.pop(sql, None)

    def _plan(self, sql: str, catalog: Catalog, params: Any) -> Plain | Lookup | None:
        statements = parse_script(sql)
        if len(statements) != 1 or type(statements[0]) is not Query or not isinstance(statements[0].tree, READ_ONLY):
            raise _Never
        st = statements[0]
        tables = list(st.tree.find_all(exp.Table))
        if any(isinstance(t.this, SqlRecMLCall) or MINDSDB_PROJECT in (t.db.lower(), t.catalog.lower())
               for t in tables):
            return None
        refs = rewrite.find_model_refs(st.tree, catalog.exists)
        if not refs:
            if any(n.args.get(OPTIONS_ARG) for n in st.tree.find_all(exp.Expression)):
                return None
            if views.reads_views(catalog.session, catalog, st.tree):
                return None
            return Plain(st.text)
        return self._lookup(st, refs, tables, catalog, params)

    def _lookup(self, st: Query, refs: list[rewrite.ModelRef], tables: list[exp.Table], catalog: Catalog,
                params: Any) -> Lookup | None:
        tree = st.tree
        if (len(refs) != 1 or len(tables) != 1 or refs[0].attribute is not None or not isinstance(tree, exp.Select)
                or refs[0].select is not tree or len(list(tree.find_all(exp.Select))) != 1
                or tree.args.get("joins") or tree.args.get("with_")
                or tree.args.get("from_") is None or tree.args["from_"].this is not refs[0].table):
            return None
        ref = refs[0]
        placeholders = _mark_placeholders(tree, params)
        if placeholders is None:
            return None
        model = catalog.load(ref.model, "SELECT")
        where = f"SELECT FROM {model.name}"
        q = queries.options_of(ref, where)
        kind = q["recommender_type"]
        if kind not in RECOMMENDER_TYPES or any(q[o] is not None for o in _UNPLANNED_OPTIONS):
            return None
        keys = _sources(ref, model.key_column(kind), placeholders)
        targets = _sources(ref, model.columns(kind)[1], placeholders, optional=True)
        if keys is None or targets is False or len(keys) > MAX_KEYS:
            return None
        bind = not _drop_pushed(ref, [model.key_column(kind)] + ([model.columns(kind)[1]] if targets else []))
        scan = f"__sqlrec_plan_{next(self._scans)}"
        alias = ref.table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(ref.alias))
        select = queries.typed_select(scan, model, model.columns(kind))
        if any(isinstance(e, exp.Alias) for e in select.expressions):  # ids cast back to their own type
            ref.table.replace(exp.Subquery(this=select, alias=alias))
        else:
            ref.table.replace(exp.Table(this=exp.to_identifier(scan, quoted=True), alias=alias))
        for marker, node in placeholders.values():
            marker.replace(node)
        return Lookup(ref.model, queries.ask(model, q, where), keys, targets, scan, tree.sql(dialect="duckdb"),
                      _scans_allowed(catalog.session), bind,
                      max((m.meta["param"] + 1 for m, _ in placeholders.values()), default=0),
                      any(node.name.isdigit() for _, node in placeholders.values()))


def _mark_placeholders(tree: exp.Expression, params: Any) -> dict[str, tuple[exp.Literal, exp.Expression]] | None:
    """Swap each placeholder for a marker literal (pushdown reads literals): marker text ->
    (marker, placeholder). Positional `?` bind in text order, `$n` by number (DuckDB's rules);
    named ones are not planned."""
    if isinstance(params, dict):
        return None
    found = list(tree.find_all(exp.Placeholder, exp.Parameter))
    names = ["" if node.name == "?" else node.name for node in found]
    if any(n and not n.isdigit() for n in names) or (any(names) and not all(names)):
        return None
    marks: dict[str, tuple[exp.Literal, exp.Expression]] = {}
    count = len(params) if params is not None else 0
    for marker, node, rank in rewrite.mark_placeholders(tree):
        index = int(node.name) - 1 if node.name.isdigit() else rank
        if index >= count:
            return None
        marker.meta["param"] = index
        marks[marker.this] = (marker, node)
    return marks


def _sources(ref: rewrite.ModelRef, column: str, marks: dict, optional: bool = False) -> tuple | None | bool:
    """Where each pushed value of `column` comes from: ("param", n) or ("value", v). None when the
    column has no pushable filter (False for an optional one that is filtered in a way not planned)."""
    filters = _filters_on(ref, column)
    values = pushdown.targets(ref, column)  # exact sets of literals (markers stand for parameters)
    if values is None:
        return False if optional and filters else None
    if len(filters) != 1 or filters[0].find(exp.And) is not None:
        return False if optional else None  # intersected sets: which parameter values remain is not known yet
    return tuple(("param", marks[v][0].meta["param"]) if isinstance(v, str) and v in marks else ("value", v)
                 for v in values)


def _filters_on(ref: rewrite.ModelRef, column: str) -> list[exp.Expression]:
    return [part for part in rewrite.conjuncts(ref.select.args.get("where"))
            if any(rewrite.refers_to(c, column, ref.alias) for c in part.find_all(exp.Column))]


def _drop_pushed(ref: rewrite.ModelRef, columns: list[str]) -> bool:
    """Drop the WHERE when it holds nothing but the pushed filters and no other placeholder: the
    scored rows are exactly the asked keys' (and targets'), so DuckDB has nothing to filter and
    no parameter to bind. True when dropped."""
    select = ref.select
    pushed = [f for column in columns for f in _filters_on(ref, column)]
    if {id(p) for p in rewrite.conjuncts(select.args.get("where"))} != {id(p) for p in pushed}:
        return False
    where = select.args.get("where")
    select.set("where", None)
    if next(select.find_all(exp.Placeholder, exp.Parameter), None) is not None or any(
            n.meta.get("param") is not None for n in select.find_all(exp.Literal)):
        select.set("where", where)
        return False
    return True


def _scans_allowed(session: Session) -> bool:
    """DuckDB reads Python objects by name only with replacement scans on and external access allowed."""
    try:
        # DuckDB's own current_setting (SYSTEM): the file may carry a macro of that name.
        row = session.one(f"SELECT {SYSTEM}.current_setting('python_enable_replacements'), "
                          f"{SYSTEM}.current_setting('enable_external_access')", where="planning a query")
    except Exception:  # noqa: BLE001 - an unknown setting: use register
        return False
    return bool(row and row[0] and row[1])


def _bounded(store: dict) -> dict:
    while len(store) >= MAX_PLANS:
        store.pop(next(iter(store)))
    return store


