"""The shell's dot commands (.mode, .tables, .read, ...) as one table.

`COMMANDS` maps each name to its handler, its help line and what its argument completes to;
the dispatcher, `.help` and the completion all read it, so a command added here is runnable,
listed and completed at once.
"""

from __future__ import annotations

import shlex
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlrec import errors
from sqlrec.frontend.formatting import MODES, render
from sqlrec.frontend.metadata import Metadata
from sqlrec.sql.quoting import quote_name


class Repl(Protocol):
    """What a dot command may read and change on the shell (sqlrec.frontend.shell.Repl is one):
    the shell imports this table, so the table names the shell by what it does."""

    mode: str
    timer: bool
    max_rows: int
    max_width: int
    last_error: BaseException | None
    exit_requested: bool
    metadata: Metadata

    def write(self, text: str) -> None: ...
    def error(self, exc: BaseException, where: str | None = None) -> None: ...
    def refresh(self) -> None: ...
    def run_text(self, text: str, source: str | None = None) -> bool: ...
    def open(self, database: str) -> None: ...
    def width(self) -> int | None: ...
    def send_to(self, path: str | None, once: bool = False) -> None: ...


@dataclass(frozen=True)
class DotCommand:
    handler: Callable[[Repl, list[str]], None]
    help: str  # usage and meaning, one line: shown by .help and next to the completion
    values: tuple[str, ...] = ()  # what the argument completes to
    path: bool = False  # the argument is a file name (completed from the file system)


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


def dispatch(shell: Repl, line: str) -> None:
    """Run one dot command line; errors are reported on the shell, never raised."""
    try:
        parts = shlex.split(line)
    except ValueError as exc:
        shell.error(errors.ProgrammingError(f"{line.split()[0]}: {exc}"))
        return
    name, args = parts[0].lower(), parts[1:]
    command = COMMANDS.get(name)
    if command is None:
        _usage(shell, f"unknown command {name}{errors.did_you_mean(name, list(COMMANDS))}; "
                      "enter .help for the list")
        return
    command.handler(shell, args)


def _usage(shell: Repl, text: str) -> None:
    shell.error(errors.ProgrammingError(text))


def _help(shell: Repl, args: list[str]) -> None:
    width = max(len(name) for name in COMMANDS)
    lines = "\n".join(f"  {name.ljust(width)}  {c.help}" for name, c in COMMANDS.items())
    shell.write(HELP.format(commands=lines))


def _exit(shell: Repl, args: list[str]) -> None:
    shell.exit_requested = True


def _mode(shell: Repl, args: list[str]) -> None:
    if not args:
        shell.write(f"mode: {shell.mode}")
        return
    fmt = args[0].lower()
    if fmt not in MODES:
        _usage(shell, f".mode: unknown mode {args[0]!r}{errors.did_you_mean(fmt, MODES)}; "
                      f"modes: {', '.join(MODES)}")
        return
    shell.mode = fmt


def _timer(shell: Repl, args: list[str]) -> None:
    if not args or args[0].lower() not in ("on", "off"):
        _usage(shell, ".timer: expected on or off")
        return
    shell.timer = args[0].lower() == "on"


def _maxrows(shell: Repl, args: list[str]) -> None:
    if not args:
        shell.write(f"maxrows: {shell.max_rows}")
        return
    if not args[0].isdigit():
        _usage(shell, ".maxrows: expected a number of rows (0: all)")
        return
    shell.max_rows = int(args[0])


def _maxwidth(shell: Repl, args: list[str]) -> None:
    if not args:
        width = shell.width()
        shell.write(f"maxwidth: {shell.max_width}" + (f" (the terminal's width, {width} now)"
                                                      if not shell.max_width and width else ""))
        return
    if not args[0].isdigit():
        _usage(shell, ".maxwidth: expected a number of columns (0: the terminal's width)")
        return
    shell.max_width = int(args[0])


def _output(shell: Repl, args: list[str]) -> None:
    if len(args) > 1:
        _usage(shell, ".output: expected at most one file name")
        return
    shell.send_to(args[0] if args else None)


