"""IPython / Jupyter magics: `%load_ext sqlrec`, then `%sqlrec` and `%%sqlrec`.

    %sqlrec --connect shop.duckdb            # or a sqlrec Connection variable; default in-memory
    %sqlrec SELECT * FROM movie_rec WHERE userId = :user     # :user binds the variable `user`
    %sqlrec --plot embeddings movie_rec --label "SELECT movieId, title FROM movies"
    %%sqlrec recs <<                          # store the DataFrame in `recs`
    SELECT * FROM movie_rec WHERE userId = 1;

- Each statement's result comes back as a pandas DataFrame (the last statement's, for a cell
  with several), which Jupyter displays.
- `:name` binds the notebook variable `name` as a query parameter: the value is sent to the
  database separately from the SQL text, so quotes in it can never change the statement.
- pandas DataFrames (and Arrow tables) in the notebook can be used as tables by their variable
  name, also as training data for CREATE MODEL; a table of the same name in the database wins.
- An error shows as one line (`Error: ...`), not a traceback, and fails the cell, so "Run all"
  and notebook CI stop at it; `%sqlrec --traceback` shows the full traceback of the last error.
  With `%config SqlrecMagics.raise_errors = False` the line goes to stderr and the magic
  returns None instead (the cell succeeds).
"""

from __future__ import annotations

import re
import sys
import traceback
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool

from sqlrec.api.vocabulary import SYSTEM, database_rows
from sqlrec.frontend.formatting import error_message

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ASSIGN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*<<\s*(.*)\Z", re.S)
_OPTION = re.compile(r"""\s*--(connect|close|traceback)\b(?:[ =]+("[^"]*"|'[^']*'|[^\s"']+))?""")
# tokens that, written right before a ':', make it part of an expression (x[1:n], {'a':b})
_TABLE_OPTIONS = {"item_features", "user_features"}
_OPERAND_TYPES = {"NUMBER", "VAR", "IDENTIFIER", "STRING", "R_PAREN", "R_BRACKET", "R_BRACE"}


