"""Views over models: `CREATE VIEW v AS <query reading a model>` keeps the query, and a query
that reads v reads that query in its place, so the model's rows are computed at every read.

DuckDB cannot call back into sqlrec while it reads a view, so the view DuckDB stores is a
placeholder: its body raises an error that names sqlrec (read through DuckDB alone, it says why
it has no rows) and its COMMENT holds the query. The comment lives in the database file with
the view, goes with DROP VIEW and is replaced by CREATE OR REPLACE VIEW: DuckDB keeps it right.
sqlrec only ever reads the comment (through DuckDB's own duckdb_views(), see SYSTEM), never the
view's body: a crafted file's "view over models" runs nothing, its comment is checked as a query.
"""

from __future__ import annotations

import json
from typing import Any

from sqlglot import exp

from sqlrec.exec import rewrite
from sqlrec.models.cache import VIEW_MARK
from sqlrec.models.catalog import Catalog
from sqlrec.errors import QueryError, SqlRecError
from sqlrec.store.session import SYSTEM, Session
from sqlrec.sql import READ_ONLY, Query, parse_statement
from sqlrec.sql.quoting import quote_literal

MAX_DEPTH = 16  # views reading views; deeper is a loop


def create(session: Session, catalog: Catalog, create: exp.Create, query: str, models: list[str]) -> None:
    """Store the placeholder view and its query (`query`: the view's SELECT as written)."""
    name = create.this.sql(dialect="duckdb")
    where = f"CREATE VIEW {name}"
    if create.args.get("exists") and catalog.table_exists(create.this.name):
        return  # IF NOT EXISTS of an existing view or table: nothing changes, as in DuckDB
    message = (f"view {create.this.name} reads sqlrec model {models[0]}: query it through sqlrec "
               f"(sqlrec.connect or the sqlrec shell)")
    placeholder = create.copy()
    placeholder.set("expression", exp.select(exp.func("error", exp.Literal.string(message)).as_("sqlrec_view")))
    payload = json.dumps({"query": query, "models": models})
    try:
        with session.transaction(where):  # the view and its comment together, or neither
            session.run(placeholder.sql(dialect="duckdb"), where=where)
            session.run(f"COMMENT ON VIEW {name} IS {quote_literal(VIEW_MARK + payload)}", where=where)
        session.run('SELECT NULL::BIGINT AS "Count" LIMIT 0', where=where)  # what DuckDB answers CREATE VIEW with
    finally:
        catalog.cache.wrote()  # the views this statement read before it made one are stale


def _views(session: Session, catalog: Catalog) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(database, schema, view) lower-cased -> {"name", "query", "models"}, plus the current
    database and schema under key ("", "", ""); cached per handle like the active models."""
    store = catalog.cache.views
    found = catalog.cache.current(id(session.duck), store)
    if found is None:
        found = {}
        for db, schema, name, comment, cur_db, cur_schema in session.rows(
                f"SELECT database_name, schema_name, view_name, comment, {SYSTEM}.current_database(), "
                f"{SYSTEM}.current_schema() FROM {SYSTEM}.duckdb_views() WHERE {SYSTEM}.starts_with(comment, ?)",
                [VIEW_MARK], where="reading sqlrec's views"):
            found[("", "", "")] = {"database": cur_db.lower(), "schema": cur_schema.lower()}
            found[(db.lower(), schema.lower(), name.lower())] = {"name": name, "comment": comment[len(VIEW_MARK):]}
        catalog.cache.remember(id(session.duck), found, store)
    return found


def _match(views: dict[tuple[str, str, str], dict[str, Any]], table: exp.Table) -> dict[str, Any] | None:
    here = views[("", "", "")]
    name, schema, db = table.name.lower(), table.db.lower(), table.catalog.lower()
    if db or schema:
        return views.get((db or here["database"], schema, name)) or (
            None if db else views.get(("temp", schema, name)))
    return views.get((here["database"], here["schema"], name)) or views.get(("temp", "main", name))


def _candidates(catalog: Catalog, tree: exp.Expression) -> list[exp.Table]:
    """Tables read in FROM / JOIN that are neither CTEs nor models: only these may be views (a
    query reading models alone asks DuckDB nothing more)."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    return [t for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes and rewrite.read_in_from(t)
            and not (not t.db and catalog.exists(t.name))]


def reads_views(session: Session, catalog: Catalog, tree: exp.Expression) -> bool:
    tables = _candidates(catalog, tree)
    views = _views(session, catalog) if tables else {}
    return bool(views) and any(_match(views, t) for t in tables)


def _definition(view: dict[str, Any], catalog: Catalog) -> exp.Expression:
    """The view's query, after checking what the file holds (it may be crafted) and that its models exist."""
    name = view["name"]
    try:
        payload = json.loads(view["comment"])
        st = parse_statement(payload["query"])
        models = [str(m) for m in payload["models"]]
    except (ValueError, KeyError, TypeError, SqlRecError) as exc:
        raise QueryError(f"view {name!r}: its stored query cannot be read ({exc}); DROP VIEW {name} and "
                         "create it again") from exc
    if not isinstance(st, Query) or not isinstance(st.tree, READ_ONLY):
        raise QueryError(f"view {name!r}: its stored query is not a SELECT; DROP VIEW {name} and create it again")
    missing = [m for m in models if not catalog.exists(m)]
    if missing:
        raise QueryError(f"view {name!r} reads model {missing[0]!r}, which does not exist (any more); "
                         f"DROP VIEW {name}, or create the model again")
    return st.tree


def expand(session: Session, catalog: Catalog, tree: exp.Expression) -> list[str]:
    """Replace every read of a sqlrec view in `tree` by its query (views inside views too);
    the names of the views read."""
    views = _views(session, catalog) if _candidates(catalog, tree) else {}
    read: list[str] = []
    for _ in range(MAX_DEPTH if views else 0):
        found = [(t, v) for t in _candidates(catalog, tree) if (v := _match(views, t)) is not None]
        if not found:
            return read
        for table, view in found:
            alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(table.name))
            table.replace(exp.Subquery(this=_definition(view, catalog), alias=alias))
            read.append(view["name"])
    if views:
        raise QueryError(f"views nest more than {MAX_DEPTH} deep (does view {read[-1]!r} read itself?)")
    return read
