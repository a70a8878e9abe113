"""sqlrec's fixed vocabulary, read-only, for the front-ends (the shell's completion, the magics):
the USING options of CREATE MODEL and of queries, the engines, the model attributes (m.info,
m.metrics...), the recommender types; and `database_rows`, the one way a front-end asks DuckDB's
own catalog (duckdb_tables(), duckdb_functions()) something. Those questions call DuckDB's
functions by their full name, `f"{SYSTEM}.duckdb_columns()"`: a database file may carry a macro
named like any built-in (even LIKE's `~~`), and an unqualified name would run the file's.

Front-ends and the server import this, never the layers below sqlrec.api (pyproject.toml's
import-linter contract "front-ends use the public surface" says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlrec.engines import HANDLERS, create_option_specs
from sqlrec.models.attributes import ATTRIBUTE_HELP
from sqlrec.models.model import RECOMMENDER_TYPES
from sqlrec.sql.options import QUERY_OPTIONS, Option
from sqlrec.store.session import SYSTEM

__all__ = ["SYSTEM", "create_options", "database_rows", "engine_names", "key_side", "model_attributes",
           "query_options", "recommendation_kinds"]

if TYPE_CHECKING:
    from sqlrec.api.connection import Connection


def create_options() -> dict[str, Option]:
    """Option name or alias -> Option for CREATE MODEL ... USING (common, features, every engine's)."""
    out: dict[str, Option] = {}
    for spec in create_option_specs():
        for name in (spec.name, *spec.aliases):
            out.setdefault(name, spec)  # a common option wins over an engine's of the same name
    return out


def query_options() -> dict[str, Option]:
    """Option name or alias -> Option for SELECT ... FROM model USING."""
    return {name: spec for spec in QUERY_OPTIONS for name in (spec.name, *spec.aliases)}


def engine_names() -> list[str]:
    return list(HANDLERS)


def model_attributes() -> dict[str, str]:
    """Attribute name -> help, for `m.<attribute>` (DESCRIBE m.metrics, SELECT * FROM m.history)."""
    return dict(ATTRIBUTE_HELP)


def recommendation_kinds() -> tuple[str, ...]:
    """The recommender types a query ranks by (user_item, item_user, item_item, user_user)."""
    return tuple(RECOMMENDER_TYPES)


def key_side(kind: str) -> str | None:
    """'user' or 'item': whose ids a ranking of recommender_type `kind` is asked for (None: not a
    ranking)."""
    spec = RECOMMENDER_TYPES.get(kind)
    return None if spec is None else spec.key


def database_rows(con: "Connection", sql: str, params: Sequence[Any] | None = None, *, where: str) -> list[tuple]:
    """The rows of a front-end's question to DuckDB's catalog, run on the connection's own handle
    (its temp tables and attached databases are seen); a failure is a sqlrec error labelled
    `where`. It runs as written: no model, no sqlrec statement (name DuckDB's functions as
    SYSTEM's, see above)."""
    return con.session.rows(sql, params, where=where)