class SqlrecMagicError(Exception):
    """Raised for a failed statement; IPython shows just its message, never a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


def _tokens(sql: str) -> list:
    from sqlglot.dialects.duckdb import DuckDB

    return DuckDB().tokenize(sql)


def bind_parameters(sql: str) -> tuple[str, list[str], set[int]]:
    """Rewrite each `:name` outside strings and comments into `?`.

    Returns the new SQL text, the names in order, and the start offsets of the name tokens
    (so that they are not also taken for table names).
    """
    tokens = _tokens(sql)
    pieces: list[str] = []
    names: list[str] = []
    name_starts: set[int] = set()
    pos = 0
    for i, tok in enumerate(tokens[:-1]):
        if tok.token_type.name != "COLON":
            continue
        nxt = tokens[i + 1]
        if nxt.start != tok.end + 1 or not _NAME.match(sql[nxt.start:nxt.end + 1]):
            continue
        if nxt.token_type.name in ("STRING", "IDENTIFIER") or sql[nxt.start:nxt.end + 1] != nxt.text:
            continue
        if i > 0:
            prev = tokens[i - 1]
            if prev.token_type.name == "L_BRACKET":
                continue  # a slice: x[:n]
            if prev.end == tok.start - 1 and prev.token_type.name in _OPERAND_TYPES:
                continue  # x[1:n], {'a':b}
        pieces.append(sql[pos:tok.start])
        pieces.append("?")
        names.append(nxt.text)
        name_starts.add(nxt.start)
        pos = nxt.end + 1
    pieces.append(sql[pos:])
    return "".join(pieces), names, name_starts


def _python_value(value: Any) -> Any:
    """Numpy and pandas scalars/arrays as plain Python values DuckDB can bind."""
    module = type(value).__module__
    if module.startswith("numpy"):
        return value.tolist() if hasattr(value, "tolist") else value
    if module.startswith("pandas"):
        if hasattr(value, "to_pydatetime") and not hasattr(value, "tolist"):
            return value.to_pydatetime()
        if hasattr(value, "tolist"):
            return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return value


def _is_frame(value: Any) -> bool:
    module = type(value).__module__
    name = type(value).__name__
    return (module.startswith("pandas") and name == "DataFrame") or (
        module.startswith("pyarrow") and name in ("Table", "RecordBatchReader"))


@magics_class
class SqlrecMagics(Magics):
    """`%sqlrec` / `%%sqlrec`: run sqlrec SQL on a database, results as pandas DataFrames."""

    raise_errors = Bool(True, help="Raise errors (shown as one line, failing the cell, so 'Run all' stops "
                                   "there); False prints the line to stderr and returns None.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any):
        super().__init__(shell=shell, **kwargs)
        self.connection: Any = None
        self._owned = False
        self.last_error: BaseException | None = None
        self._where: str | None = None  # the failing statement's line, in a cell of several

    # -- connection ---------------------------------------------------------------------------

    def connect(self, target: str) -> Any:
        from sqlrec.api import Connection, connect

        ns = self.shell.user_ns if self.shell is not None else {}
        if _NAME.match(target) and isinstance(ns.get(target), Connection):
            con, owned = ns[target], False
        else:
            con, owned = connect(target), True
        self.close()
        self.connection, self._owned = con, owned
        return con

    def close(self) -> None:
        if self.connection is not None and self._owned:
            try:
                self.connection.close()
            except Exception:
                pass
        self.connection, self._owned = None, False

    def _con(self) -> Any:
        if self.connection is None or self.connection.closed:
            from sqlrec.api import connect

            self.connection, self._owned = connect(":memory:"), True
        return self.connection

    # -- the magic ----------------------------------------------------------------------------

    @no_var_expand
    @line_cell_magic
    def sqlrec(self, line: str, cell: str | None = None) -> Any:
        """Run sqlrec SQL (DuckDB SQL plus model statements); returns a pandas DataFrame.

        Usage::

            %sqlrec [--connect DATABASE|CONNECTION_VARIABLE] [--close] [--traceback] [VAR <<] [SQL]
            %sqlrec --plot history|embeddings|popularity MODEL [--label SQL]
            %%sqlrec [--connect ...] [VAR <<]
            SQL; SQL; ...

        --connect  use this database file (':memory:' for a new in-memory one) or this
                   sqlrec Connection variable from here on; the default is in-memory
        --close    close the current connection
        --traceback  show the full traceback of the last error
        --plot KIND MODEL [--label SQL]  a picture of MODEL (history, embeddings or
                   popularity; needs matplotlib); --label "SELECT id, title FROM ..." names
                   the items of the embeddings map
        VAR <<     store the (last) result in variable VAR instead of returning it
        :name      binds the variable `name` as a parameter (never pasted into the SQL)

        DataFrames in the notebook can be queried (and trained on) by their variable name.
        """
        try:
            return self._run(line, cell)
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback wall
            self.last_error = exc
            message = error_message(exc, hint="run %sqlrec --traceback for details")
            if self._where:
                message = f"Error: {self._where}: {message[len('Error: '):]}"
                self._where = None
            if self.raise_errors:
                raise SqlrecMagicError(message) from exc
            print(message, file=sys.stderr)
            return None
        except KeyboardInterrupt as exc:
            self.last_error = exc
            if self.raise_errors:
                raise SqlrecMagicError("Error: cancelled") from exc
            print("Error: cancelled", file=sys.stderr)
            return None

    def _run(self, line: str, cell: str | None) -> Any:
        rest = line
        while True:
            m = _OPTION.match(rest)
            if not m:
                break
            option, value = m.group(1), m.group(2)
            rest = rest[m.end():]
            if value and value[0] in "\"'":
                value = value[1:-1]
            if option == "connect":
                if not value:
                    raise _usage("--connect needs a database file or a Connection variable")
                self.connect(value)
            elif option == "close":
                self.close()
            elif option == "traceback":
                if self.last_error is None:
                    print("no error yet")
                else:
                    print("".join(traceback.format_exception(self.last_error)).rstrip())
        if re.match(r"\s*--plot\b", rest):
            return self.plot(rest)
        target = None
        m = _ASSIGN.match(rest)
        if m:
            target, rest = m.group(1), m.group(2)
        sql = rest.strip()
        if cell is not None and cell.strip():
            sql = (sql + "\n" + cell) if sql else cell
        if not sql.strip():
            if target is not None:
                raise _usage(f"{target} <<: no SQL to run")
            return None
        frame = self.execute(sql)
        if target is not None:
            self.shell.user_ns[target] = frame
            return None
        return frame

    def plot(self, args: str) -> Any:
        """`--plot KIND MODEL [--label SQL]`: the matplotlib Figure (Jupyter displays it)."""
        import shlex

        from sqlrec.frontend import plots

        try:
            words = shlex.split(args)[1:]
        except ValueError as exc:
            raise _usage(f"--plot: {exc}") from exc
        label = None
        if "--label" in words:
            i = words.index("--label")
            if i + 1 >= len(words):
                raise _usage("--label needs a query: --label \"SELECT id, title FROM items\"")
            label = words[i + 1]
            del words[i:i + 2]
        if len(words) != 2:
            raise _usage(f"usage: %sqlrec --plot {'|'.join(plots.PLOTS)} MODEL [--label \"SQL\"]")
        return plots.plot(self._con(), words[1], words[0], label_sql=label)

    def execute(self, sql: str) -> Any:
        """Run a script statement by statement; the last statement's result as a DataFrame."""
        from sqlrec.errors import Cancelled
        from sqlrec.sql import split_script
        from sqlrec.frontend.execution import run_cancellable

        con = self._con()
        ns = self.shell.user_ns if self.shell is not None else {}
        frame = None
        statements = split_script(sql)
        for index, (text, line, _col) in enumerate(statements):
            self._where = f"line {line}" if len(statements) > 1 else None
            rewritten, names, name_starts = bind_parameters(text)
            params = []
            for name in names:
                if name not in ns:
                    raise _usage(f":{name}: no variable {name!r} in the notebook")
                params.append(_python_value(ns[name]))
            registered = self._register_frames(con, text, ns, name_starts)

            def work() -> Any:
                cur = con.execute(rewritten, params if names else None)
                return cur.df() if cur.description is not None else None

            try:
                # In a worker thread so that a kernel interrupt cancels through the router
                # (training stops at an epoch boundary, nothing is saved) instead of landing
                # at a random point of the statement.
                frame, interrupted = run_cancellable(work, con.interrupt)
            finally:
                for name in registered:
                    con.unregister(name)
            if interrupted and index < len(statements) - 1:
                raise Cancelled("cancelled; the later statements were not run")
        self._where = None
        return frame

    def _register_frames(self, con: Any, sql: str, ns: dict, skip: set[int]) -> list[str]:
        """Register the notebook DataFrames the statement names, unless a table has that name."""
        wanted: list[str] = []
        for name in _names(sql, skip):
            if name in ns and _is_frame(ns[name]) and name not in wanted:
                wanted.append(name)
        if not wanted:
            return []
        existing = {r[0].lower() for r in database_rows(
            con, f"SELECT table_name FROM {SYSTEM}.duckdb_tables() WHERE NOT temporary "
            f"UNION ALL SELECT view_name FROM {SYSTEM}.duckdb_views() WHERE NOT internal AND NOT temporary",
            where="%sqlrec: looking up the notebook's DataFrames")}
        registered = []
        for name in wanted:
            if name.lower() in existing:
                continue
            con.register(name, ns[name])
            registered.append(name)
        return registered


