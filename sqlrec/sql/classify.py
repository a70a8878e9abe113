"""What running a statement may do: read, control a transaction, or write. The one read-only rule.

A read-only ``sqlrec serve`` (HTTP and PostgreSQL wire) runs only statements this module calls
READ or TRANSACTION; a read-only connection's router refuses the model statements it calls
WRITE. Two tables decide:

* ``MODEL_STATEMENTS``: sqlrec's own statements, by class (what their command does).
* ``DUCKDB_TYPES``: everything else, by the statement type DuckDB's parser gives (so by what
  DuckDB will run, not by a first word: ``WITH x AS (...) INSERT ...`` is an INSERT). EXPLAIN
  is as the statement it explains (EXPLAIN ANALYZE runs it).

Anything else is WRITE: a type or class the tables do not name, text whose EXPLAIN cannot be
unwrapped. DuckDB itself is reached through a parser object (sqlrec.store.statements) handed in
by the caller, so this module stays grammar only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from sqlglot import exp

from sqlrec.errors import Error
from sqlrec.sql.compat.foreign import BigQueryCreateModel, CreateMLEngine, PredictUsing, ShowMLEngines
from sqlrec.sql.parser import READ_ONLY, parse_script, parse_statement
from sqlrec.sql.statements import (
    AlterModel, CreateModel, Describe, DropModel, EvaluateModel, ExportRecommendations, Finetune, Passthrough,
    Query, Retrain, ShowModels, Statement,
)

READ = "read"
TRANSACTION = "transaction"
WRITE = "write"
_RANK = {TRANSACTION: 0, READ: 1, WRITE: 2}  # a script is as strong as its strongest statement

# sqlrec's statements: what their command does to the database (or to files).
MODEL_STATEMENTS: dict[type[Statement], str] = {
    CreateModel: WRITE,
    BigQueryCreateModel: WRITE,
    DropModel: WRITE,
    AlterModel: WRITE,
    Retrain: WRITE,
    Finetune: WRITE,
    ExportRecommendations: WRITE,  # writes files, not the database: a write all the same
    ShowModels: READ,
    Describe: READ,
    ShowMLEngines: READ,
    CreateMLEngine: READ,  # checks that a built-in engine exists; stores nothing
    EvaluateModel: READ,  # computes metrics and stores none; its FROM query is classified too
    PredictUsing: READ,  # scores one user or item; its AS query is classified too
}

# DuckDB's statement types. SELECT covers FROM t, TABLE t, VALUES, SHOW, DESCRIBE, SUMMARIZE,
# UNPIVOT and PIVOT with an IN list. The rest change the database, a setting every client shares,
# what the process can reach (ATTACH, LOAD, INSTALL), or run stored or prepared code.
DUCKDB_TYPES: dict[str, str] = {
    "SELECT": READ,
    "TRANSACTION": TRANSACTION,  # BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK, ABORT
    # EXPLAIN: as the explained statement (_explain_access)
    "INSERT": WRITE, "UPDATE": WRITE, "DELETE": WRITE, "MERGE_INTO": WRITE,  # TRUNCATE is a DELETE
    "CREATE": WRITE,  # TEMP tables and views, macros and secrets too
    "CREATE_FUNC": WRITE, "DROP": WRITE, "ALTER": WRITE,  # DEALLOCATE is a DROP, COMMENT ON an ALTER
    "COPY": WRITE, "COPY_DATABASE": WRITE, "EXPORT": WRITE,  # IMPORT DATABASE is a PRAGMA
    "SET": WRITE, "VARIABLE_SET": WRITE,  # SET, RESET, USE, PRAGMA name = value, SET VARIABLE
    "PRAGMA": WRITE, "CALL": WRITE,  # CHECKPOINT is a CALL
    "LOAD": WRITE, "EXTENSION": WRITE, "ATTACH": WRITE, "DETACH": WRITE,  # INSTALL is a LOAD
    "VACUUM": WRITE, "ANALYZE": WRITE,
    "PREPARE": WRITE, "EXECUTE": WRITE,
    "MULTI": WRITE,  # a statement DuckDB expands into several (PIVOT without an IN list)
    "RELATION": WRITE, "LOGICAL_PLAN": WRITE, "INVALID": WRITE, "UNKNOWN": WRITE,
}
# EXPLAIN of EXPLAIN ... nests this deep at most (DuckDB allows none; the bound stops a
# crafted text from costing a parse per word).
_MAX_DEPTH = 3
_TREE_READS = (*READ_ONLY, exp.Describe, exp.Show, exp.Summarize)
_TREE_TRANSACTION = (exp.Transaction, exp.Commit, exp.Rollback)
_WRITE_NODES = (exp.DML, exp.DDL, exp.Drop, exp.Alter, exp.Command, exp.Set, exp.Pragma, exp.Use,
                exp.Transaction, exp.Commit, exp.Rollback, exp.Attach, exp.Detach, exp.Analyze, exp.Export)


class DuckDBParser(Protocol):
    """DuckDB's parser, as sqlrec.store.statements.DuckDBParser offers it."""

    def statements(self, sql: str) -> Sequence[tuple[str, str]]: ...  # (type, text) each

    def explained(self, sql: str) -> list[str]: ...


