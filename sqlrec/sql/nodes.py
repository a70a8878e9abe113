"""sqlglot nodes of sqlrec's own, and the conversion of option literals to Python values."""

from __future__ import annotations

import math

from sqlglot import exp

from sqlrec.sql.statements import OptionValue, Statement

# Arg key under which a query node keeps its USING options. Not a sqlglot arg: generators other
# than sqlrec's skip it, which is how DuckDB SQL comes out without the USING.
OPTIONS_ARG = "sqlrec_options"


class SqlRecOptions(exp.Expression):
    """``USING k = v, ...`` of one query: expressions are EQ(Identifier key, literal value)."""

    arg_types = {"expressions": True}


class SqlRecModelStatement(exp.Expression):
    """A model statement inside sqlglot's world; ``this`` is its canonical text.

    The statement object itself rides in ``meta`` because it is not a sqlglot node.
    """

    arg_types = {"this": True}

    @property
    def statement(self) -> Statement:
        return self.meta["statement"]


def option_value(node: exp.Expr) -> OptionValue:
    """The Python value of an option literal: number, string, boolean, NULL, name or list."""
    if isinstance(node, exp.Paren):
        return option_value(node.this)
    if isinstance(node, exp.Neg):
        value = option_value(node.this)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value
    elif isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        try:
            return int(text)
        except ValueError:
            return float(text)
    elif isinstance(node, exp.Boolean):
        return bool(node.this)
    elif isinstance(node, exp.Null):
        return None
    elif isinstance(node, (exp.Tuple, exp.Array)):
        return [option_value(e) for e in node.expressions]
    elif isinstance(node, (exp.Column, exp.Identifier, exp.Var)):
        # a bare name (user_features = users) is the name as written
        parts = node.parts if isinstance(node, exp.Column) else [node]
        return ".".join(p.name for p in parts)
    raise ValueError(f"not an option literal: {node.sql()}")


def option_node(value: OptionValue) -> exp.Expr:
    """The literal node for a Python option value (inverse of option_value)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, float) and not math.isfinite(value):
        return exp.Literal.string(repr(value))  # no SQL literal for inf/nan
    if isinstance(value, (int, float)):
        literal = exp.Literal.number(repr(abs(value)) if isinstance(value, float) else abs(value))
        return exp.Neg(this=literal) if value < 0 else literal
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, (list, tuple)):
        return exp.Array(expressions=[option_node(v) for v in value])
    raise TypeError(f"cannot write option value {value!r} as SQL")


def options_node(options: dict[str, OptionValue]) -> SqlRecOptions:
    return SqlRecOptions(
        expressions=[
            exp.EQ(this=exp.to_identifier(key), expression=option_node(value))
            for key, value in options.items()
        ]
    )


def query_options(select: exp.Expr) -> dict[str, OptionValue]:
    """The ``USING k = v`` options written after this query node ({} when there are none).

    Options sit on the query they follow: a SELECT, or a UNION when they follow a parenthesised
    last operand.
    """
    node = select.args.get(OPTIONS_ARG)
    if node is None:
        return {}
    return {eq.this.name.lower(): option_value(eq.expression) for eq in node.expressions}


def set_query_options(select: exp.Expr, options: dict[str, OptionValue] | None) -> None:
    """Attach (or with None/{} remove) USING options on a query node."""
    select.set(OPTIONS_ARG, options_node(options) if options else None)