def _names(sql: str, skip: set[int] = frozenset(), depth: int = 0) -> list[str]:
    """The names a statement mentions, also inside quoted options that hold a table name or a
    query (item_features = 'feats', candidates = 'SELECT id FROM picks')."""
    out = []
    try:
        tokens = _tokens(sql)
    except Exception:  # not SQL (a quoted plain value): no names
        return out
    for i, tok in enumerate(tokens):
        if tok.start in skip:
            continue
        kind = tok.token_type.name
        if kind in ("VAR", "IDENTIFIER"):
            out.append(tok.text)
        elif kind == "STRING" and depth == 0:
            text = tok.text.strip()
            if _NAME.match(text):
                # a plain word is a table only as the value of an option that takes one
                if i >= 2 and tokens[i - 1].token_type.name == "EQ" and tokens[i - 2].text.lower() in _TABLE_OPTIONS:
                    out.append(text)
            elif re.match(r"(?i)(SELECT|FROM|WITH)\b", text):
                out.extend(_names(text, depth=1))
    return out


def _usage(message: str) -> Exception:
    from sqlrec.errors import ProgrammingError

    return ProgrammingError(message)


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext sqlrec`: register the magics."""
    ipython.register_magics(SqlrecMagics)


def unload_ipython_extension(ipython: Any) -> None:
    magics = ipython.magics_manager.registry.get("SqlrecMagics")
    if magics is not None:
        magics.close()
