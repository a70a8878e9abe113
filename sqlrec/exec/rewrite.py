"""Queries over models: find model references in a sqlglot tree, push id filters into scoring,
and swap each reference for a registered relation so DuckDB runs the rest.

Which id filters are pushed down, and why that keeps results, is sqlrec.exec.pushdown's. The WHERE
clause stays as written and DuckDB applies it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from sqlrec.models.attributes import ATTRIBUTE_HELP
from sqlrec.errors import ProgrammingError, QueryError
from sqlrec.sql import option_value, query_options


@dataclass
class ModelRef:
    table: exp.Table  # the reference in the tree
    model: str  # model name as written
    attribute: str | None  # m.info, m.metrics ... ; None = recommendations
    select: exp.Select | None  # the SELECT whose FROM/JOIN holds it
    options: dict[str, Any] = field(default_factory=dict)  # USING of that SELECT (+ WHERE recommender_type)
    models: frozenset[str] = frozenset()  # every model the statement reads (lower case)

    @property
    def alias(self) -> str:
        return self.table.alias_or_name


# In marker literals (mark_placeholders): no query text holds it.
_TAG = uuid.uuid4().hex[:12]


def mark_placeholders(tree: exp.Expression) -> list[tuple[exp.Literal, exp.Expression, int]]:
    """Swap each ? / $n / $name placeholder of `tree` for a marker string literal, in place:
    (marker, the placeholder, its rank in the statement's text) per placeholder, in tree order.

    DuckDB binds `?` in text order, which is not always sqlglot's tree order: the tree is printed
    and the markers' positions read back. It is printed in sqlrec's dialect, which writes ML.*
    calls with their input queries where they stand, so a statement whose parts are computed
    apart (sqlrec.exec.compat.mlfunctions) binds as DuckDB would bind the whole text."""
    found = list(tree.find_all(exp.Placeholder, exp.Parameter))
    if not found:
        return []
    markers = []
    for i, node in enumerate(found):
        marker = exp.Literal.string(f"__sqlrec_param_{i}_{_TAG}__")
        node.replace(marker)
        markers.append(marker)
    text = tree.sql(dialect="sqlrec")
    order = sorted(range(len(found)), key=lambda i: text.find(markers[i].this))
    rank = {i: r for r, i in enumerate(order)}
    return [(markers[i], found[i], rank[i]) for i in range(len(found))]


def inline_parameters(tree: exp.Expression, params: Any) -> exp.Expression:
    """Replace ? / $n / $name placeholders by literals, in the order DuckDB would bind them.

    Needed because pushdown must see the values; the values become SQL literals through
    sqlglot's own quoting (never pasted text), so quotes inside a value cannot change the query.
    """
    placeholders = list(tree.find_all(exp.Placeholder, exp.Parameter))
    if not placeholders:
        if params:
            raise ProgrammingError(f"{len(params)} parameters given but the statement has no placeholder")
        return tree
    if params is None:
        raise ProgrammingError(f"the statement has {len(placeholders)} placeholders but no parameters were given")
    if isinstance(params, dict):
        slots = [(node, node, 0) for node in placeholders]

        def value_of(node: exp.Expression, _rank: int) -> Any:
            name = node.name
            if name not in params:
                raise ProgrammingError(f"no value for parameter ${name}")
            return params[name]
    else:
        params = list(params)
        slots = mark_placeholders(tree)
        explicit = all(node.name.isdigit() for _, node, _ in slots)  # $1, $2 style
        if len(params) != len(placeholders) and not explicit:
            raise ProgrammingError(f"the statement has {len(placeholders)} placeholders but {len(params)} parameters were given")

        def value_of(node: exp.Expression, rank: int) -> Any:
            index = int(node.name) - 1 if explicit and node.name else rank
            if not 0 <= index < len(params):
                raise ProgrammingError(f"no value for parameter {index + 1}")
            return params[index]
    for pos, (spot, node, rank) in enumerate(slots):
        value = value_of(node, rank)
        try:
            spot.replace(exp.convert(value))
        except ValueError as exc:  # sqlglot has no literal for it (an object, a set...)
            raise ProgrammingError(f"parameter {pos + 1}: cannot bind a value of type {type(value).__name__} "
                                   "(use numbers, strings, booleans, dates, None or lists of those)") from exc
    return tree


def find_model_refs(tree: exp.Expression, is_model: Any) -> list[ModelRef]:
    """Every table reference that names a model (m) or a model attribute (m.metrics)."""
    cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    refs: list[ModelRef] = []
    for table in list(tree.find_all(exp.Table)):
        if table.args.get("catalog") is not None or not isinstance(table.this, exp.Identifier):
            continue
        db, name = table.db, table.name
        if not db and name.lower() not in cte_names and is_model(name):
            refs.append(ModelRef(table, name, None, table.find_ancestor(exp.Select)))
        elif db and name.lower() in ATTRIBUTE_HELP and is_model(db):
            refs.append(ModelRef(table, db, name.lower(), table.find_ancestor(exp.Select)))
    models = frozenset(r.model.lower() for r in refs)
    for ref in refs:
        ref.models = models
    return refs


def conjuncts(where: exp.Expression | None) -> list[exp.Expression]:
    if where is None:
        return []
    node = where.this if isinstance(where, exp.Where) else where
    return list(node.flatten()) if isinstance(node, exp.And) else [node]


def _set_conjuncts(select: exp.Select, parts: list[exp.Expression]) -> None:
    if not parts:
        select.set("where", None)
        return
    cond = parts[0]
    for p in parts[1:]:
        cond = exp.and_(cond, p)
    select.set("where", exp.Where(this=cond))


def refers_to(col: exp.Column, name: str, alias: str) -> bool:
    return col.name.lower() == name.lower() and (not col.table or col.table.lower() == alias.lower())


def take_where_option(ref: ModelRef, option: str) -> Any | None:
    """`WHERE recommender_type = 'x'` (MindsDB allows options in WHERE): remove it, return x."""
    if ref.select is None:
        return None
    found, kept = None, []
    for part in conjuncts(ref.select.args.get("where")):
        if (isinstance(part, exp.EQ) and isinstance(part.this, exp.Column)
                and refers_to(part.this, option, ref.alias) and isinstance(part.expression, exp.Literal)):
            found = option_value(part.expression)
        else:
            kept.append(part)
    if found is not None:
        _set_conjuncts(ref.select, kept)
    return found


def is_literal(node: exp.Expression) -> bool:
    if isinstance(node, exp.Neg):
        node = node.this
    return isinstance(node, (exp.Literal, exp.Boolean))


def batch_join(ref: ModelRef, key: str, alias_hint: str) -> exp.Select | None:
    """MindsDB batch form `FROM t a JOIN model b [WHERE a-only filters]`.

    Rewrites the input side to the distinct key values it holds (one recommendation list per
    key, not per input row) joined on the key, and returns the query giving those values (with
    the WITH clauses it may read). The rest of the query (aggregates, GROUP BY, ORDER BY, an
    outer query or CTE around it) runs as written over that join.
    """
    join = ref.table.parent
    select = ref.select
    if not isinstance(join, exp.Join) or select is None:
        return None
    if join.args.get("on") is not None or join.args.get("using"):
        return None
    source = select.args.get("from_")  # sqlglot >= 30 names the FROM arg "from_"
    if source is None or len(select.args.get("joins") or []) != 1:
        raise QueryError(f"{alias_hint}: a model joined without ON must be joined to exactly one table (MindsDB batch form)")
    left = source.this
    left_alias = left.alias_or_name
    own, rest = [], []
    for part in conjuncts(select.args.get("where")):
        tables = {c.table.lower() for c in part.find_all(exp.Column)}
        (own if tables and tables <= {left_alias.lower()} else rest).append(part)
    _check_left_columns(select, own, left_alias, key, ref.alias, alias_hint)
    inner = exp.select(exp.column(key, table=left_alias).as_(key)).distinct().from_(left.copy())
    for part in own:
        inner = inner.where(part.copy(), copy=False)
    source.set("this", exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(left_alias))))
    _set_conjuncts(select, rest)
    join.set("on", exp.EQ(this=exp.column(key, table=ref.alias), expression=exp.column(key, table=left_alias)))
    if not _reshaped(select):
        # A hash join scrambles the relation's order; the batch reads as one ranked list per key.
        select.order_by(exp.column(key, table=ref.alias), exp.column("rank", table=ref.alias), copy=False)
    return with_visible_ctes(inner.copy(), select)


def _check_left_columns(select: exp.Select, own: list[exp.Expression], left_alias: str, key: str,
                        model_alias: str, where: str) -> None:
    """The joined table contributes its distinct key values only: another of its columns
    (outside its own WHERE filters) has no single value per recommendation list."""
    inside = {id(c) for part in own for c in part.find_all(exp.Column)}
    for col in select.find_all(exp.Column):
        if id(col) in inside or col.table.lower() != left_alias.lower() or col.name.lower() == key.lower():
            continue
        raise QueryError(
            f"{where}: in the MindsDB batch form (JOIN without ON) the joined table {left_alias!r} gives one "
            f"recommendation list per distinct {key}, so only {left_alias}.{key} can be read, not "
            f"{left_alias}.{col.name}; filter on it in WHERE, or join with ON {model_alias}.{key} = "
            f"{left_alias}.{key} to keep the table's rows")


def _reshaped(select: exp.Select) -> bool:
    """Whether the query orders, groups or aggregates its rows itself (then no ranked order is added)."""
    if any(select.args.get(part) for part in ("order", "group", "distinct", "having")):
        return True
    return any(e.find(exp.AggFunc, exp.Window) is not None for e in select.expressions)


def with_visible_ctes(inner: exp.Select, select: exp.Select) -> exp.Select:
    """The key query runs on its own: it takes the WITH clauses of the query around the join."""
    ctes: list[exp.CTE] = []
    node: exp.Expression | None = select
    while node is not None:
        found = node.args.get("with_") if isinstance(node, exp.Query) else None
        if found is not None:
            ctes = [c.copy() for c in found.expressions] + ctes
        node = node.parent
    if ctes:
        inner.set("with_", exp.With(expressions=ctes, recursive=False))
    return inner


def gather_options(ref: ModelRef) -> dict[str, Any]:
    return dict(query_options(ref.select)) if ref.select is not None else {}


def read_in_from(table: exp.Table) -> bool:
    """Whether `table` is read in a FROM or JOIN of its own SELECT (not named in an expression)."""
    node = table
    while node.parent is not None and not isinstance(node, exp.Select):
        if isinstance(node.parent, (exp.From, exp.Join)):
            return True
        node = node.parent
    return False


def created_kind(tree: exp.Expression) -> str | None:
    """What a CREATE statement creates (TABLE, VIEW, MACRO ...), None for other statements."""
    return str(tree.args.get("kind") or "").upper() if isinstance(tree, exp.Create) else None
