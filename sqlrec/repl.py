"""The interactive shell: `sqlrec [DATABASE]` on a terminal.

Modelled on the DuckDB shell and pgcli/litecli, on prompt_toolkit:

- Enter runs the input once it ends with a complete statement (a `;` outside strings and
  comments); otherwise it starts a new line. A pasted script runs statement by statement.
- History persists in $SQLREC_HISTORY, else $XDG_STATE_HOME/sqlrec/history, else
  ~/.local/state/sqlrec/history; Ctrl-R searches it.
- Completion of SQL and sqlrec keywords, USING options and their values, tables, columns and
  models (refreshed after every statement); SQL highlighting with pygments.
- Statements run in a worker thread: Ctrl-C cancels the running statement (training stops at
  the end of the current epoch and saves nothing) and brings the prompt back.

The loop is built for tests: `Repl.handle(text)` runs what a user would submit, and
`Repl.session(input=..., output=...)` accepts prompt_toolkit's pipe input and DummyOutput.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.filters import completion_is_selected, is_searching
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.keys import Keys

import sqlrec
from . import errors
from .formatting import FORMATS, error_message, render

PROMPT = "sqlrec> "
CONTINUATION = "   ...> "

# --- statements: when is the input complete? -------------------------------------------------


def _tokenize(text: str) -> list:
    from sqlglot.dialects.duckdb import DuckDB

    return DuckDB().tokenize(text)


def _split(text: str) -> list[tuple[str, int, int]]:
    """(statement, line, column) for every statement of a script (sqlrec's own splitter)."""
    from .sql import split_script

    return split_script(text)


def is_dot_command(text: str) -> bool:
    return text.lstrip().startswith(".")


def is_complete(text: str) -> bool:
    """True when Enter should run `text`: it ends with a `;` outside strings and comments.

    Empty input, dot commands and `exit`/`quit` are complete as they stand.
    """
    stripped = text.strip()
    if not stripped or is_dot_command(stripped) or stripped.lower() in ("exit", "quit", "\\q"):
        return True
    try:
        tokens = _tokenize(text)
    except Exception:  # an unterminated string, quoted name or comment: keep reading
        return False
    if not tokens:  # only comments
        return not _open_block_comment(text)
    return tokens[-1].text == ";" and tokens[-1].token_type.name == "SEMICOLON"


def _open_block_comment(text: str) -> bool:
    return text.rfind("/*") > text.rfind("*/")


# --- running statements --------------------------------------------------------------------


@dataclass
class Result:
    columns: list[str] | None
    rows: list[tuple] = field(default_factory=list)
    total: int = 0
    seconds: float = 0.0


def fetch(cur: Any, max_rows: int | None) -> Result:
    """The rows of a cursor's result: at most `max_rows` kept, all of them counted."""
    if cur.description is None:
        return Result(None)
    columns = [d[0] for d in cur.description]
    if max_rows:
        rows = cur.fetchmany(max_rows)
        total = len(rows)
        if len(rows) == max_rows:
            total += cur.arrow().num_rows
    else:
        rows = cur.fetchall()
        total = len(rows)
    return Result(columns, rows, total)


_COUNT_STATEMENTS = {"INSERT", "UPDATE", "DELETE", "CREATE", "COPY", "MERGE", "DROP", "ALTER", "UPSERT"}


def is_row_count(sql: str, columns: list[str] | None) -> bool:
    """DuckDB answers DML and CREATE TABLE AS with a lone "Count" column: not worth a table."""
    if columns != ["Count"]:
        return False
    first = re.match(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*([A-Za-z]+)", sql, re.S)
    return bool(first) and first.group(1).upper() in _COUNT_STATEMENTS


def run_cancellable(work: Callable[[], Any], interrupt: Callable[[], None]) -> tuple[Any, bool]:
    """Run `work()` in a worker thread; Ctrl-C (KeyboardInterrupt here) calls `interrupt()`.

    Returns (value, interrupted); re-raises what `work` raised. The statement is always let to
    finish (or fail with sqlrec.errors.Cancelled), so nothing is left half-done.
    """
    box: dict[str, Any] = {}
    # An Event, not Thread.join: a KeyboardInterrupt landing inside join() can leave the
    # thread looking finished (is_alive() False) while it still runs, and its result is lost.
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=target, name="sqlrec-statement", daemon=True)
    worker.start()
    interrupted = False
    while True:
        try:
            while not done.wait(0.05):
                pass
            break
        except KeyboardInterrupt:
            interrupted = True
            interrupt()
    if "error" in box:
        raise box["error"]
    return box.get("value"), interrupted


# --- completion ------------------------------------------------------------------------------

SQL_KEYWORDS = (
    "SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "HAVING", "LIMIT", "OFFSET", "QUALIFY",
    "JOIN", "LEFT JOIN", "RIGHT JOIN", "INNER JOIN", "FULL JOIN", "CROSS JOIN", "ON", "AS",
    "AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "BETWEEN", "EXISTS", "DISTINCT",
    "CASE", "WHEN", "THEN", "ELSE", "END", "UNION", "UNION ALL", "EXCEPT", "INTERSECT", "WITH",
    "INSERT INTO", "VALUES", "UPDATE", "SET", "DELETE FROM", "CREATE", "TABLE", "VIEW",
    "CREATE TABLE", "CREATE VIEW", "CREATE OR REPLACE", "DROP", "DROP TABLE", "ALTER TABLE",
    "IF EXISTS", "IF NOT EXISTS", "TEMP", "TEMPORARY", "PRIMARY KEY", "DEFAULT", "COPY", "TO",
    "ATTACH", "DETACH", "USE", "DESCRIBE", "SUMMARIZE", "SHOW", "SHOW TABLES", "EXPLAIN",
    "PRAGMA", "INSTALL", "LOAD", "BEGIN TRANSACTION", "COMMIT", "ROLLBACK", "ASC", "DESC",
    "TRUE", "FALSE", "CAST", "OVER", "PARTITION BY", "FILTER", "REPLACE", "EXCLUDE",
    "INTEGER", "BIGINT", "DOUBLE", "VARCHAR", "BOOLEAN", "DATE", "TIMESTAMP",
)

SQLREC_KEYWORDS = (
    "MODEL", "MODELS", "PREDICT", "USING", "OPTIONS", "CREATE MODEL", "CREATE OR REPLACE MODEL",
    "BUILD MODEL", "DROP MODEL", "SHOW MODELS", "DESCRIBE MODEL", "RETRAIN", "FINETUNE",
    "EVALUATE", "EVALUATE MODEL",
)

COLUMN_OPTIONS = ("user_id", "item_id", "rating", "weight", "timestamp", "user_col", "item_col", "rating_col")
_TABLE_WORDS = {"FROM", "JOIN", "INTO", "TABLE", "UPDATE", "SUMMARIZE", "DESCRIBE", "VIEW"}
_MODEL_WORDS = {"MODEL", "RETRAIN", "FINETUNE"}
_NOT_ALIASES = {
    "WHERE", "JOIN", "LEFT", "RIGHT", "INNER", "OUTER", "FULL", "CROSS", "ON", "USING", "GROUP",
    "ORDER", "LIMIT", "PREDICT", "OPTIONS", "AS", "NATURAL", "UNION", "EXCEPT", "INTERSECT",
    "HAVING", "QUALIFY", "WINDOW", "OFFSET", "SET", "VALUES", "SELECT", "POSITIONAL", "ASOF",
}


def _create_options() -> dict[str, Any]:
    from .handlers import create_option_specs

    out: dict[str, Any] = {}
    for spec in create_option_specs():
        for name in (spec.name, *spec.aliases):
            out.setdefault(name, spec)
    return out


def _query_options() -> dict[str, Any]:
    from .options import QUERY_OPTIONS

    return {name: spec for spec in QUERY_OPTIONS for name in (spec.name, *spec.aliases)}


class Metadata:
    """What completion knows about the database: tables, their columns, models, functions."""

    def __init__(self) -> None:
        self.tables: dict[str, tuple[str, list[str]]] = {}  # lower name -> (name, columns)
        self.models: dict[str, tuple[str, list[str]]] = {}  # lower name -> (name, result columns)
        self.functions: list[str] = []
        self.table_functions: list[str] = []  # the ones that may stand after FROM / JOIN

    def refresh(self, con: Any) -> None:
        duck = con.duckdb
        tables: dict[str, tuple[str, list[str]]] = {}
        try:
            rows = duck.execute(
                "SELECT database_name, schema_name, table_name, column_name FROM duckdb_columns() "
                "WHERE NOT internal AND schema_name NOT IN ('sqlrec', 'information_schema', 'pg_catalog') "
                "AND table_name NOT LIKE '\\_\\_sqlrec%' ESCAPE '\\' "
                "ORDER BY database_name, schema_name, table_name, column_index").fetchall()
            current = duck.execute("SELECT current_database(), current_schema()").fetchone()
        except Exception:  # e.g. an aborted transaction: keep what we had
            return
        for db, schema, table, column in rows:
            if (db, schema) == tuple(current) or schema == "temp" or (db == "temp"):
                name = table
            elif db == current[0]:
                name = f"{schema}.{table}"
            else:
                name = f"{db}.{table}" if schema == "main" else f"{db}.{schema}.{table}"
            tables.setdefault(name.lower(), (name, []))[1].append(column)
        self.tables = tables
        models: dict[str, tuple[str, list[str]]] = {}
        try:
            for summary in con.models():
                cols = summary.columns("user_item")[:2]
                # user_item / item_user columns, then the similarity queries' extra ones
                similar = [f"similar_{c}" for c in reversed(cols)]
                models[summary.name.lower()] = (summary.name, cols + ["score", "rank"] + similar)
        except Exception:
            pass
        self.models = models
        if not self.functions:
            try:
                rows = duck.execute(
                    "SELECT DISTINCT function_name, function_type = 'table' FROM duckdb_functions() "
                    "WHERE function_type IN ('scalar', 'aggregate', 'table') "
                    "AND function_name NOT LIKE '%\\_\\_%' ESCAPE '\\' AND function_name ~ '^[a-z_][a-z0-9_]*$'"
                ).fetchall()
                self.functions = sorted({name for name, _ in rows})
                self.table_functions = sorted({name for name, table in rows if table})
            except Exception:
                pass

    def columns_of(self, name: str) -> list[str]:
        key = name.strip('"').lower()
        if key in self.tables:
            return self.tables[key][1]
        if key in self.models:
            return self.models[key][1]
        return []


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


class SqlCompleter(Completer):
    """Context-aware completion for sqlrec SQL and the dot commands."""

    def __init__(self, metadata: Metadata):
        self.meta = metadata
        self.create_options = _create_options()
        self.query_options = _query_options()

    # The part of the buffer the completion works on: the current statement before the cursor.
    @staticmethod
    def _statement(text: str) -> str:
        last = 0
        try:
            for token in _tokenize(text):
                if token.token_type.name == "SEMICOLON":
                    last = token.end + 1
        except Exception:
            # inside an unterminated string: cut at the last ';' before the opening quote
            pass
        return text[last:]

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        if is_dot_command(text) and "\n" not in text.strip():
            yield from self._dot(text.lstrip())
            return
        statement = self._statement(text)
        # Aliases and tables may be named after the cursor (SELECT r.| FROM ratings r): they are
        # looked up in the whole statement, the part after the cursor included.
        scope = statement + document.text_after_cursor.split(";", 1)[0]
        # inside a quoted string: option values (USING recommender_type = 'user_...)
        quoted = re.search(r"(\w+)\s*=\s*'([^']*)$", statement)
        if quoted and statement.count("'") % 2 == 1:
            yield from self._option_values(scope, quoted.group(1).lower(), quoted.group(2), quoted=False)
            return
        if statement.count("'") % 2 == 1:
            return
        match = re.search(r'[\w"]+(?:\.[\w"]*)*$|(?<=\.)$', statement)
        word = match.group(0) if match else ""
        before = statement[: len(statement) - len(word)]
        if "." in word:
            prefix, _, partial = word.rpartition(".")
            yield from self._dotted(scope, prefix, partial)
            return
        yield from self._words(scope, before, word)

    # -- contexts -----------------------------------------------------------------------------

    def _dot(self, text: str) -> Iterable[Completion]:
        parts = text.split()
        if len(parts) <= 1 and not text.endswith(" "):
            for name, help_text in DOT_COMMANDS:
                if name.startswith(text):
                    yield Completion(name, -len(text), display_meta=help_text)
            return
        command, arg = parts[0], (parts[1] if len(parts) > 1 and not text.endswith(" ") else "")
        values = {".mode": FORMATS, ".timer": ("on", "off"), ".maxrows": ("0", "40", "100", "1000")}.get(command)
        if values:
            for v in values:
                if v.startswith(arg):
                    yield Completion(v, -len(arg))
        elif command in (".read", ".open"):
            yield from self._paths(arg)

    @staticmethod
    def _paths(arg: str) -> Iterable[Completion]:
        from prompt_toolkit.completion import PathCompleter

        yield from PathCompleter(expanduser=True).get_completions(Document(arg), CompleteEvent())

    def _dotted(self, statement: str, prefix: str, partial: str) -> Iterable[Completion]:
        key = prefix.strip('"').lower()
        aliases = self._aliases(statement)
        if key in self.meta.models and key not in aliases:
            from .attributes import ATTRIBUTE_HELP as ATTRIBUTES

            for attr in ATTRIBUTES:
                if attr.startswith(partial.lower()):
                    yield Completion(attr, -len(partial), display_meta="model attribute")
            return
        target = aliases.get(key, key)
        for column in self.meta.columns_of(target):
            if column.lower().startswith(partial.strip('"').lower()):
                yield Completion(_quote(column), -len(partial), display_meta=f"column of {target}")

    def _aliases(self, statement: str) -> dict[str, str]:
        """alias (lower) -> table or model name, from FROM/JOIN clauses."""
        out: dict[str, str] = {}
        for m in re.finditer(r'\b(?:FROM|JOIN)\s+([\w."]+)(?:\s+(?:AS\s+)?([A-Za-z_]\w*))?', statement, re.I):
            table, alias = m.group(1).strip('"'), m.group(2)
            out.setdefault(table.lower(), table)
            if alias and alias.upper() not in _NOT_ALIASES:
                out[alias.lower()] = table
        return out

    def _referenced_columns(self, statement: str) -> list[str]:
        seen: list[str] = []
        for table in dict.fromkeys(self._aliases(statement).values()):
            for column in self.meta.columns_of(table):
                if column not in seen:
                    seen.append(column)
        return seen

    def _option_values(self, statement: str, option: str, partial: str, quoted: bool) -> Iterable[Completion]:
        in_query = self._kind(statement) == "SELECT"
        specs = self.query_options if in_query else self.create_options
        spec = specs.get(option)
        values: list[str] = []
        meta = ""
        if spec is not None and spec.choices:
            values, meta = list(spec.choices), f"{spec.name} value"
        elif option == "engine" and not in_query:
            from .handlers import HANDLERS

            values, meta = list(HANDLERS), "engine"
        elif option in COLUMN_OPTIONS and not in_query:
            values, meta = self._referenced_columns(statement), "column"
        elif spec is not None and spec.kind is bool:
            values, meta = ["true", "false"], f"{spec.name} value"
            quoted = False
            for v in values:
                if v.startswith(partial.lower()):
                    yield Completion(v, -len(partial), display_meta=meta)
            return
        for v in values:
            if v.lower().startswith(partial.lower()):
                text = f"'{v}'" if quoted else v
                yield Completion(text, -len(partial), display_meta=meta)

    @staticmethod
    def _kind(statement: str) -> str:
        words = re.findall(r"[A-Za-z_]+", statement)
        first = words[0].upper() if words else ""
        if first in ("CREATE", "BUILD", "RETRAIN", "FINETUNE", "EVALUATE"):
            upper = [w.upper() for w in words[:6]]
            return "CREATE" if "MODEL" in upper or first in ("BUILD", "RETRAIN", "FINETUNE", "EVALUATE") else first
        return "SELECT" if first in ("SELECT", "WITH", "FROM") else first

    @staticmethod
    def _options_tail(before: str) -> tuple[str, str] | None:
        """(keyword, text after it) when the cursor is inside a USING / OPTIONS option list."""
        m = None
        for m in re.finditer(r"\b(USING|OPTIONS)\b", before, re.I):
            pass
        if m is None:
            return None
        keyword, tail = m.group(1).upper(), before[m.end():]
        if keyword == "USING" and re.match(r"\s*\(", tail):
            return None  # JOIN ... USING (col)
        if re.search(r"\b(WHERE|ORDER|GROUP|LIMIT|FROM|JOIN|SELECT|AS|OPTIONS)\b", tail, re.I):
            return None
        return keyword, tail

    def _words(self, statement: str, before: str, word: str) -> Iterable[Completion]:
        seen: set[str] = set()
        lower = word.strip('"').lower()

        def offer(candidates: Iterable[str], meta: str, keyword: bool = False) -> Iterable[Completion]:
            for c in candidates:
                if not c.lower().startswith(lower) or c.lower() in seen:
                    continue
                if c.lower() == lower and not keyword:
                    continue
                seen.add(c.lower())
                text = c
                if keyword:
                    text = c.lower() if word and word == word.lower() else c
                else:
                    text = _quote(c)
                yield Completion(text, -len(word), display=c, display_meta=meta)

        tokens = re.findall(r'[\w"]+|[=(),]', before)
        prev = tokens[-1].upper() if tokens else ""
        prev2 = tokens[-2].upper() if len(tokens) > 1 else ""
        kind = self._kind(statement)

        using = self._options_tail(before)
        if using is not None:
            keyword, tail = using
            if keyword == "USING" and re.match(r"\s*BUILD\b", statement, re.I):
                from .handlers import HANDLERS  # ThanoSQL form: BUILD MODEL m USING <engine>

                yield from offer(HANDLERS, "engine")
                return
            specs = self.query_options if kind == "SELECT" else self.create_options
            at_value = re.search(r"(\w+)\s*=\s*$", tail)
            if at_value:
                yield from self._option_values(statement, at_value.group(1).lower(), lower, quoted=True)
                return
            if re.search(r"(^|,|\()\s*$", tail):
                for name, spec in specs.items():
                    if name.startswith(lower) and name not in seen:
                        seen.add(name)
                        yield Completion(name, -len(word), display_meta=spec.help or "option")
                return
        if prev in _MODEL_WORDS or (prev == "EXISTS" and "MODEL" in before.upper()):
            yield from offer((n for n, _ in self.meta.models.values()), "model")
            return
        if prev == "PREDICT":
            yield from offer(self._referenced_columns(statement), "column")
            return
        if prev == "SHOW":
            yield from offer(("MODELS", "TABLES", "ALL TABLES", "DATABASES"), "keyword", keyword=True)
            return
        if prev in _TABLE_WORDS:
            yield from offer((n for n, _ in self.meta.tables.values()), "table")
            yield from offer((n for n, _ in self.meta.models.values()), "model")
            if prev in ("FROM", "JOIN"):
                yield from offer(self.meta.table_functions, "table function")
            return
        if prev == "RECOMMENDER_TYPE" or (prev == "=" and prev2 == "RECOMMENDER_TYPE"):
            yield from self._option_values(statement, "recommender_type", lower, quoted=True)
            return
        if not word and prev not in ("", "SELECT", ",", "(", "WHERE", "AND", "OR", "BY", "ON"):
            # after a complete term: keywords are the useful continuations
            yield from offer(SQL_KEYWORDS + SQLREC_KEYWORDS, "keyword", keyword=True)
            return
        yield from offer(self._referenced_columns(statement), "column")
        yield from offer(SQL_KEYWORDS + SQLREC_KEYWORDS, "keyword", keyword=True)
        yield from offer((n for n, _ in self.meta.tables.values()), "table")
        yield from offer((n for n, _ in self.meta.models.values()), "model")
        yield from offer([c for _, cols in self.meta.tables.values() for c in cols], "column")
        if word:
            yield from offer(self.meta.functions, "function")


# --- highlighting ------------------------------------------------------------------------------


def make_lexer() -> Any:
    """A prompt_toolkit lexer for SQL with sqlrec's words as keywords; None without pygments."""
    try:
        from prompt_toolkit.lexers import PygmentsLexer
        from pygments.lexer import inherit, words
        from pygments.lexers.sql import SqlLexer
        from pygments.token import Keyword
    except ImportError:
        return None

    class SqlRecLexer(SqlLexer):
        name = "sqlrec"
        aliases = ["sqlrec"]
        tokens = {
            "root": [
                (words(("MODEL", "MODELS", "PREDICT", "OPTIONS", "BUILD", "RETRAIN", "FINETUNE",
                        "EVALUATE", "SHOW", "DESCRIBE", "SUMMARIZE", "QUALIFY", "ATTACH", "PRAGMA"),
                       prefix=r"\b", suffix=r"\b"), Keyword),
                inherit,
            ],
        }

    return PygmentsLexer(SqlRecLexer)


# --- history -----------------------------------------------------------------------------------


def history_path() -> Path:
    env = os.environ.get("SQLREC_HISTORY")
    if env:
        return Path(env).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "sqlrec" / "history"


def make_history(path: Path | None = None) -> History:
    path = Path(path) if path is not None else history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        return FileHistory(str(path))
    except OSError:
        return InMemoryHistory()


# --- the shell ---------------------------------------------------------------------------------

DOT_COMMANDS: tuple[tuple[str, str], ...] = (
    (".help", "show this help"),
    (".mode", ".mode table|csv|json|markdown: how results are printed"),
    (".timer", ".timer on|off: print how long each statement took"),
    (".maxrows", ".maxrows N: rows shown in table mode (0: all)"),
    (".tables", "list tables and views"),
    (".models", "list models (SHOW MODELS)"),
    (".schema", ".schema [TABLE]: columns of a table, view or model"),
    (".read", ".read FILE: run the SQL script in FILE"),
    (".open", ".open [FILE]: close this database and open FILE (in-memory without FILE)"),
    (".traceback", "show the full traceback of the last error"),
    (".exit", "leave the shell (also .quit or Ctrl-D)"),
    (".quit", "leave the shell"),
)

HELP = """\
Statements end with ';' and may span lines; Enter runs them once they are complete.
Everything is DuckDB SQL, plus the model statements:
  CREATE [OR REPLACE] MODEL m FROM ratings PREDICT item USING user_id = 'user', epochs = 30;
  SELECT * FROM m WHERE user = 1 [USING recommender_type = 'user_item', n_recommendations = 10];
  SHOW MODELS;  DESCRIBE m;  DESCRIBE m.metrics;  DROP MODEL m;

Keys: Tab completes, Ctrl-R searches history, Alt-Enter inserts a newline,
      Ctrl-C cancels the running statement (or clears the line), Ctrl-D leaves.

Commands:
{commands}"""


class Repl:
    """The shell. `run()` is the interactive loop; `handle(text)` runs one submitted input."""

    def __init__(
        self,
        database: str = ":memory:",
        *,
        connection: Any = None,
        read_only: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
        fmt: str = "table",
        max_rows: int = 40,
        timer: bool = False,
        debug: bool = False,
        history: History | None = None,
    ):
        self.con = connection if connection is not None else sqlrec.connect(database, read_only=read_only)
        self.database = connection.database if connection is not None and hasattr(connection, "database") else database
        self.read_only = read_only
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.mode = fmt
        self.max_rows = max_rows
        self.timer = timer
        self.debug = debug
        self.history = history
        self.last_error: BaseException | None = None
        self.exit_requested = False
        self.metadata = Metadata()
        self.completer = SqlCompleter(self.metadata)
        self.running = False
        self.refresh()

    # -- output ---------------------------------------------------------------------------------

    def write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def error(self, exc: BaseException, where: str | None = None) -> None:
        self.last_error = exc
        line = error_message(exc)
        if where:
            line = f"Error: {where}: {line[len('Error: '):]}"
        self.err.write(line + "\n")
        if self.debug:
            self.err.write("".join(traceback.format_exception(exc)))
        self.err.flush()

    def refresh(self) -> None:
        self.metadata.refresh(self.con)

    # -- input ----------------------------------------------------------------------------------

    def handle(self, text: str) -> bool:
        """Run one submitted input (statements or a dot command). False once the shell should exit."""
        stripped = text.strip()
        if not stripped:
            return not self.exit_requested
        if stripped.lower() in ("exit", "quit", "\\q"):
            self.exit_requested = True
            return False
        if is_dot_command(stripped):
            self.dot_command(stripped)
        else:
            self.run_text(text)
            self.refresh()
        return not self.exit_requested

    def run_text(self, text: str, source: str | None = None) -> bool:
        """Run every statement of `text` in order, printing results; stop at the first error."""
        try:
            statements = _split(text)
        except errors.Error as exc:
            self.error(exc, source)
            return False
        for index, (sql, line, _col) in enumerate(statements):
            where = f"{source}, line {line}" if source else (f"line {line}" if len(statements) > 1 and line > 1 else None)
            try:
                result, interrupted = self.execute(sql)
            except BaseException as exc:  # noqa: BLE001 - every failure is reported, never raised
                if isinstance(exc, (SystemExit,)):
                    raise
                self.error(exc, where)
                rest = len(statements) - index - 1
                if rest:
                    self.err.write(f"({rest} later statement{'s' if rest > 1 else ''} not run)\n")
                    self.err.flush()
                return False
            self.show(result)
            if interrupted and index < len(statements) - 1:
                self.error(errors.Cancelled("cancelled; the later statements were not run"))
                return False
        return True

    def execute(self, sql: str) -> tuple[Result, bool]:
        max_rows = self.max_rows if self.mode in ("table", "markdown") else None

        def work() -> Result:
            started = time.perf_counter()
            cur = self.con.execute(sql)
            result = fetch(cur, max_rows)
            if is_row_count(sql, result.columns):
                result.columns = None
            result.seconds = time.perf_counter() - started
            return result

        self.running = True
        try:
            return run_cancellable(work, self.con.interrupt)
        finally:
            self.running = False

    def show(self, result: Result) -> None:
        if result.columns is not None:
            self.write(render(result.columns, result.rows, self.mode, self.max_rows or None, result.total))
        if self.timer:
            self.write(f"Run Time (s): real {result.seconds:.3f}")

    # -- dot commands -----------------------------------------------------------------------------

    def dot_command(self, line: str) -> None:
        try:
            parts = shlex.split(line)
        except ValueError as exc:
            self.error(errors.ProgrammingError(f"{line.split()[0]}: {exc}"))
            return
        command, args = parts[0].lower(), parts[1:]
        handler = getattr(self, "_dot_" + command[1:], None) if re.fullmatch(r"\.[a-z]+", command) else None
        if handler is None:
            names = [n for n, _ in DOT_COMMANDS]
            self.error(errors.ProgrammingError(
                f"unknown command {command}{errors.did_you_mean(command, names)}; enter .help for the list"))
            return
        handler(args)

    def _usage(self, text: str) -> None:
        self.error(errors.ProgrammingError(text))

    def _dot_help(self, args: list[str]) -> None:
        width = max(len(n) for n, _ in DOT_COMMANDS)
        commands = "\n".join(f"  {n.ljust(width)}  {h}" for n, h in DOT_COMMANDS)
        self.write(HELP.format(commands=commands))

    def _dot_exit(self, args: list[str]) -> None:
        self.exit_requested = True

    _dot_quit = _dot_exit

    def _dot_mode(self, args: list[str]) -> None:
        if not args:
            self.write(f"mode: {self.mode}")
            return
        fmt = args[0].lower()
        if fmt not in FORMATS:
            self._usage(f".mode: unknown mode {args[0]!r}{errors.did_you_mean(fmt, FORMATS)}; modes: {', '.join(FORMATS)}")
            return
        self.mode = fmt

    def _dot_timer(self, args: list[str]) -> None:
        if not args or args[0].lower() not in ("on", "off"):
            self._usage(".timer: expected on or off")
            return
        self.timer = args[0].lower() == "on"

    def _dot_maxrows(self, args: list[str]) -> None:
        if not args:
            self.write(f"maxrows: {self.max_rows}")
            return
        if not args[0].isdigit():
            self._usage(".maxrows: expected a number of rows (0: all)")
            return
        self.max_rows = int(args[0])

    def _dot_tables(self, args: list[str]) -> None:
        self.refresh()
        names = sorted(n for n, _ in self.metadata.tables.values())
        self.write(render(["name"], [(n,) for n in names], self.mode, None))

    def _dot_models(self, args: list[str]) -> None:
        self.run_text("SHOW MODELS")

    def _dot_schema(self, args: list[str]) -> None:
        self.refresh()
        if args:
            key = args[0].lower()
            if key not in self.metadata.tables and key not in self.metadata.models:
                known = [n for n, _ in self.metadata.tables.values()] + [n for n, _ in self.metadata.models.values()]
                self._usage(f".schema: no table, view or model named {args[0]!r}{errors.did_you_mean(key, known)}")
                return
            if key in self.metadata.models:
                self.run_text(f"DESCRIBE {_quote(self.metadata.models[key][0])}.info")
            else:
                self.run_text(f"DESCRIBE {self.metadata.tables[key][0]}")
            return
        rows = [(n, ", ".join(cols)) for n, cols in sorted(self.metadata.tables.values())]
        rows += [(n, ", ".join(cols) + "  (model)") for n, cols in sorted(self.metadata.models.values())]
        self.write(render(["name", "columns"], rows, self.mode, None))

    def _dot_read(self, args: list[str]) -> None:
        if len(args) != 1:
            self._usage(".read: expected one file name")
            return
        path = Path(args[0]).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            self._usage(f".read: cannot read {args[0]!r}: {exc.strerror or exc}")
            return
        self.run_text(text, source=str(args[0]))
        self.refresh()

    def _dot_open(self, args: list[str]) -> None:
        if len(args) > 1:
            self._usage(".open: expected at most one file name")
            return
        database = args[0] if args else ":memory:"
        try:
            con = sqlrec.connect(database, read_only=self.read_only)
        except errors.Error as exc:
            self.error(exc)
            return
        try:
            self.con.close()
        except Exception:
            pass
        self.con, self.database = con, database
        self.metadata.functions = []
        self.refresh()

    def _dot_traceback(self, args: list[str]) -> None:
        if self.last_error is None:
            self.write("no error yet")
            return
        self.write("".join(traceback.format_exception(self.last_error)).rstrip())

    # -- the interactive loop ---------------------------------------------------------------------

    def key_bindings(self) -> KeyBindings:
        kb = KeyBindings()

        # Not while searching (Ctrl-R): there Enter must accept the match, as prompt_toolkit's own binding does.
        @kb.add("enter", filter=~completion_is_selected & ~is_searching)
        def _enter(event: Any) -> None:
            buf = event.current_buffer
            if is_complete(buf.text):
                buf.validate_and_handle()
            else:
                buf.newline(copy_margin=False)

        @kb.add("escape", "enter")
        def _newline(event: Any) -> None:
            event.current_buffer.newline(copy_margin=False)

        @kb.add(Keys.BracketedPaste, filter=~is_searching)
        def _paste(event: Any) -> None:
            # A pasted script that ends with a newline after a complete statement runs at once.
            data = event.data.replace("\r\n", "\n").replace("\r", "\n")
            buf = event.current_buffer
            buf.insert_text(data)
            if data.endswith("\n") and buf.document.is_cursor_at_the_end and is_complete(buf.text):
                buf.validate_and_handle()

        return kb

    def session(self, input: Any = None, output: Any = None, **kwargs: Any) -> PromptSession:
        """The prompt_toolkit session (pipe input and DummyOutput may be passed for tests)."""
        if self.history is None:
            self.history = make_history()
        options: dict[str, Any] = dict(
            message=PROMPT,
            multiline=True,
            prompt_continuation=lambda width, line_number, soft_wrap: CONTINUATION[-width:].rjust(width),
            key_bindings=self.key_bindings(),
            history=self.history,
            completer=self.completer,
            complete_while_typing=True,
            auto_suggest=AutoSuggestFromHistory(),
            lexer=make_lexer(),
            enable_history_search=False,
            search_ignore_case=True,
            enable_open_in_editor=True,
            input=input,
            output=output,
        )
        options.update(kwargs)
        return PromptSession(**options)

    def banner(self) -> str:
        where = "a transient in-memory database" if self.database == ":memory:" else self.database
        return (f"sqlrec {sqlrec.__version__} (DuckDB SQL + recommendation models) on {where}\n"
                'Enter ".help" for usage hints; statements end with ";".')

    def run(self, session: PromptSession | None = None, banner: bool = True) -> int:
        """Read, run and print until .exit or Ctrl-D; returns the exit status."""
        session = session or self.session()
        if banner:
            self.write(self.banner())
        while not self.exit_requested:
            try:
                text = session.prompt()
            except KeyboardInterrupt:  # Ctrl-C at the prompt: the line is cleared
                continue
            except EOFError:  # Ctrl-D
                break
            try:
                if not self.handle(text):
                    break
            except KeyboardInterrupt:
                # Ctrl-C outside a running statement (printing, refreshing): back to the prompt
                self.err.write("Error: cancelled\n")
        return 0

    def close(self) -> None:
        try:
            self.con.close()
        except Exception:
            pass


def main(database: str = ":memory:", **kwargs: Any) -> int:
    repl = Repl(database, **kwargs)
    try:
        return repl.run()
    finally:
        repl.close()
