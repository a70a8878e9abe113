"""The interactive shell, driven for real.

In-process tests feed keystrokes through prompt_toolkit's pipe input (DummyOutput for the
screen) into `Repl.run`, the same loop `sqlrec DATABASE` runs on a terminal; one test runs the
`sqlrec` command in a pseudo-terminal and presses Ctrl-C there.
"""

from __future__ import annotations

import io
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pexpect
import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

import sqlrec
from sqlrec.frontend.dotcommands import COMMANDS
from sqlrec.frontend.history import history_path
from sqlrec.frontend.lexer import make_lexer
from sqlrec.frontend.shell import Repl
from sqlrec.frontend.scripts import is_complete

from conftest import FAST, make_ratings

ROOT = Path(__file__).resolve().parents[1]
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
CTRL_D, CTRL_R = "\x04", "\x12"


def new_repl(**kwargs) -> Repl:
    kwargs.setdefault("history", InMemoryHistory())
    return Repl(out=io.StringIO(), err=io.StringIO(), **kwargs)


def drive(repl: Repl, *keys: str, timeout: int = 60) -> tuple[str, str]:
    """Type `keys` into the shell's prompt, then Ctrl-D; returns what this session printed (out, err)."""
    out_at, err_at = len(repl.out.getvalue()), len(repl.err.getvalue())

    def hung(signum, frame):
        raise TimeoutError(f"the shell did not finish within {timeout} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(timeout)
    try:
        with create_pipe_input() as pipe:
            session = repl.session(input=pipe, output=DummyOutput())
            for text in keys:
                pipe.send_text(text)
            pipe.send_text(CTRL_D)
            assert repl.run(session, banner=False) == 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return repl.out.getvalue()[out_at:], repl.err.getvalue()[err_at:]


@pytest.fixture
def repl():
    r = new_repl()
    r.con.register("ratings_df", make_ratings())
    r.handle("CREATE TABLE ratings AS SELECT * FROM ratings_df;")
    yield r
    r.close()


def table_cells(text: str) -> list[list[str]]:
    """The body rows of the aligned tables in `text`, as lists of stripped cells."""
    return [[c.strip() for c in line.strip("│").split("│")] for line in text.splitlines()
            if line.startswith("│")]


# --- input: when does Enter run it ---------------------------------------------------------


def test_multi_line_statement_runs_when_it_ends_with_semicolon(repl):
    out, err = drive(repl, "SELECT 40\r", "  + 2\r", "  AS answer\r", ";\r")
    assert err == ""
    assert table_cells(out) == [["answer"], ["42"]]
    # one history entry for the whole statement, as typed over four lines
    assert repl.history.get_strings()[-1] == "SELECT 40\n  + 2\n  AS answer\n;"


def test_semicolon_in_string_or_comment_does_not_end_input(repl):
    out, err = drive(repl, "SELECT 'a;b' AS s -- a ; in a comment\r", "/* ; */ , 2 AS n\r", ";\r")
    assert err == ""
    assert table_cells(out) == [["s", "n"], ["a;b", "2"]]
    assert not is_complete("SELECT 'a;")
    assert not is_complete("SELECT 1 -- ;")
    assert not is_complete("SELECT 1 /* ; */")
    assert is_complete("SELECT 'a;' ; -- done")
    assert is_complete(".tables") and is_complete("")


def test_pasted_script_runs_every_statement_in_order(repl):
    script = ("CREATE TABLE t (x INTEGER);\n"
              "INSERT INTO t VALUES (1), (2), (3);\n"
              "SELECT sum(x) AS total FROM t;\n"
              "SELECT 'second' AS step;\n")
    out, err = drive(repl, PASTE_START + script + PASTE_END)
    assert err == ""
    # CREATE / INSERT print nothing (DuckDB's lone Count column is not shown); the SELECTs in order
    assert table_cells(out) == [["total"], ["6"], ["step"], ["second"]]


def test_pasted_script_stops_at_the_first_error(repl):
    script = "SELECT 1 AS first;\nSELECT * FROM no_such_table;\nSELECT 3 AS third;\nSELECT 4 AS fourth;\n"
    out, err = drive(repl, PASTE_START + script + PASTE_END, "SELECT 'after' AS next;\r")
    assert table_cells(out) == [["first"], ["1"], ["next"], ["after"]]
    lines = err.splitlines()
    assert lines[0].startswith("Error: line 2: Catalog Error: Table with name no_such_table does not exist")
    assert lines[1] == "(2 later statements not run)"


# --- errors ----------------------------------------------------------------------------------


def test_error_is_one_line_without_traceback(repl):
    out, err = drive(repl, "CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', epochz = 3;\r")
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("Error: CREATE MODEL m: unknown option 'epochz' (did you mean 'epochs'?); valid options: ")
    # the shell carries on, and .traceback shows the full story of that error
    out, err2 = drive(repl, ".traceback\r")
    assert "Traceback (most recent call last)" in out and "OptionError" in out


def test_duckdb_error_with_caret_is_folded_into_one_line(repl):
    _, err = drive(repl, "SELECT\r", "  userId,\r", "  nonexistent\r", "FROM ratings;\r")
    assert err.count("\n") == 1
    assert err.startswith("Error: Binder Error: Referenced column \"nonexistent\" not found")
    assert "(line 3)" in err and "^" not in err


def test_debug_shows_the_traceback(repl):
    repl.debug = True
    _, err = drive(repl, "SELECT * FROM no_such_table;\r")
    assert err.startswith("Error: Catalog Error")
    assert "Traceback (most recent call last)" in err


# --- dot commands ----------------------------------------------------------------------------


def test_mode_switches_output_format(repl):
    out, err = drive(repl, ".mode csv\r", "SELECT 1 AS a, 'x,y' AS b;\r",
                     ".mode json\r", "SELECT 1 AS a, 'x' AS b;\r",
                     ".mode markdown\r", "SELECT 1 AS a, 'x' AS b;\r",
                     ".mode html\r", ".mode\r")
    assert out == ('a,b\n1,"x,y"\n'
                   '[\n  {"a": 1, "b": "x"}\n]\n'
                   '| a | b |\n|---:|---|\n| 1 | x |\n'
                   "mode: markdown\n")
    assert err == "Error: .mode: unknown mode 'html'; modes: table, duckbox, box, line, csv, json, markdown\n"


WIDE = "SELECT " + ", ".join(f"{i} * 0.125 AS metric_{i:02d}_at_10" for i in range(20)) + ";"


def test_wide_result_fits_maxwidth(repl):
    out, err = drive(repl, ".maxwidth 80\r", WIDE + "\r", ".maxwidth\r", ".maxwidth 0\r", ".maxwidth\r",
                     WIDE + "\r", ".maxwidth wide\r")
    first, rest = out.split("maxwidth: 80\n")
    assert max(len(line) for line in first.splitlines()) <= 80
    header = table_cells(first)[0]
    assert header[0] == "metric_00_at_10" and header[-1] == "metric_19_at_10" and "…" in header
    assert f"… 20 columns total ({len(header) - 1} shown); .mode line shows them all" in first
    # 0: the terminal's width; a StringIO is no terminal, so every column shows
    assert rest.startswith("maxwidth: 0\n")
    assert table_cells(rest)[0] == [f"metric_{i:02d}_at_10" for i in range(20)] and "columns total" not in rest
    assert err == "Error: .maxwidth: expected a number of columns (0: the terminal's width)\n"


def test_modes_line_box_and_duckbox(repl):
    out, err = drive(repl, ".maxwidth 40\r", ".mode line\r", "SELECT 1 AS user_id, 'Heat' AS item;\r",
                     ".mode box\r", WIDE + "\r", ".mode duckbox\r", WIDE + "\r", ".mode\r")
    assert err == ""
    line_part, rest = out.split("\n┌", 1)
    assert line_part == "user_id = 1\n   item = Heat"
    box, duckbox = rest.split("└", 1)[0], rest.split("└", 1)[1]
    assert all(f"metric_{i:02d}_at_10" in box for i in range(20))  # box: every column, whatever the width
    assert "metric_10_at_10" not in duckbox and "columns total" in duckbox  # duckbox: fits 40 columns
    assert out.endswith("mode: duckbox\n")


def test_output_and_once_send_results_to_a_file(repl, tmp_path):
    every, once = tmp_path / "every.txt", tmp_path / "once.csv"
    out, err = drive(repl, ".maxwidth 40\r", f".output {every}\r", "SELECT 'first' AS a;\r",
                     WIDE + "\r", ".output\r", "SELECT 'back' AS a;\r",
                     ".mode csv\r", f".once {once}\r", "SELECT 'once' AS a; SELECT 'twice' AS b;\r",
                     "SELECT 'after' AS a;\r", f".output {tmp_path}/no/such/dir.txt\r", "SELECT 'still here' AS a;\r")
    written = every.read_text()
    assert "first" in written and "back" not in written
    # a file gets every column: the width is the terminal's business
    assert all(f"metric_{i:02d}_at_10" in written for i in range(20)) and "columns total" not in written
    assert once.read_text() == "a\nonce\nb\ntwice\n"  # the next input's results, then the terminal again
    # a dot command is the next command too (as in SQLite's shell)
    out2, _ = drive(repl, f".once {tmp_path}/tables.txt\r", ".tables\r", ".tables\r")
    listing = "name\nratings\nratings_df\n"  # still in csv mode
    assert (tmp_path / "tables.txt").read_text() == listing and out2 == listing
    assert "first" not in out and "back" in out and "once" not in out and "after" in out
    assert out.endswith("a\nstill here\n")  # a file that cannot be opened changes nothing
    assert re.fullmatch(r"Error: \.output: cannot write '.*/no/such/dir\.txt': No such file or directory\n", err)


def test_missing_table_error_suggests_a_model_of_that_name(with_model):
    _, err = drive(with_model, "SELECT * FROM movie_re WHERE userId = 1;\r")
    assert err == ('Error: Catalog Error: Table with name movie_re does not exist! '
                   'Did you mean the model "movie_rec"?\n')
    _, err = drive(with_model, "SELECT * FROM movis;\r")  # a table closer than any model: DuckDB's hint
    assert err == 'Error: Catalog Error: Table with name movis does not exist! Did you mean "movies"?\n'
    # both close, the table closer: DuckDB's table first, then the model
    _, err = drive(with_model, "CREATE TABLE movie_rec_log (x INTEGER);\r", "SELECT * FROM movie_rec_lo;\r")
    assert err == ('Error: Catalog Error: Table with name movie_rec_lo does not exist! '
                   'Did you mean "movie_rec_log"? Or the model "movie_rec"?\n')
    with pytest.raises(sqlrec.errors.CatalogException, match='the model "movie_rec"'):
        with_model.con.execute("SELECT count(*) FROM MOVIE_RE")


def test_timer(repl):
    out, _ = drive(repl, ".timer on\r", "SELECT 1 AS a;\r", ".timer off\r", "SELECT 2 AS b;\r")
    assert len(re.findall(r"^Run Time \(s\): real \d+\.\d{3}$", out, re.M)) == 1
    assert out.index("Run Time") < out.index("│ b │")


def test_large_results_are_truncated_with_a_count(repl):
    out, _ = drive(repl, ".maxrows 5\r", "SELECT range AS i FROM range(1000);\r")
    assert [row for row in table_cells(out)][1:] == [["0"], ["1"], ["2"], ["3"], ["4"]]
    assert out.rstrip().endswith("… 1,000 rows total (5 shown)")


def test_tables_and_models(repl):
    out, err = drive(repl, ".models\r",
                     f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST};\r")
    assert err == "" and out.startswith("┌") and "(0 rows)" in out  # no models before CREATE MODEL
    out, err = drive(repl, ".tables\r")
    assert table_cells(out) == [["name"], ["ratings"], ["ratings_df"]]  # the catalog schema is hidden
    out, err = drive(repl, ".models\r")
    rows = table_cells(out)
    assert rows[0][:3] == ["name", "engine", "version"] and rows[1][:3] == ["movie_rec", "lightfm", "1"]


def test_read_runs_a_script_file(repl, tmp_path):
    script = tmp_path / "setup.sql"
    script.write_text("CREATE TABLE t AS SELECT 7 AS x;\n-- comment ; here\nSELECT x * 6 AS y FROM t;\n")
    out, err = drive(repl, f".read {script}\r")
    assert err == "" and table_cells(out) == [["y"], ["42"]]
    bad = tmp_path / "bad.sql"
    bad.write_text("SELECT 1 AS ok;\n\nSELEC 2;\n")
    out, err = drive(repl, f".read {bad}\r", ".read /no/such/file.sql\r")
    assert err.splitlines()[0].startswith(f"Error: {bad}, line 3: Parser Error: syntax error at or near \"SELEC\"")
    assert err.splitlines()[1].startswith("Error: .read: cannot read '/no/such/file.sql': No such file")


def test_open_switches_database(repl, tmp_path):
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    out, err = drive(repl, f".open {a}\r", "CREATE TABLE in_a AS SELECT 1 AS x;\r",
                     f".open {b}\r", ".tables\r", f".open {a}\r", "SELECT x + 1 AS y FROM in_a;\r")
    assert err == ""
    assert table_cells(out) == [["name"], ["y"], ["2"]]  # b has no tables; a kept in_a
    assert repl.database == str(a)


def test_help_lists_every_command(repl):
    out, _ = drive(repl, ".help\r")
    for command in (".mode", ".timer", ".tables", ".models", ".read", ".open", ".help", ".exit", ".traceback"):
        assert re.search(rf"^  \{command}\s", out, re.M), command
    assert "Ctrl-R" in out and "CREATE" in out
    _, err = drive(repl, ".tabels\r")
    assert err == "Error: unknown command .tabels (did you mean '.tables'?); enter .help for the list\n"


def test_exit_stops_reading(repl):
    out, _ = drive(repl, "SELECT 1 AS before;\r", ".exit\r", "SELECT 2 AS after;\r")
    assert table_cells(out) == [["before"], ["1"]]
    assert repl.exit_requested
    # Ctrl-D at an empty prompt leaves as well (drive() ends every session with it)
    r = new_repl()
    assert drive(r, "SELECT 3 AS x;\r") == ("┌───┐\n│ x │\n├───┤\n│ 3 │\n└───┘\n", "")
    r.close()


# --- Ctrl-C ------------------------------------------------------------------------------------


def test_ctrl_c_cancels_training_and_saves_nothing(repl):
    def press_ctrl_c_while_training() -> None:
        deadline = time.monotonic() + 30
        while not repl.running and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # some epochs in
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c_while_training, daemon=True).start()
    started = time.monotonic()
    out, err = drive(
        repl,
        "CREATE MODEL big FROM ratings PREDICT movieId USING user_id = 'userId', epochs = 100000, "
        "no_components = 4, num_threads = 1;\r",
        "SELECT 'still here' AS status;\r",
        "SHOW MODELS;\r")
    assert time.monotonic() - started < 20
    assert re.fullmatch(r"Error: training big: cancelled after epoch \d+ of 100000; nothing was saved\n", err)
    assert table_cells(out)[:2] == [["status"], ["still here"]]
    assert out.rstrip().endswith("(0 rows)")  # SHOW MODELS
    assert repl.con.execute("SHOW MODELS").fetchall() == []
    catalog = [r[0] for r in repl.con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'sqlrec'").fetchall()]
    for table in catalog:
        assert repl.con.execute(f"SELECT count(*) FROM sqlrec.{table}").fetchone() == (0,), table


@pytest.mark.slow
def test_ctrl_c_in_a_terminal(tmp_path):
    """The real command in a pseudo-terminal: progress bar, Ctrl-C in training and in a query."""
    db = tmp_path / "shop.duckdb"
    state = tmp_path / "state"
    env = dict(os.environ, XDG_STATE_HOME=str(state), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("SQLREC_HISTORY", None)
    env.pop("TQDM_DISABLE", None)
    child = pexpect.spawn(sys.executable, ["-m", "sqlrec", str(db)], env=env, encoding="utf-8",
                          timeout=30, dimensions=(40, 160))
    try:
        # Keys go in only once the prompt is up: typed earlier, the terminal is still in line mode.
        child.expect("sqlrec>")
        child.send("CREATE TABLE r AS SELECT i % 50 AS u, (i * 7) % 37 AS it FROM range(2000) t(i);\r")
        child.expect("sqlrec>")
        child.send("CREATE MODEL m FROM r PREDICT it USING user_id = 'u', epochs = 100000, no_components = 4;\r")
        child.expect(r"training m: +\d+%.*?\| *\d+/100000")  # the progress bar, on a terminal
        child.send("\x03")
        child.expect(r"Error: training m: cancelled after epoch \d+ of 100000; nothing was saved")
        child.expect("sqlrec>")
        child.send("SELECT sum(hash(i)) FROM range(100000000000000) t(i);\r")
        time.sleep(1.0)
        child.send("\x03")
        child.expect(r"Error: statement cancelled")
        child.expect("sqlrec>")
        child.send("SELECT 'alive' || 42 AS probe;\r")
        child.expect("alive42")
        child.expect("sqlrec>")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    con = sqlrec.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM r").fetchone() == (2000,)
        assert con.execute("SHOW MODELS").fetchall() == []
    finally:
        con.close()
    history = (state / "sqlrec" / "history").read_text()
    assert "+CREATE MODEL m FROM r PREDICT it" in history and "+SELECT 'alive' || 42 AS probe;" in history


@pytest.mark.slow
def test_wide_result_fits_an_80_column_terminal(tmp_path):
    """The real command in an 80-column pseudo-terminal: a 20-column result leaves out its middle."""
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("SQLREC_HISTORY", None)
    child = pexpect.spawn(sys.executable, ["-m", "sqlrec"], env=env, encoding="utf-8", timeout=30, dimensions=(40, 80))
    try:
        child.expect("sqlrec>")
        child.send(WIDE + "\r")
        child.expect(r"… 20 columns total \((\d+) shown\); \.mode line shows them all")
        shown = int(child.match.group(1))
        table = child.before[child.before.index("┌"):]
        child.expect("sqlrec>")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    lines = [line for line in table.replace("\r", "").split("\n") if line.strip()]
    assert 2 < shown < 20 and max(len(line) for line in lines) <= 80
    assert "metric_00_at_10" in lines[1] and "metric_19_at_10" in lines[1] and "…" in lines[1]


# --- history -----------------------------------------------------------------------------------


def test_history_file_under_the_state_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("SQLREC_HISTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert history_path() == tmp_path / "state" / "sqlrec" / "history"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert history_path() == tmp_path / "home" / ".local" / "state" / "sqlrec" / "history"
    monkeypatch.setenv("SQLREC_HISTORY", str(tmp_path / "custom"))
    assert history_path() == tmp_path / "custom"

    r = Repl(out=io.StringIO(), err=io.StringIO())  # no history given: the file
    drive(r, "SELECT 'remember me' AS s;\r")
    r.close()
    r = Repl(out=io.StringIO(), err=io.StringIO())
    out, _ = drive(r, "\x1b[A\r")  # Up recalls the last session's statement
    r.close()
    assert "remember me" in out
    assert "+SELECT 'remember me' AS s;" in (tmp_path / "custom").read_text()


def test_ctrl_r_searches_history():
    history = InMemoryHistory()
    for line in ("SELECT 'needle' AS found;", "SELECT 'hay' AS other;", "SELECT 'more hay' AS other;"):
        history.append_string(line)
    r = new_repl(history=history)
    out, err = drive(r, CTRL_R + "needle", "\r", "\r")
    r.close()
    assert err == "" and table_cells(out) == [["found"], ["needle"]]


# --- completion ------------------------------------------------------------------------------


def complete(repl: Repl, text: str, cursor: int | None = None) -> list[str]:
    document = Document(text, len(text) if cursor is None else cursor)
    return [c.text for c in repl.completer.get_completions(document, CompleteEvent())]


@pytest.fixture
def with_model(repl):
    repl.handle("CREATE TABLE movies AS SELECT DISTINCT movieId, 'title ' || movieId AS title FROM ratings;")
    repl.handle(f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST};")
    assert repl.err.getvalue() == ""
    return repl


def test_complete_sql_and_sqlrec_keywords(with_model):
    assert complete(with_model, "sel") == ["select"]
    assert complete(with_model, "SEL") == ["SELECT"]
    assert complete(with_model, "CREATE MO")[:2] == ["MODEL", "MODELS"]
    assert {"create model", "create or replace model", "create table"} <= set(complete(with_model, "cre"))
    assert complete(with_model, "pred") == ["predict"]
    assert complete(with_model, "SHOW ") == ["MODELS", "TABLES", "ALL TABLES", "DATABASES"]
    assert complete(with_model, "BUILD MODEL m USING ") == ["als", "ease", "explicit", "lightfm", "popularity", "spark_als", "svd"]


def test_complete_tables_models_and_columns(with_model):
    after_from = complete(with_model, "SELECT * FROM ")
    assert after_from[:4] == ["ratings", "ratings_df", "movies", "movie_rec"] or \
        set(after_from[:4]) == {"ratings", "ratings_df", "movies", "movie_rec"}
    assert "range" in after_from and "abs" not in after_from  # table functions, not scalar ones
    assert complete(with_model, "SELECT * FROM rat") == ["ratings", "ratings_df"]
    assert complete(with_model, "SELECT * FROM ratings WHERE us")[0] == "userId"
    assert complete(with_model, "SELECT * FROM ratings r WHERE r.") == ["userId", "movieId", "rating", "ts"]
    # an alias defined after the cursor
    assert complete(with_model, "SELECT m. FROM movies m", cursor=9) == ["movieId", "title"]
    # a model is a relation with its own columns, aliased or not
    assert complete(with_model, "SELECT * FROM movie_rec r WHERE r.") == \
        ["userId", "movieId", "score", "rank", "similar_movieId", "similar_userId"]
    assert complete(with_model, "DROP MODEL ") == ["movie_rec"]
    assert complete(with_model, "RETRAIN mov") == ["movie_rec"]
    assert complete(with_model, "DESCRIBE movie_rec.")[:5] == ["info", "features", "model", "metrics", "history"]


def test_complete_using_options_and_values(with_model):
    create = "CREATE MODEL m2 FROM ratings PREDICT movieId USING "
    names = complete(with_model, create)
    assert {"user_id", "item_id", "rating", "threshold", "epochs", "loss", "no_components", "evaluation",
            "engine", "test_size", "split"} <= set(names)
    assert complete(with_model, create + "ep") == ["epochs", "epoch", "epsilon"]
    assert complete(with_model, create + "loss = ") == ["'warp'", "'bpr'", "'logistic'", "'warp-kos'"]
    assert complete(with_model, create + "engine = ") == ["'als'", "'ease'", "'explicit'", "'lightfm'", "'popularity'", "'spark_als'", "'svd'"]
    assert complete(with_model, create + "epochs = 3, user_id = ") == ["'userId'", "'movieId'", "'rating'", "'ts'"]
    assert complete(with_model, create + "epochs = 3, user_id = 'us") == ["userId"]
    assert complete(with_model, create + "evaluation = ") == ["true", "false"]
    assert complete(with_model, "CREATE MODEL m2 FROM ratings PREDICT ") == ["userId", "movieId", "rating", "ts"]
    query = "SELECT * FROM movie_rec WHERE userId = 1 USING "
    assert {"recommender_type", "n_recommendations", "exclude_seen", "candidates"} <= set(complete(with_model, query))
    assert complete(with_model, query + "recommender") == ["recommender_type"]
    assert complete(with_model, query + "recommender_type = ") == \
        ["'user_item'", "'item_user'", "'item_item'", "'user_user'", "'rating'"]
    assert complete(with_model, query + "recommender_type = 'item_") == ["item_user", "item_item"]
    # JOIN ... USING (col) is SQL, not options
    assert "n_recommendations" not in complete(with_model, "SELECT * FROM ratings JOIN movies USING (")


def test_complete_dot_commands(with_model, tmp_path):
    assert complete(with_model, ".mo") == [".mode", ".models"]
    assert complete(with_model, ".mode ") == ["table", "duckbox", "box", "line", "csv", "json", "markdown"]
    assert complete(with_model, ".timer o") == ["on", "off"]
    (tmp_path / "train.sql").write_text("SELECT 1;")
    assert complete(with_model, f".read {tmp_path}/tr") == ["ain.sql"]


def test_dot_command_table_drives_dispatch_help_and_completion(repl):
    out, err = drive(repl, ".help\r")
    assert err == ""
    assert complete(repl, ".") == list(COMMANDS)
    for name, command in COMMANDS.items():
        assert re.search(rf"^  {re.escape(name)}\s+{re.escape(command.help)}$", out, re.M), name
        if command.values:
            assert complete(repl, f"{name} ") == list(command.values), name


def test_schema_shows_tables_and_model_result_columns(with_model):
    out, err = drive(with_model, ".mode csv\r", ".schema\r", ".mode table\r")
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == "name,columns"
    assert 'ratings,"userId, movieId, rating, ts"' in lines
    assert 'movie_rec,"userId, movieId, score, rank, similar_movieId, similar_userId  (model)"' in lines
    out, err = drive(with_model, ".schema movie_rec\r")
    assert err == "" and ["user_id", "userId"] in table_cells(out) and ["item_id", "movieId"] in table_cells(out)
    _, err = drive(with_model, ".schema movie_re\r")
    assert err == "Error: .schema: no table, view or model named 'movie_re' (did you mean 'movie_rec'?)\n"


def test_no_completion_menu_right_after_a_semicolon(with_model):
    typed = CompleteEvent(text_inserted=True)
    for text in ("SELECT 1;", "SELECT 1; ", "SELECT 1;\n", ""):
        assert list(with_model.completer.get_completions(Document(text), typed)) == [], text
    # Tab still lists what may start the next statement
    tab = [c.text for c in with_model.completer.get_completions(Document("SELECT 1; "), CompleteEvent(completion_requested=True))]
    assert "SELECT" in tab
    assert [c.text for c in with_model.completer.get_completions(Document("SELECT 1; sel"), typed)] == ["select"]


def test_completion_follows_the_database(repl):
    assert complete(repl, "SELECT * FROM fresh") == []
    drive(repl, "CREATE TABLE fresh_table (fresh_column INTEGER);\r")
    assert complete(repl, "SELECT * FROM fresh") == ["fresh_table"]
    assert complete(repl, "SELECT * FROM fresh_table WHERE fresh")[0] == "fresh_column"


def test_highlighting_knows_sqlrec_keywords():
    lexer = make_lexer()
    assert lexer is not None
    line = lexer.lex_document(Document("CREATE MODEL m FROM r PREDICT i USING loss = 'warp';"))(0)
    styles = {text: style for style, text in line}
    for word in ("CREATE", "MODEL", "FROM", "PREDICT", "USING"):
        assert styles[word] == "class:pygments.keyword", word
    assert styles["'warp'"].startswith("class:pygments.literal.string")
    assert styles["m"] == "class:pygments.name"
