"""Queries that read models: each model reference becomes a computed relation.

The references are found in the sqlglot tree (sqlrec.exec.rewrite), id filters are pushed into
scoring so that only the asked-for keys are scored, each relation is registered with DuckDB
under a unique name, and DuckDB runs the rest of the query (joins, filters, aggregates) as
written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pyarrow as pa
from sqlglot import exp

from sqlrec.numeric import approx
from sqlrec.models import attributes
from sqlrec.exec import coldstart, pushdown, rewrite, streaming, views
from sqlrec.exec.compat import mlfunctions
from sqlrec.sql import options as opts
from sqlrec.models.catalog import Catalog
from sqlrec.errors import BinderException, CatalogException, ProgrammingError, QueryError, did_you_mean
from sqlrec.models.model import RECOMMENDER_TYPES, Model, Ranking
from sqlrec.store.session import Session
from sqlrec.sql import OPTIONS_ARG, Query, Statement, parse_select, parse_statement

Cancelled = Callable[[], bool]
_EXPLAIN = re.compile(r"^\s*EXPLAIN(\s+ANALYZE)?\s+", re.I)


def run(session: Session, catalog: Catalog, st: Query, params: Any, registered: list[str],
        cancelled: Cancelled = lambda: False, prefix: str = "", scored: list[int] | None = None) -> None:
    """Run the query (behind `prefix`, e.g. EXPLAIN); its result is left pending on the session's
    handle. The relations registered for it are appended to `registered` (released after it), the
    keys each model reference scored to `scored`."""
    view = _view_created(st)
    as_written = view.expression.sql(dialect="sqlrec") if view is not None else None
    views.expand(session, catalog, st.tree)  # a read of a view over models reads its query
    changed, params = mlfunctions.expand(session, catalog, st.tree, registered, params)  # ML.*, mindsdb.m
    if changed:
        st = Query(st.tree, text=st.tree.sql(dialect="duckdb"), line=st.line, col=st.col)
    refs = rewrite.find_model_refs(st.tree, catalog.exists)
    if not refs:
        _no_model_check(catalog, st)
        return session.run(prefix + st.text, params)
    _check_reads_only(st, refs)
    if view is not None:
        return views.create(session, catalog, view, as_written, sorted({r.model for r in refs}))
    # The tree was parsed for this execution alone: rewritten in place, its model references
    # stay the ones found above (binding replaces placeholders, never tables).
    tree = rewrite.inline_parameters(st.tree, params)
    streams: list[streaming.RecsStream] = []
    for ref in refs:
        alias = ref.table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(ref.alias))
        if ref.attribute == "versions":  # the catalog's rows, not one loaded version's
            registered.append(session.register("rel", catalog.versions(ref.model, "SELECT")))
            ref.table.replace(exp.Table(this=exp.to_identifier(registered[-1]), alias=alias))
            continue
        model = _load(catalog, ref)
        if ref.attribute is not None:
            registered.append(session.register("rel", attributes.ATTRIBUTES[ref.attribute](model)))
            ref.table.replace(exp.Table(this=exp.to_identifier(registered[-1]), alias=alias))
            continue
        rel = recommendations(session, model, ref, cancelled, stream=streaming.streamable(session, tree, ref.table),
                              scored=scored)
        if isinstance(rel, streaming.RecsStream):
            streams.append(rel)
        registered.append(session.register("rel", rel.reader if isinstance(rel, streaming.RecsStream) else rel))
        ref.table.replace(exp.Subquery(this=typed_select(registered[-1], model, rel.column_names), alias=alias))
    with streaming.errors_of(streams):
        session.run(prefix + tree.sql(dialect="duckdb"))


def _load(catalog: Catalog, ref: rewrite.ModelRef) -> Model:
    """The active version, or the one USING version = n names (a kept one: see keep_versions)."""
    version = opts.resolve({k: v for k, v in rewrite.gather_options(ref).items() if k.lower() == "version"},
                           [o for o in opts.QUERY_OPTIONS if o.name == "version"], "SELECT USING")["version"]
    return catalog.load(ref.model, "SELECT") if version is None else catalog.load_version(
        ref.model, version, f"SELECT FROM {ref.model} USING version = {version}")


def passthrough(session: Session, catalog: Catalog, st: Statement, params: Any, registered: list[str],
                cancelled: Cancelled, scored: list[int] | None = None) -> None:
    """A statement sqlglot does not know runs in DuckDB as written; EXPLAIN of a query over a
    model explains the query DuckDB really runs (over the computed relation)."""
    explain = _EXPLAIN.match(st.text)
    if explain:
        inner = parse_statement(st.text[explain.end():])
        if isinstance(inner, Query) and rewrite.find_model_refs(inner.tree, catalog.exists):
            return run(session, catalog, inner, params, registered, cancelled, prefix=st.text[:explain.end()],
                       scored=scored)
    mlfunctions.check_unparsed(st.text)
    session.run(st.text, params)


def _check_reads_only(st: Query, refs: list[rewrite.ModelRef]) -> None:
    """A model is read in a query's FROM / JOIN; a statement that would write to it, alter it or
    store the reference (a view: its relation exists for one statement only) is refused."""
    word = " ".join(st.text.split()[:2]).upper()
    for ref in refs:
        if ref.select is None or not rewrite.read_in_from(ref.table):
            raise QueryError(f"{word}: {ref.model!r} is a model, not a table; models are read with SELECT and "
                             "changed with CREATE OR REPLACE MODEL or DROP MODEL")
    kind = rewrite.created_kind(st.tree)
    kind = "TABLE" if kind is None else kind
    if kind not in ("TABLE", "VIEW"):
        # DuckDB would store the statement with the reference swapped for a relation that
        # lives for this statement only: every later read would fail.
        what = "a macro" if kind in ("MACRO", "FUNCTION") else f"a {kind.lower()}"
        raise QueryError(f"CREATE {kind}: {what} cannot read model {refs[0].model!r} (a model's rows are computed "
                         "by sqlrec per query, and DuckDB runs macros without sqlrec); use a view (CREATE VIEW), "
                         "or store the rows with CREATE TABLE ... AS SELECT ... FROM the model")


def _view_created(st: Query) -> exp.Create | None:
    """The CREATE VIEW node of `CREATE VIEW v AS SELECT ...`, None for other statements."""
    tree = st.tree
    if rewrite.created_kind(tree) == "VIEW" and isinstance(tree.expression, exp.Query):
        return tree
    return None


def typed_select(view: str, model: Model, columns: list[str]) -> exp.Select:
    """SELECT over a registered relation casting id columns back to the model's id types.

    Arrow carries some DuckDB types (UUID, HUGEINT, ENUM...) as other types; the relation must
    have the training columns' own types so that joins and comparisons behave.
    """
    types = {}
    for side in (model.side("user"), model.side("item")):
        if _ARROW_SAME.get(side.type.upper()) != side.ids.type:
            types[side.column] = types[f"similar_{side.column}"] = side.type
    items = []
    for col in columns:
        ident = exp.to_identifier(col, quoted=True)
        node: exp.Expression = exp.Column(this=ident)
        if col in types:
            node = exp.Cast(this=node, to=exp.DataType.build(types[col], dialect="duckdb"))
        items.append(exp.alias_(node, ident) if col in types else node)
    return exp.select(*items).from_(exp.to_identifier(view, quoted=True))


# DuckDB types that an Arrow column of this type already has when DuckDB reads it: no cast needed.
_ARROW_SAME = {"BIGINT": pa.int64(), "INTEGER": pa.int32(), "SMALLINT": pa.int16(), "TINYINT": pa.int8(),
               "VARCHAR": pa.string(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_()}


def _no_model_check(catalog: Catalog, st: Query) -> None:
    """USING on a query that reads no model would reach DuckDB as a bare syntax error."""
    using = next((n for n in st.tree.find_all(exp.Expression) if n.args.get(OPTIONS_ARG)), None)
    if using is None:
        return
    tables = sorted({t.name for t in st.tree.find_all(exp.Table) if t.name})
    models = catalog.names()
    unknown = [t for t in tables if did_you_mean(t, models)]
    hint = f"; unknown model {unknown[0]!r}{did_you_mean(unknown[0], models)}" if unknown else ""
    raise QueryError(
        f"SELECT ... USING: the query reads no model (it reads {', '.join(tables) or 'no table'}){hint}; "
        f"models: {', '.join(models) or 'none (CREATE MODEL first)'}")


def options_of(ref: rewrite.ModelRef, where: str) -> dict[str, Any]:
    given = rewrite.gather_options(ref)
    in_where = rewrite.take_where_option(ref, "recommender_type")
    if in_where is not None:
        if "recommender_type" in given and str(given["recommender_type"]).lower() != str(in_where).lower():
            raise QueryError(f"{where}: recommender_type given twice with different values")
        given["recommender_type"] = in_where
    return opts.resolve(given, opts.QUERY_OPTIONS, f"{where} USING")


def _keys(session: Session, model: Model, kind: str, ref: rewrite.ModelRef, where: str,
          skipped: list[str] | None = None) -> list[Any] | None:
    """The keys the query asks for: pushed-down filters (sqlrec.exec.pushdown: values, subqueries,
    joins on the key), and the MindsDB batch join's table. Filters left to DuckDB, with why,
    are appended to `skipped`."""
    key = model.key_column(kind)
    keys = pushdown.keys(ref, key, _runner(session, where, [] if skipped is None else skipped))
    if keys is not None:
        keys = model.side(RECOMMENDER_TYPES[kind].key).representable(keys, where)
    batch = rewrite.batch_join(ref, key, where)
    if batch is not None:
        got = session.rows(batch.sql(dialect="duckdb"), where=f"{where}: the joined table's {key} values")
        batch_keys = [r[0] for r in got if r[0] is not None]
        batch_set = set(batch_keys)
        keys = batch_keys if keys is None else [k for k in keys if k in batch_set]
    return keys


def _runner(session: Session, where: str, skipped: list[str]) -> pushdown.Run:
    """Runs the queries giving pushed keys (a subquery, a joined table's ids) in DuckDB first."""
    def values(query: exp.Query, what: str) -> list[Any] | None:
        label = f"{where}: {what} (run first to score only its values)"
        try:
            table = session.arrow(query.sql(dialect="duckdb"), where=label)
        except ProgrammingError as exc:
            if not isinstance(exc, (BinderException, CatalogException)):
                raise  # it ran and failed: the whole query would fail the same way
            # It reads what only the whole query has (a column of the outer query): DuckDB runs
            # it as written. A statement that fails to bind leaves a user's transaction open.
            skipped.append(f"{what} was not pushed: {str(exc.__cause__).splitlines()[0]}")
            return None
        if table.num_columns != 1:
            skipped.append(f"{what} was not pushed: it has {table.num_columns} columns")
            return None
        return [v for v in table.column(0).to_pylist() if v is not None]
    return values


def max_scored(given: int | None) -> int:
    """The max_scored bound in force: the option as given, else the default (0: no bound)."""
    return opts.MAX_SCORED if given is None else given


def _check_bound(model: Model, kind: str, ref: rewrite.ModelRef, keys: list[Any] | None, bound: int,
                 where: str, skipped: list[str]) -> None:
    """A SELECT scoring more than `bound` keys is refused (USING max_scored); CREATE TABLE AS
    and INSERT store every key's rows by intent and have no bound."""
    if not bound or isinstance(ref.table.root(), (exp.Create, exp.Insert)):
        return
    column = model.key_column(kind)
    n = len(model.side(RECOMMENDER_TYPES[kind].key).ids) if keys is None else len(keys)
    if n <= bound:
        return
    allow = ("store the rows with CREATE TABLE ... AS SELECT, or allow it with USING max_scored = 0 "
             "(no bound) or a larger bound")
    if keys is not None:
        raise QueryError(f"{where}: the query asks for {n:,} {column} ids, more than max_scored = {bound:,} "
                         f"scored in one SELECT; {allow}")
    why = f" ({'; '.join(skipped)})" if skipped else ""
    raise QueryError(
        f"{where}: the query would score all {n:,} {column} ids of the model, more than max_scored = "
        f"{bound:,}: no filter on {column} is pushed into scoring{why}. Pushed are {column} = v, IN (values), "
        f"IN (SELECT ...), OR of those, and joins ON {ref.alias}.{column} = t.{column}; add one, {allow}")


@dataclass(frozen=True)
class Ask:
    """A model reference's query options resolved against its model (see ask): what is ranked,
    how many rows per key, whether seen targets are dropped, the search, and the options as
    resolved (cold start reads its own: interactions, user_features, item_features)."""

    kind: str
    k: int
    exclude_seen: bool
    search: approx.Search
    options: dict[str, Any]


def ask(model: Model, q: dict[str, Any], where: str) -> Ask:
    """The query options `q` (resolved: options_of, sqlrec.sql.options.QUERY_OPTIONS) with their
    defaults for `model`; the one place they are applied, for every path."""
    kind = q["recommender_type"]
    if kind == "rating":
        unused = [o for o in ("n_recommendations", "exclude_seen", "candidates", "user_features", "item_features",
                              "interactions", "approximate", "nprobe", "max_scored") if q[o] is not None]
        if unused:
            raise QueryError(f"{where} USING: option {unused[0]} does not apply to recommender_type 'rating' "
                             "(it predicts exactly the asked pairs, seen or not, of known ids)")
        return Ask(kind, 0, False, approx.Search(), q)
    exclude = q["exclude_seen"]
    return Ask(kind, model.n_recommendations(q["n_recommendations"]),
               RECOMMENDER_TYPES[kind].exclude_seen if exclude is None else exclude,
               approx.Search(q["approximate"], q["nprobe"]), q)


Rows = pa.Table | streaming.RecsStream | dict[str, np.ndarray]


def recommend(session: Session, model: Model, asked: Ask, keys: list[Any] | None, *,
              targets: list[Any] | None = None, candidates: list[Any] | None = None, where: str | None = None,
              cancelled: Cancelled = lambda: False, stream: bool = False, columns: bool = False,
              scored: list[int] | None = None) -> Rows:
    """Recommendations of model `model` for keys `keys` (ids of the key side of asked.kind; None:
    every key the model knows, or the ids the query's interactions / features give) with the query
    options `asked` (see ask): the one function that computes a model reference's rows, for the
    full path (recommendations), for plans (sqlrec.exec.plans) and for callers outside SQL.

    `targets` limits the ranked targets to those ids (a filter on the target column), `candidates`
    to those items (USING candidates, its query already run by the caller). For 'rating', `keys`
    are the users and `targets` the items whose pairs are predicted. Unknown keys get vectors from
    cold start (sqlrec.exec.coldstart) or the fallback. With `stream`, every key's rows come as a
    RecsStream scored batch by batch; with `columns`, one known key's rows may come as numpy
    columns (Model.one_key_columns: DuckDB's quickest read by replacement scan). `scored` gets the
    number of keys each call scored (Ranking.scored): what pushdown saved, per statement. The
    SELECT-only parts stay with the caller: finding the keys, the max_scored bound, the version."""
    where = where or f"SELECT FROM {model.name}"
    if asked.kind == "rating":
        ranking = model.predict_ratings(keys, targets, where)
    else:
        keys, cold = coldstart.prepare(session, model, asked.kind, keys, asked.options, where)
        if stream and keys is None and cold is None:
            return streaming.RecsStream(_counted(model.rank_all(
                asked.kind, asked.k, exclude_seen=asked.exclude_seen, candidates=candidates, where=where,
                cancelled=cancelled, targets=targets, batch_keys=streaming.batch_keys(asked.k),
                search=asked.search), scored))
        if columns and keys is not None and len(keys) == 1 and targets is None and cold is None and candidates is None:
            rows = model.one_key_columns(RECOMMENDER_TYPES[asked.kind], keys[0], asked.k,
                                         exclude_seen=asked.exclude_seen, search=asked.search,
                                         cancelled=cancelled, where=where)
            if rows is not None:
                if scored is not None:
                    scored.append(1)
                return rows
        ranking = model.rank(asked.kind, keys, asked.k, exclude_seen=asked.exclude_seen, candidates=candidates,
                             cold=cold, where=where, cancelled=cancelled, targets=targets, search=asked.search)
    if scored is not None:
        scored.append(ranking.scored)
    return ranking.rows


def _counted(rankings: Iterator[Ranking], scored: list[int] | None) -> Iterator[pa.Table]:
    """The rankings' tables; each one's scored keys counted as DuckDB asks for it."""
    for ranking in rankings:
        if scored is not None:
            scored.append(ranking.scored)
        yield ranking.rows


def recommendations(session: Session, model: Model, ref: rewrite.ModelRef, cancelled: Cancelled = lambda: False,
                    stream: bool = False, scored: list[int] | None = None) -> pa.Table | streaming.RecsStream:
    """The reference's rows (the full path); with `stream`, every key's rows come as a RecsStream
    (sqlrec.exec.streaming)."""
    where = f"SELECT FROM {model.name}"
    asked = ask(model, options_of(ref, where), where)
    if asked.kind == "rating":
        keys = _keys(session, model, "user_item", ref, where)
        return cast(pa.Table, recommend(session, model, asked, keys, targets=_targets(model, "user_item", ref, where),
                                        where=where, scored=scored))
    skipped: list[str] = []
    keys = _keys(session, model, asked.kind, ref, where, skipped)
    q = asked.options
    bound = max_scored(q["max_scored"])
    _check_bound(model, asked.kind, ref, keys, bound, where, skipped)
    candidates = None
    if q["candidates"] is not None:
        sql = parse_select(q["candidates"], f"{where} USING: option candidates")
        candidates = [r[0] for r in session.rows(sql, where=f"{where}: USING candidates query failed")]
    rows = recommend(session, model, asked, keys, targets=_targets(model, asked.kind, ref, where),
                     candidates=candidates, where=where, cancelled=cancelled, stream=stream, scored=scored)
    return cast("pa.Table | streaming.RecsStream", rows)  # numpy columns come only where asked for


def _targets(model: Model, kind: str, ref: rewrite.ModelRef, where: str) -> list[Any] | None:
    """`=` / `IN` literal filters on the target column (movieId of user_item, similar_movieId of
    item_item...), and OR of them: those pairs are scored instead of filtering the top-N after its cut."""
    values = pushdown.targets(ref, model.columns(kind)[1])
    return None if values is None else model.side(RECOMMENDER_TYPES[kind].target).representable(values, where)