def _once(shell: Repl, args: list[str]) -> None:
    if len(args) != 1:
        _usage(shell, ".once: expected one file name")
        return
    shell.send_to(args[0], once=True)


def _tables(shell: Repl, args: list[str]) -> None:
    shell.refresh()
    names = sorted(t.name for t in shell.metadata.tables.values())
    shell.write(render(["name"], [(n,) for n in names], shell.mode, None, max_width=shell.width()))


def _models(shell: Repl, args: list[str]) -> None:
    shell.run_text("SHOW MODELS")


def _schema(shell: Repl, args: list[str]) -> None:
    shell.refresh()
    meta = shell.metadata
    if not args:
        rows = [(t.name, ", ".join(t.columns)) for t in sorted(meta.tables.values())]
        rows += [(m.name, ", ".join(m.columns) + "  (model)") for m in sorted(meta.models.values())]
        shell.write(render(["name", "columns"], rows, shell.mode, None, max_width=shell.width()))
        return
    key = args[0].lower()
    if key in meta.models:
        shell.run_text(f"DESCRIBE {quote_name(meta.models[key].name)}.info")
    elif key in meta.tables:
        shell.run_text(f"DESCRIBE {meta.tables[key].name}")
    else:
        known = [t.name for t in meta.tables.values()] + [m.name for m in meta.models.values()]
        _usage(shell, f".schema: no table, view or model named {args[0]!r}{errors.did_you_mean(key, known)}")


def _read(shell: Repl, args: list[str]) -> None:
    if len(args) != 1:
        _usage(shell, ".read: expected one file name")
        return
    try:
        text = Path(args[0]).expanduser().read_text()
    except OSError as exc:
        _usage(shell, f".read: cannot read {args[0]!r}: {exc.strerror or exc}")
        return
    shell.run_text(text, source=str(args[0]))
    shell.refresh()


def _open(shell: Repl, args: list[str]) -> None:
    if len(args) > 1:
        _usage(shell, ".open: expected at most one file name")
        return
    shell.open(args[0] if args else ":memory:")


def _traceback(shell: Repl, args: list[str]) -> None:
    if shell.last_error is None:
        shell.write("no error yet")
        return
    shell.write("".join(traceback.format_exception(shell.last_error)).rstrip())


COMMANDS: dict[str, DotCommand] = {
    ".help": DotCommand(_help, "show this help"),
    ".mode": DotCommand(_mode, ".mode table|box|line|csv|json|markdown: how results are printed "
                               "(table, also called duckbox, fits the terminal)", values=MODES),
    ".timer": DotCommand(_timer, ".timer on|off: print how long each statement took", values=("on", "off")),
    ".maxrows": DotCommand(_maxrows, ".maxrows N: rows shown in table mode (0: all)",
                           values=("0", "40", "100", "1000")),
    ".maxwidth": DotCommand(_maxwidth, ".maxwidth N: columns a table may take (0: the terminal's width)",
                            values=("0", "80", "120", "200")),
    ".output": DotCommand(_output, ".output [FILE]: results to FILE until .output alone (to the terminal)",
                          path=True),
    ".once": DotCommand(_once, ".once FILE: the next statement's results to FILE", path=True),
    ".tables": DotCommand(_tables, "list tables and views"),
    ".models": DotCommand(_models, "list models (SHOW MODELS)"),
    ".schema": DotCommand(_schema, ".schema [TABLE]: columns of a table, view or model"),
    ".read": DotCommand(_read, ".read FILE: run the SQL script in FILE", path=True),
    ".open": DotCommand(_open, ".open [FILE]: close this database and open FILE (in-memory without FILE)",
                        path=True),
    ".traceback": DotCommand(_traceback, "show the full traceback of the last error"),
    ".exit": DotCommand(_exit, "leave the shell (also .quit or Ctrl-D)"),
    ".quit": DotCommand(_exit, "leave the shell"),
}
