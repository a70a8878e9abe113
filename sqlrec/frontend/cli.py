"""The `sqlrec` command: run SQL from the command line, a file or stdin, or open the shell.

    sqlrec [DATABASE]                       interactive shell (when stdin is a terminal)
    sqlrec [DATABASE] -c "SQL"              run SQL and print the results
    sqlrec [DATABASE] -f script.sql         run a script
    echo "SQL" | sqlrec [DATABASE]          run SQL from stdin
    sqlrec demo [--database PATH]           the MovieLens walkthrough
    sqlrec plot DATABASE MODEL --kind K -o FILE.png   a PNG of a model (history|embeddings|popularity)
    sqlrec serve DATABASE [--host H] [--port P] [--pg-port P] [--token T] [--write]   HTTP API, pages, pgwire

The optional DATABASE argument sits in front of the subcommands, as in `sqlite3 FILE` or
`duckdb FILE`: `MainGroup` takes the first positional word as the database unless it names a
subcommand (a database file called like a subcommand can be given with --database).
"""

from __future__ import annotations

import sys
import time
import traceback
from typing import Any, NoReturn

import click

from sqlrec.frontend.execution import fetch, run_cancellable
from sqlrec.frontend.formatting import FORMATS, error_message, render
from sqlrec.frontend.scripts import is_row_count


