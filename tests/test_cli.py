"""The `sqlrec` command.

Most tests run the click command in-process with click's CliRunner (stdout and stderr kept
apart, exit codes as the process would return them). The few where the process boundary is
the point run the real thing in a subprocess and are marked slow: the installed console
script, models persisting between separate processes, a real stdin pipe, the progress bar
on a piped stderr (tqdm reads its environment at import), and SIGINT.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import sqlrec
from sqlrec.frontend.cli import cli

from conftest import FAST

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, input: str | None = None) -> Result:
    """`sqlrec ARGS...` in-process; result.stdout and result.stderr apart, result.exit_code."""
    return CliRunner().invoke(cli, list(args), input=input, prog_name="sqlrec", catch_exceptions=False)


def _environ(env: dict | None) -> dict:
    environ = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    environ.pop("TQDM_DISABLE", None)
    environ.update(env or {})
    return environ


def sqlrec_cmd(*args: str, input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m sqlrec ARGS...` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "sqlrec", *args], input=input if input is not None else "",
                          capture_output=True, text=True, timeout=120, env=_environ(env))


def installed_command() -> str:
    """The console script pip installed next to this Python (or on PATH)."""
    here = Path(sys.executable).parent / "sqlrec"
    found = str(here) if here.exists() else shutil.which("sqlrec")
    if found is None:
        pytest.skip("the sqlrec console script is not installed (pip install -e .)")
    return found


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "shop.duckdb"
    con = sqlrec.connect(str(path))
    con.execute("CREATE TABLE ratings AS SELECT (i % 30) + 1 AS userId, ((i * 7) % 40) + 100 AS movieId, "
                "CAST(1 + (i % 5) AS DOUBLE) AS rating FROM range(600) t(i)")
    con.close()
    return path


def test_command_runs_statements_and_prints_tables(db):
    r = run(str(db), "-c", "SELECT count(*) AS n FROM ratings; SELECT max(rating) AS top FROM ratings")
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout == ("┌─────┐\n│  n  │\n├─────┤\n│ 600 │\n└─────┘\n"
                        "┌─────┐\n│ top │\n├─────┤\n│ 5.0 │\n└─────┘\n")


def test_models_are_created_and_queried(db):
    r = run(str(db), "-c", f"CREATE MODEL movie_rec FROM ratings PREDICT movieId "
                           f"USING user_id = 'userId', rating = 'rating', {FAST}")
    assert r.exit_code == 0, r.stderr
    assert "movie_rec" in r.stdout and "trained" in r.stdout
    r = run(str(db), "--format", "csv", "-c", "SELECT userId, movieId, rank FROM movie_rec WHERE userId = 3 ORDER BY rank")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "userId,movieId,rank" and len(lines) == 11
    assert [line.split(",")[2] for line in lines[1:]] == [str(k) for k in range(1, 11)]
    assert all(line.startswith("3,") for line in lines[1:])


def test_file_option(db, tmp_path):
    script = tmp_path / "report.sql"
    script.write_text("-- how many\nSELECT count(*) AS n\nFROM ratings;\n\nSELECT 'done' AS status; -- ; in a comment\n")
    r = run(str(db), "-f", str(script), "--format", "csv")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "n\n600\nstatus\ndone\n"


def test_stdin(db):
    r = run(str(db), "--format", "csv", input="SELECT 'from stdin' AS source;\nSELECT count(*) AS n FROM ratings;\n")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "source\nfrom stdin\nn\n600\n"
    r = run(str(db), "-f", "-", "--format", "csv", input="SELECT 1 AS one")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "one\n1\n"


def test_formats():
    sql = "SELECT 1 AS id, 'a|b, \"c\"' AS name, 2.5 AS score, NULL AS missing"
    csv = run("--format", "csv", "-c", sql)
    assert csv.stdout == 'id,name,score,missing\n1,"a|b, ""c""",2.5,\n'
    assert json.loads(run("--format", "json", "-c", sql).stdout) == \
        [{"id": 1, "name": 'a|b, "c"', "score": 2.5, "missing": None}]
    md = run("--format", "markdown", "-c", sql)
    assert md.stdout == '| id | name | score | missing |\n|---:|---|---:|---:|\n| 1 | a\\|b, "c" | 2.5 | NULL |\n'
    table = run("--format", "TABLE", "-c", "SELECT 1 AS id")
    assert table.stdout == "┌────┐\n│ id │\n├────┤\n│  1 │\n└────┘\n"
    bad = run("--format", "xml", "-c", "SELECT 1")
    assert bad.exit_code == 2 and "'xml' is not one of 'table', 'csv', 'json', 'markdown'" in bad.stderr
    assert bad.stdout == ""


def test_max_rows_truncates_tables_not_csv():
    table = run("--max-rows", "3", "-c", "SELECT range AS i FROM range(50)")
    csv = run("--max-rows", "3", "--format", "csv", "-c", "SELECT range AS i FROM range(50)")
    assert table.stdout.splitlines()[-1] == "… 50 rows total (3 shown)"
    assert table.stdout.count("│") == 2 * 4  # header + 3 rows
    assert len(csv.stdout.splitlines()) == 51


def test_first_failing_statement_stops_with_nonzero_exit(db):
    r = run(str(db), "--format", "csv", "-c",
            "SELECT 1 AS first;\nINSERT INTO ratings VALUES (1, 2, 3.0);\nSELECT * FROM no_such_table;\nSELECT 4 AS never;")
    assert r.exit_code == 1
    assert r.stdout == "first\n1\n"
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("Error: line 3: Catalog Error: Table with name no_such_table does not exist")
    # statements before the failure stay done
    con = sqlrec.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM ratings").fetchone() == (601,)
    con.close()