@dataclass(frozen=True)
class Access:
    """What a script may do (its strongest statement's access) and which statement decides it."""

    access: str  # READ, TRANSACTION or WRITE
    what: str = ""  # e.g. 'INSERT', 'SET under EXPLAIN', 'CREATE MODEL'; '' for a plain query


def script_access(sql: str, parser: DuckDBParser) -> Access:
    """The access of a script: WRITE if any statement writes, else READ if any reads, else
    TRANSACTION (only BEGIN / COMMIT / ROLLBACK). Statement text DuckDB cannot parse, outside
    sqlrec's own syntax, raises DuckDB's syntax error (it could only fail when run)."""
    return _strongest([statement_access(st, parser) for st in parse_script(sql)])


def statement_access(st: Statement, parser: DuckDBParser, depth: int = 0) -> Access:
    """The access of one parsed statement."""
    kind = MODEL_STATEMENTS.get(type(st))
    if kind is not None:
        found = [Access(kind, _model_words(st))]
        if kind == READ:
            # a read's own query (EVALUATE ... FROM (q), PREDICT ... AS q) must read too; and
            # text DuckDB parses may reach it as written (DESCRIBE t of a table is DuckDB's).
            # Text DuckDB cannot parse never runs there: its command reports the error.
            for text in (*_queries(st), st.text):
                try:
                    found.append(_text_access(text, None, parser, depth))
                except Error:
                    pass
        return _strongest(found)
    if type(st) in (Query, Passthrough):
        return _text_access(st.text, st.tree if isinstance(st, Query) else None, parser, depth)
    return Access(WRITE, type(st).__name__)  # a statement class this table does not know


def _text_access(text: str, tree: exp.Expr | None, parser: DuckDBParser, depth: int) -> Access:
    """Plain SQL, by DuckDB's parse. A Query (sqlglot's tree, which sqlrec rewrites and runs when
    it reads a model) counts its tree too, and alone where DuckDB cannot parse the text (sqlrec's
    USING, ML.* and MODEL m: sqlrec runs the rewritten tree, never the text)."""
    try:
        parsed = parser.statements(text)
    except Error:
        if tree is not None:
            return _tree_access(tree)
        explain = _explain_access(text, parser, depth, parsed=False)
        if explain is None:
            raise
        return explain
    found = []
    for kind, one in parsed:
        if kind == "EXPLAIN":
            found.append(_explain_access(one, parser, depth, parsed=True) or Access(WRITE, "EXPLAIN"))
        else:
            found.append(Access(DUCKDB_TYPES.get(kind, WRITE), kind))
    if tree is not None:  # after DuckDB's: of two verdicts alike, DuckDB's names the statement
        found.append(_tree_access(tree))
    return _strongest(found)


def _explain_access(text: str, parser: DuckDBParser, depth: int, parsed: bool) -> Access | None:
    """EXPLAIN's access: that of the statement it explains, EXPLAIN ANALYZE running it. The
    explained statement starts at one of the places parser.explained gives; each place that
    parses counts, so the verdict is never weaker than the statement that runs. `parsed`: DuckDB
    parsed the whole EXPLAIN, so the statement it runs is one DuckDB parses; otherwise sqlrec
    runs EXPLAIN over a query in its own syntax. None when no place parses (DuckDB's EXPLAIN:
    refused by the caller; text DuckDB could not parse: its syntax error)."""
    if depth >= _MAX_DEPTH:
        return Access(WRITE, "EXPLAIN")
    found = []
    for start in reversed(parser.explained(text)):  # the last place first: it names the statement
        try:
            if parsed:
                parser.statements(start)
            inner = statement_access(parse_statement(start), parser, depth + 1)
        except Error:
            continue
        what = inner.what if "EXPLAIN" in inner.what else f"{inner.what or 'a query'} under EXPLAIN"
        found.append(Access(inner.access, what))
    return _strongest(found) if found else None


def _tree_access(tree: exp.Expr) -> Access:
    """sqlglot's tree of a Query: a SELECT (VALUES, PIVOT, DESCRIBE, SHOW, SUMMARIZE) with no
    statement inside that changes anything reads; BEGIN / COMMIT / ROLLBACK control a transaction."""
    if isinstance(tree, _TREE_TRANSACTION):
        return Access(TRANSACTION, "TRANSACTION")
    if isinstance(tree, _TREE_READS) and next(tree.find_all(*_WRITE_NODES), None) is None:
        return Access(READ, "")
    return Access(WRITE, tree.key.upper())


def _queries(st: Statement) -> list[str]:
    if isinstance(st, EvaluateModel) and st.source is not None:
        return [st.source.select_sql()]
    if isinstance(st, PredictUsing):
        return [st.query]
    return []


def _model_words(st: Statement) -> str:
    return st.kind.removeprefix("bigquery_").replace("_", " ").upper()


def _strongest(found: list[Access]) -> Access:
    if not found:
        return Access(READ, "")  # nothing runs
    best = found[0]
    for one in found[1:]:
        if _RANK[one.access] > _RANK[best.access]:
            best = one
    return best