class MainGroup(click.Group):
    """A group whose first positional argument is an optional DATABASE, not a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        takes_value = {
            opt
            for param in self.params
            if isinstance(param, click.Option) and not param.is_flag and not param.count
            for opt in param.opts
        }
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                if i + 1 < len(args):
                    args[i:i + 2] = ["--database", args[i + 1]]
                break
            if arg.startswith("-") and arg != "-":
                if arg in takes_value:
                    i += 2  # the option's value may look like a word: skip it
                else:
                    i += 1
                continue
            if arg not in self.commands:
                args[i:i + 1] = ["--database", arg]
                rest = self._positional_after(args[i + 2:], takes_value)
                if rest:
                    raise click.UsageError(
                        f"unexpected argument {rest[0]!r} after the database {arg!r} "
                        "(pass SQL with -c \"...\")", ctx)
            break
        return super().parse_args(ctx, args)

    @staticmethod
    def _positional_after(args: list[str], takes_value: set[str]) -> list[str]:
        out, i = [], 0
        while i < len(args):
            if args[i].startswith("-") and args[i] != "-":
                i += 2 if args[i] in takes_value else 1
                continue
            out.append(args[i])
            i += 1
        return out

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return ["[OPTIONS]", "[DATABASE]", "|", ctx.command_path, "COMMAND", "[ARGS]..."]


def _version() -> str:
    from sqlrec import __version__

    return __version__


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # replaced by a stream without isatty, or closed
        return False


def run_script(con: Any, text: str, source: str | None, fmt: str, max_rows: int | None, debug: bool,
               timer: bool = False) -> bool:
    """Run every statement of `text`, printing each result; stop at the first error (False)."""
    from sqlrec import errors

    try:
        statements = _split(text)
    except errors.Error as exc:
        return _fail(exc, source, getattr(exc, "line", None), debug)
    if not statements:  # as the API says for the same text
        return _fail(errors.ProgrammingError("empty statement: nothing but whitespace, comments or ';'"),
                     source, None, debug)
    keep = max_rows if fmt in ("table", "markdown") else None  # csv and json always get every row
    for sql, line, _col in statements:
        started = time.perf_counter()
        try:
            result, interrupted = run_cancellable(lambda: fetch(con.execute(sql), keep), con.interrupt)
        except SystemExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - reported as one line, the script stops
            return _fail(exc, source, line if len(statements) > 1 or source else None, debug)
        if result.columns is not None and not is_row_count(sql, result.columns):
            click.echo(render(result.columns, result.rows, fmt, keep, result.total))
        if timer:
            click.echo(f"Run Time (s): real {time.perf_counter() - started:.3f}")
        if interrupted:
            return _fail(errors.Cancelled("cancelled; later statements were not run"), None, None, debug)
    return True


_BLANK = " \t\r\n"
# Characters and marks a statement cut without sqlrec's grammar must not hold: a ';' may end a
# statement, the rest start comments, dollar-quoted strings, backtick names or escapes.
_NOT_SIMPLE = (";", "$", "`", "\\", "--", "/*")


def _split(text: str) -> list[tuple[str, int, int]]:
    """(statement, line, column) for each statement of `text`, as sqlrec.sql.split_script cuts
    them. One statement with only plain strings and names in it (no comment, no ';' but trailing
    ones) is cut here, without loading sqlrec's grammar (sqlglot, about 0.1 s): most of what
    `sqlrec -c "SELECT 1"` would spend. Anything else goes to split_script."""
    body = text.strip(_BLANK)
    while body.endswith(";"):
        body = body[:-1].rstrip(_BLANK)
    if body and _simple(body):
        start = len(text) - len(text.lstrip(_BLANK))
        line = text.count("\n", 0, start) + 1
        return [(body, line, start - text.rfind("\n", 0, start))]
    from sqlrec.sql import split_script

    return split_script(text)


def _simple(body: str) -> bool:
    """No mark of _NOT_SIMPLE anywhere, and every '...' and "..." closed ('' and "" inside)."""
    if any(mark in body for mark in _NOT_SIMPLE):
        return False
    quote = None
    i = 0
    while i < len(body):
        char = body[i]
        if quote is None:
            quote = char if char in "'\"" else None
        elif char == quote:
            if body[i + 1:i + 2] == quote:
                i += 1  # a doubled quote stands for itself
            else:
                quote = None
        i += 1
    return quote is None


def _fail(exc: BaseException, source: str | None, line: int | None, debug: bool) -> bool:
    """Print `exc` as one line on stderr, prefixed with where it happened; always False."""
    message = error_message(exc, hint="run again with --debug for details")
    where = ", ".join(p for p in (source, f"line {line}" if line and (source or line > 1) else None) if p)
    if where:
        message = f"Error: {where}: {message[len('Error: '):]}"
    click.echo(message, err=True)
    if debug:
        click.echo("".join(traceback.format_exception(exc)), err=True, nl=False)
    return False


FORMAT_CHOICE = click.Choice(FORMATS, case_sensitive=False)


@click.group(
    cls=MainGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n"
        "\b\n"
        "  sqlrec shop.duckdb\n"
        "  sqlrec shop.duckdb -c \"SHOW MODELS\"\n"
        "  sqlrec shop.duckdb -f train.sql --format csv\n"
        "  echo \"SELECT * FROM movie_rec WHERE userId = 1\" | sqlrec shop.duckdb\n"
        "  sqlrec demo"
    ),
)
@click.option("--database", "database", metavar="PATH", default=None,
              help="Database file (same as the DATABASE argument; for a file named like a command).")
@click.option("-c", "--command", "commands", metavar="SQL", multiple=True,
              help="Run SQL (one statement or several separated by ';') and exit. Repeatable.")
@click.option("-f", "--file", "files", metavar="FILE", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Run the SQL script in FILE ('-' for stdin) and exit. Repeatable; files run before -c.")
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="table", show_default=True,
              help="How results are printed.")
@click.option("--max-rows", type=click.IntRange(min=0), default=None, metavar="N",
              help="Rows shown in table/markdown output (0: all). Default: 40 on a terminal, all otherwise.")
@click.option("--read-only", is_flag=True, help="Open the database read-only.")
@click.option("--safe", is_flag=True, help="No file or network access from SQL (read_csv, COPY ... TO, ATTACH).")
@click.option("--trust-stored-sql", is_flag=True,
              help="Let models from the file re-run their stored feature queries (cold start).")
@click.option("--timer", is_flag=True, help="Print how long each statement took.")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.version_option(_version(), "-V", "--version", prog_name="sqlrec", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, database: str | None, commands: tuple[str, ...], files: tuple[str, ...],
        fmt: str, max_rows: int | None, read_only: bool, safe: bool, trust_stored_sql: bool, timer: bool,
        debug: bool) -> None:
    """Recommendations in plain SQL: DuckDB data and LightFM models.

    Opens DATABASE (a DuckDB file, created if missing; in-memory without it) and runs SQL given
    with -c or -f, or piped on stdin; on a terminal with neither, starts the interactive shell.
    Everything is DuckDB SQL plus model statements (CREATE MODEL, SELECT ... FROM model,
    SHOW MODELS, DESCRIBE, DROP MODEL). The exit status is 1 if a statement fails.
    """
    if ctx.invoked_subcommand is not None:
        if database is not None or commands or files:
            raise click.UsageError(f"DATABASE, -c and -f go without a subcommand; "
                                   f"see sqlrec {ctx.invoked_subcommand} --help", ctx)
        return
    ctx.obj = {"debug": debug}
    database = database or ":memory:"
    fmt = fmt.lower()
    interactive = not commands and not files and _stdin_is_tty()
    if max_rows is None:
        max_rows = 40 if sys.stdout.isatty() or interactive else 0
    con = _connect(database, debug, read_only=read_only, safe=safe, trust_stored_sql=trust_stored_sql)
    if interactive:
        ctx.exit(_run_shell(con, database, read_only=read_only, fmt=fmt, max_rows=max_rows,
                            timer=timer, debug=debug))
    try:
        scripts = _read_scripts(files, commands)
        # all() stops at the first script that fails, as a failing statement stops its script
        ok = all(run_script(con, text, source, fmt, max_rows or None, debug, timer)
                 for text, source in scripts if text.strip())
    finally:
        con.close()
    ctx.exit(0 if ok else 1)


def _connect(database: str, debug: bool, **options: bool) -> Any:
    import sqlrec

    try:
        return sqlrec.connect(database, **options)
    except Exception as exc:  # noqa: BLE001 - a bad path or a locked file: one line, exit 1
        _die(exc, debug)


def _run_shell(con: Any, database: str, **settings: Any) -> int:
    from sqlrec.frontend.shell import Repl

    repl = Repl(database, connection=con, **settings)
    try:
        return repl.run()
    finally:
        repl.close()


def _read_scripts(files: tuple[str, ...], commands: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """(text, source) of every script to run, in order: the files, then -c, else stdin."""
    scripts: list[tuple[str, str | None]] = []
    for path in files:
        if path == "-":
            scripts.append((sys.stdin.read(), "<stdin>"))
            continue
        try:
            with open(path, encoding="utf-8") as fh:
                scripts.append((fh.read(), path))
        except OSError as exc:
            raise click.ClickException(f"cannot read {path!r}: {exc.strerror or exc}") from exc
    scripts.extend((sql, None) for sql in commands)
    if not files and not commands:
        scripts.append((sys.stdin.read(), None))
    return scripts


def _die(exc: BaseException, debug: bool) -> NoReturn:
    click.echo(error_message(exc), err=True)
    if debug:
        click.echo("".join(traceback.format_exception(exc)), err=True, nl=False)
    sys.exit(1)


@cli.command()
@click.option("--database", "database", metavar="PATH", default=":memory:", show_default=True,
              help="Database to load the sample into (a file keeps the tables and the model).")
@click.option("--force", is_flag=True, help="Replace ratings, movies, movie_rec and top_movies even when the "
              "demo did not create them.")
@click.pass_context
def demo(ctx: click.Context, database: str, force: bool) -> None:
    """Walk through sqlrec on the MovieLens sample (100k ratings; no download).

    Loads the ratings into DuckDB, trains a LightFM model with a held-out evaluation,
    prints its metrics, recommendations for one user and similar movies, printing each
    statement before its result.
    """
    from sqlrec.frontend import demo as demo_module

    try:
        demo_module.run(database=database, force=force)
    except KeyboardInterrupt:
        click.echo("Error: cancelled", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001
        _die(exc, bool(ctx.parent and ctx.parent.params.get("debug")))


@cli.command()
@click.argument("database")
@click.argument("model")
@click.option("--kind", type=click.Choice(["history", "embeddings", "popularity"]), default="history",
              show_default=True, help="history: learning curve (needs evaluation = true); embeddings: "
                                      "2-D map of item embeddings by k-means cluster; popularity: "
                                      "recommended vs consumed items.")
@click.option("-o", "--output", "output", metavar="FILE.png", required=True, help="PNG file to write.")
@click.option("--label", "label_sql", metavar="SQL", default=None,
              help="For embeddings: a query of item id and label, e.g. \"SELECT movieId, title FROM movies\".")
@click.pass_context
def plot(ctx: click.Context, database: str, model: str, kind: str, output: str, label_sql: str | None) -> None:
    """Draw a picture of MODEL in DATABASE and write it as a PNG (needs matplotlib).

    \b
    Examples:
      sqlrec plot shop.duckdb movie_rec --kind history -o curve.png
      sqlrec plot shop.duckdb movie_rec --kind embeddings -o map.png \\
          --label "SELECT movieId, title FROM movies"
      sqlrec plot shop.duckdb movie_rec --kind popularity -o popularity.png
    """
    debug = bool(ctx.parent and ctx.parent.params.get("debug"))
    try:
        import os

        import sqlrec
        from sqlrec.frontend import plots

        if database != ":memory:" and not os.path.exists(database):
            raise plots.PlotError(f"no database file {database!r}")
        try:
            import matplotlib

            matplotlib.use("Agg")
        except ImportError:
            pass  # plots.plot raises the readable error
        con = sqlrec.connect(database, read_only=database != ":memory:")
        try:
            fig = plots.plot(con, model, kind, label_sql=label_sql)
        finally:
            con.close()
        try:
            fig.savefig(output, format="png", dpi=120)
        except OSError as exc:
            raise plots.PlotError(f"cannot write {output!r}: {exc.strerror or exc}") from exc
    except Exception as exc:  # noqa: BLE001
        _die(exc, debug)
    click.echo(f"wrote {output}", err=True)


@cli.command()
@click.argument("database")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any other than a loopback address needs --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="HTTP port (0: any free one).")
@click.option("--pg-port", type=click.IntRange(0, 65535), default=None, metavar="P",
              help="Also serve the PostgreSQL wire protocol (psql, psycopg) on this port (0: any free one).")
@click.option("--token", envvar="SQLREC_TOKEN", default=None, metavar="T",
              help="Bearer token every request must carry, the password on --pg-port (env SQLREC_TOKEN).")
@click.option("--write", is_flag=True, help="Allow statements that change the database (default: read-only).")
@click.option("--allow-external-access", is_flag=True,
              help="Let served queries read and write files and URLs (off by default).")
@click.option("--max-rows", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Most rows one request returns.")
@click.option("--timeout", type=click.FloatRange(min=0.001), default=30.0, show_default=True,
              help="Seconds one request may run, parsing and planning included, before it is cancelled.")
@click.option("--memory-limit", default=None, metavar="SIZE",
              help="Memory DuckDB may use for all requests together, e.g. 4GB (default: half the "
                   "physical memory); a query past it fails with an out-of-memory error.")
@click.option("--max-statement-bytes", type=click.IntRange(min=1), default=64 << 10, show_default=True,
              help="Longest statement text a request may send; longer ones are refused before parsing.")
@click.option("--labels", default=None, metavar="SQL",
              help="Item titles for the web pages: a table or a SELECT of (item id, title).")
@click.pass_context
def serve(ctx: click.Context, database: str, host: str, port: int, pg_port: int | None, token: str | None, write: bool,
          allow_external_access: bool, max_rows: int, timeout: float, memory_limit: str | None,
          max_statement_bytes: int, labels: str | None) -> None:
    """Serve DATABASE over HTTP: web pages at /, a JSON API (/models, /models/NAME/recommend, /sql; /docs).

    \b
    Examples:
      sqlrec serve shop.duckdb
      curl 'http://127.0.0.1:8000/models/movie_rec/recommend?user=100&k=5'
      sqlrec serve shop.duckdb --host 0.0.0.0 --token s3cret --write
      sqlrec serve shop.duckdb --pg-port 5433      # then: psql -h 127.0.0.1 -p 5433 -c 'SHOW MODELS'
      sqlrec serve movies.duckdb --labels 'SELECT movieId, title FROM movies'
    """
    debug = bool(ctx.parent and ctx.parent.params.get("debug"))
    try:
        from sqlrec.serve import ConfigError, Settings, require

        require()
        from sqlrec.serve.server import Server

        settings = Settings(write=write, external_access=allow_external_access, max_rows=max_rows, timeout=timeout,
                            memory_limit=memory_limit, max_statement_bytes=max_statement_bytes)
        server = Server(database, host=host, port=port, pg_port=pg_port, token=token, settings=settings, log_level="info",
                        labels=labels)
    except ImportError as exc:  # the serve extra is missing: its message says what to install
        raise click.ClickException(str(exc)) from None
    except ConfigError as exc:  # a flag the server refuses: a usage error, naming the flag
        raise click.BadParameter(str(exc), ctx, param_hint=f"'{exc.option}'") from None
    except OSError as exc:  # the port is taken, the address is not this machine's
        raise click.ClickException(f"cannot listen on {host}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - a locked or unreadable file, a bug: one line, no REPL advice
        click.echo(error_message(exc, hint="run again with --debug for details"), err=True)
        if debug:
            click.echo("".join(traceback.format_exception(exc)), err=True, nl=False)
        sys.exit(1)
    mode = "read-write" if write else "read-only"
    pg = f", PostgreSQL: postgresql://{server.host}:{server.pg_port}" if server.pg_port is not None else ""
    click.echo(f"sqlrec serving {database} ({mode}) on {server.url} (pages: {server.url}/, API docs: {server.url}/docs{pg})",
               err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # uvicorn shuts down on Ctrl-C / SIGTERM, then re-raises the signal
        pass
    click.echo("sqlrec serve: stopped", err=True)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (`sqlrec`)."""
    try:
        cli.main(args=argv, prog_name="sqlrec")
    except KeyboardInterrupt:
        click.echo("Error: cancelled", err=True)
        sys.exit(130)