def test_sqlrec_errors_name_the_part_at_fault(db, tmp_path):
    script = tmp_path / "train.sql"
    script.write_text("SELECT 1;\n\nCREATE MODEL m FROM ratings PREDICT movieId\n  USING user_id = 'userId', los = 'bpr';\n")
    r = run(str(db), "-f", str(script))
    assert r.exit_code == 1
    assert r.stderr.startswith(f"Error: {script}, line 3: CREATE MODEL m: unknown option 'los' (did you mean 'loss'?)")
    assert r.stderr.count("\n") == 1
    r = run(str(db), "--debug", "-c", "SELECT * FROM no_such_model USING recommender_type = 'user_item'")
    assert r.exit_code == 1 and "Traceback (most recent call last)" in r.stderr
    assert r.stderr.startswith("Error: ")


def test_bad_invocations():
    missing = run("-f", "/no/such/script.sql")
    assert missing.exit_code == 1
    assert missing.stderr == "Error: cannot read '/no/such/script.sql': No such file or directory\n"
    extra = run("shop.duckdb", "SELECT 1")
    assert extra.exit_code == 2 and "unexpected argument 'SELECT 1' after the database 'shop.duckdb'" in extra.stderr
    r = run("--no-such-option")
    assert r.exit_code == 2 and "No such option" in r.stderr and "--no-such-option" in r.stderr


def test_read_only(db):
    r = run(str(db), "--read-only", "-c", "CREATE TABLE t (x INTEGER)")
    assert r.exit_code == 1 and r.stderr.startswith("Error: ") and "read-only" in r.stderr


def test_timer():
    r = run("--timer", "--format", "csv", "-c", "SELECT 1 AS a")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["a", "1"] and lines[2].startswith("Run Time (s): real ")


def test_version():
    for flag in ("--version", "-V"):
        r = run(flag)
        assert r.exit_code == 0 and r.stdout == f"sqlrec {sqlrec.__version__}\n"


def test_help():
    r, demo = run("--help"), run("demo", "--help")
    assert r.exit_code == 0
    for text in ("Usage: sqlrec [OPTIONS] [DATABASE]", "-c, --command SQL", "-f, --file FILE",
                 "--format [table|csv|json|markdown]", "--version", "demo", "Examples:"):
        assert text in r.stdout, text
    assert demo.exit_code == 0 and "Usage: sqlrec demo [OPTIONS]" in demo.stdout and "MovieLens" in demo.stdout


def test_entry_point_is_the_frontend_cli():
    scripts = metadata.entry_points(group="console_scripts", name="sqlrec")
    assert [e.value for e in scripts] == ["sqlrec.frontend.cli:main"]


# --- across the process boundary ----------------------------------------------------------------


@pytest.mark.slow
def test_installed_command_reads_a_stdin_pipe(db):
    proc = subprocess.run([installed_command(), str(db), "--format", "csv"], capture_output=True, text=True,
                          timeout=120, env=_environ(None),
                          input="SELECT 'from stdin' AS source;\nSELECT count(*) AS n FROM ratings;\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "source\nfrom stdin\nn\n600\n" and proc.stderr == ""


@pytest.mark.slow
def test_models_persist_between_processes(db):
    r = sqlrec_cmd(str(db), "-c", f"CREATE MODEL movie_rec FROM ratings PREDICT movieId "
                                  f"USING user_id = 'userId', rating = 'rating', {FAST}")
    assert r.returncode == 0, r.stderr
    assert "movie_rec" in r.stdout and "trained" in r.stdout
    r = sqlrec_cmd(str(db), "--format", "csv", "-c",
                   "SELECT userId, movieId, rank FROM movie_rec WHERE userId = 3 ORDER BY rank")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "userId,movieId,rank" and len(lines) == 11
    assert [line.split(",")[2] for line in lines[1:]] == [str(k) for k in range(1, 11)]
    assert all(line.startswith("3,") for line in lines[1:])


@pytest.mark.slow
def test_sigint_cancels_the_running_statement():
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlrec", "--format", "csv", "-c",
         "SELECT 'started' AS s; SELECT sum(hash(i)) FROM range(100000000000000) t(i); SELECT 'never' AS n"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environ(None))
    try:
        # click.echo flushes: once the first result is out, the long statement is running
        assert proc.stdout.readline() == "s\n" and proc.stdout.readline() == "started\n"
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - started < 10
    assert proc.returncode == 1
    assert out == "" and err == "Error: statement cancelled\n"


@pytest.mark.slow
def test_progress_bar_when_asked_for(db):
    create = ("CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', rating = 'rating', "
              "threshold = 3, evaluation = true, epochs = 4, no_components = 4, random_state = 1")
    # stderr is a pipe here: no bar unless verbose = true
    quiet = sqlrec_cmd(str(db), "-c", create)
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = sqlrec_cmd(str(db), "-c", "CREATE OR REPLACE MODEL m" + create[len("CREATE MODEL m"):] + ", verbose = true")
    assert loud.returncode == 0
    final = [part for part in loud.stderr.replace("\r", "\n").splitlines() if "4/4" in part]
    assert any(p.startswith("evaluating m: 100%") and "auc=" in p for p in final), loud.stderr
    assert any(p.startswith("training m: 100%") for p in final), loud.stderr
    off = sqlrec_cmd(str(db), "-c", "CREATE OR REPLACE MODEL m" + create[len("CREATE MODEL m"):] + ", verbose = true",
                     env={"TQDM_DISABLE": "1"})
    assert off.returncode == 0 and off.stderr == ""
