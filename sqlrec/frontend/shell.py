"""The interactive shell: `sqlrec [DATABASE]` on a terminal.

Modelled on the DuckDB shell and pgcli/litecli, on prompt_toolkit:

- Enter runs the input once it ends with a complete statement (a `;` outside strings and
  comments); otherwise it starts a new line. A pasted script runs statement by statement.
- History persists (see `history`); Ctrl-R searches it.
- Completion of SQL and sqlrec keywords, USING options and their values, tables, columns and
  models (refreshed after every statement); SQL highlighting with pygments.
- Statements run in a worker thread: Ctrl-C cancels the running statement (training stops at
  the end of the current epoch and saves nothing) and brings the prompt back.
- Results fit the terminal, as in DuckDB's shell: a table wider than the terminal (or than
  `.maxwidth N`) leaves out middle columns and says so; `.output FILE` / `.once FILE` send
  results to a file (every column), as the SQLite and DuckDB shells do.

The loop is built for tests: `Repl.handle(text)` runs what a user would submit, and
`Repl.session(input=..., output=...)` accepts prompt_toolkit's pipe input and DummyOutput.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.filters import completion_is_selected, is_searching
from prompt_toolkit.history import History
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.keys import Keys

import sqlrec
from sqlrec import errors
from sqlrec.frontend import dotcommands
from sqlrec.frontend.completion import SqlCompleter
from sqlrec.frontend.execution import Result, fetch, run_cancellable
from sqlrec.frontend.formatting import FOR_PEOPLE, error_message, render
from sqlrec.frontend.history import make_history
from sqlrec.frontend.lexer import make_lexer
from sqlrec.frontend.metadata import Metadata
from sqlrec.frontend.scripts import EXIT_WORDS, is_complete, is_dot_command, is_row_count, split

PROMPT = "sqlrec> "
CONTINUATION = "   ...> "


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
        self.database = getattr(connection, "database", database) if connection is not None else database
        self.read_only = read_only
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.mode = fmt
        self.max_rows = max_rows
        self.max_width = 0  # .maxwidth: 0 follows the terminal's width
        self.redirect: TextIO | None = None  # .output / .once: the file results go to
        self.redirect_once = False  # .once: the file is closed after the next statements' results
        self.timer = timer
        self.debug = debug
        self.history = history
        self.last_error: BaseException | None = None
        self.exit_requested = False
        self.metadata = Metadata()
        self.completer = SqlCompleter(self.metadata)
        self.running = False  # a statement is in its worker thread (tests wait for this)
        self.refresh()

    # -- output ---------------------------------------------------------------------------------

    def write(self, text: str) -> None:
        target = self.redirect if self.redirect is not None else self.out
        target.write(text + "\n")
        target.flush()

    def width(self) -> int | None:
        """The columns a table may take: .maxwidth, else the terminal's width; None (no limit)
        when results go to a file (.output / .once) or to something that is not a terminal."""
        if self.redirect is not None:
            return None
        if self.max_width:
            return self.max_width
        try:
            if self.out.isatty():
                return os.get_terminal_size(self.out.fileno()).columns
        except (OSError, ValueError, AttributeError):
            pass  # a closed or pseudo stream (tests' StringIO): no terminal, no limit
        return None

    def send_to(self, path: str | None, once: bool = False) -> None:
        """Results to the file at `path` from now on (once: for the next statements only); None:
        back to the terminal. A file that cannot be opened is reported and changes nothing."""
        target = None
        if path is not None:
            try:
                target = open(os.path.expanduser(path), "w", encoding="utf-8")
            except OSError as exc:
                self.error(errors.ProgrammingError(
                    f"{'.once' if once else '.output'}: cannot write {path!r}: {exc.strerror or exc}"))
                return
        self.end_redirect()
        self.redirect, self.redirect_once = target, once

    def end_redirect(self) -> None:
        if self.redirect is not None:
            self.redirect.close()
        self.redirect, self.redirect_once = None, False

    def error(self, exc: BaseException, where: str | None = None) -> None:
        """Report `exc` as one line on stderr (with the traceback under --debug)."""
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
        if stripped.lower() in EXIT_WORDS:
            self.exit_requested = True
            return False
        if is_dot_command(stripped):
            target = self.redirect
            dotcommands.dispatch(self, stripped)
            if self.redirect_once and self.redirect is target:
                self.end_redirect()  # .once covers the next command, a dot command too (as in SQLite's shell)
        else:
            try:
                self.run_text(text)
            finally:
                if self.redirect_once:  # .once covers the one input that follows it
                    self.end_redirect()
            self.refresh()
        return not self.exit_requested

    def run_text(self, text: str, source: str | None = None) -> bool:
        """Run every statement of `text` in order, printing results; stop at the first error."""
        try:
            statements = split(text)
        except errors.Error as exc:
            self.error(exc, source)
            return False
        for index, (sql, line, _col) in enumerate(statements):
            try:
                result, interrupted = self.execute(sql)
            except SystemExit:
                raise
            except BaseException as exc:  # noqa: BLE001 - every failure is reported, never raised
                self.error(exc, _where(source, line, len(statements)))
                self._not_run(len(statements) - index - 1)
                return False
            self.show(result)
            if interrupted and index < len(statements) - 1:
                self.error(errors.Cancelled("cancelled; the later statements were not run"))
                return False
        return True

    def _not_run(self, rest: int) -> None:
        if rest:
            self.err.write(f"({rest} later statement{'s' if rest > 1 else ''} not run)\n")
            self.err.flush()

    def execute(self, sql: str) -> tuple[Result, bool]:
        """Run one statement, cancellable by Ctrl-C; (result, whether it was interrupted)."""
        # csv and json are for machines: never cut short
        max_rows = self.max_rows if self.mode in FOR_PEOPLE else None

        def work() -> Result:
            started = time.perf_counter()
            result = fetch(self.con.execute(sql), max_rows)
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
            self.write(render(result.columns, result.rows, self.mode, self.max_rows or None, result.total,
                              max_width=self.width()))
        if self.timer:
            self.write(f"Run Time (s): real {result.seconds:.3f}")

    def open(self, database: str) -> None:
        """Switch to another database (.open); the current one stays open if that one fails."""
        try:
            # the new database is opened as the current one was (read-only, safe, trusted)
            con = sqlrec.connect(database, read_only=self.read_only, safe=self.con.safe,
                                 trust_stored_sql=self.con.trust_stored_sql)
        except errors.Error as exc:
            self.error(exc)
            return
        self.close()
        self.con, self.database = con, database
        self.metadata.forget_functions()
        self.refresh()

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
        self.end_redirect()
        try:
            self.con.close()
        except Exception:
            pass  # closing twice, or a connection already broken: nothing left to release


def _where(source: str | None, line: int, count: int) -> str | None:
    """Where a failing statement sits: the file and line, or the line in a multi-statement input."""
    if source:
        return f"{source}, line {line}"
    return f"line {line}" if count > 1 and line > 1 else None


def main(database: str = ":memory:", **kwargs: Any) -> int:
    repl = Repl(database, **kwargs)
    try:
        return repl.run()
    finally:
        repl.close()
