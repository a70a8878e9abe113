"""The `sqlrec` command, run through its entry point in a subprocess (`python -m sqlrec`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sqlrec

from conftest import FAST

ROOT = Path(__file__).resolve().parents[1]


def _environ(env: dict | None) -> dict:
    environ = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    environ.pop("TQDM_DISABLE", None)
    environ.update(env or {})
    return environ


def sqlrec_cmd(*args: str, input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sqlrec", *args], input=input if input is not None else "",
                          capture_output=True, text=True, timeout=120, env=_environ(env))


def sqlrec_each(*arg_lists: list[str]) -> list[subprocess.CompletedProcess]:
    """Independent invocations, started together (each one mostly waits on Python's start-up)."""
    procs = [subprocess.Popen([sys.executable, "-m", "sqlrec", *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environ(None))
             for args in arg_lists]
    done = []
    for args, proc in zip(arg_lists, procs):
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "shop.duckdb"
    con = sqlrec.connect(str(path))
    con.execute("CREATE TABLE ratings AS SELECT (i % 30) + 1 AS userId, ((i * 7) % 40) + 100 AS movieId, "
                "CAST(1 + (i % 5) AS DOUBLE) AS rating FROM range(600) t(i)")
    con.close()
    return path


def test_command_runs_statements_and_prints_tables(db):
    r = sqlrec_cmd(str(db), "-c", "SELECT count(*) AS n FROM ratings; SELECT max(rating) AS top FROM ratings")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout == ("┌─────┐\n│  n  │\n├─────┤\n│ 600 │\n└─────┘\n"
                        "┌─────┐\n│ top │\n├─────┤\n│ 5.0 │\n└─────┘\n")


def test_models_persist_between_invocations(db):
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


def test_file_option(db, tmp_path):
    script = tmp_path / "report.sql"
    script.write_text("-- how many\nSELECT count(*) AS n\nFROM ratings;\n\nSELECT 'done' AS status; -- ; in a comment\n")
    r = sqlrec_cmd(str(db), "-f", str(script), "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "n\n600\nstatus\ndone\n"


def test_stdin(db):
    r = sqlrec_cmd(str(db), "--format", "csv", input="SELECT 'from stdin' AS source;\nSELECT count(*) AS n FROM ratings;\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "source\nfrom stdin\nn\n600\n"
    r = sqlrec_cmd(str(db), "-f", "-", "--format", "csv", input="SELECT 1 AS one")
    assert r.stdout == "one\n1\n"


def test_formats():
    sql = "SELECT 1 AS id, 'a|b, \"c\"' AS name, 2.5 AS score, NULL AS missing"
    csv, js, md, table, bad = sqlrec_each(["--format", "csv", "-c", sql], ["--format", "json", "-c", sql],
                                          ["--format", "markdown", "-c", sql], ["--format", "TABLE", "-c", "SELECT 1 AS id"],
                                          ["--format", "xml", "-c", "SELECT 1"])
    assert csv.stdout == 'id,name,score,missing\n1,"a|b, ""c""",2.5,\n'
    assert json.loads(js.stdout) == [{"id": 1, "name": 'a|b, "c"', "score": 2.5, "missing": None}]
    assert md.stdout == '| id | name | score | missing |\n|---:|---|---:|---:|\n| 1 | a\\|b, "c" | 2.5 | NULL |\n'
    assert table.stdout == "┌────┐\n│ id │\n├────┤\n│  1 │\n└────┘\n"
    assert bad.returncode == 2 and "'xml' is not one of 'table', 'csv', 'json', 'markdown'" in bad.stderr


def test_max_rows_truncates_tables_not_csv():
    table, csv = sqlrec_each(["--max-rows", "3", "-c", "SELECT range AS i FROM range(50)"],
                             ["--max-rows", "3", "--format", "csv", "-c", "SELECT range AS i FROM range(50)"])
    assert table.stdout.splitlines()[-1] == "… 50 rows total (3 shown)"
    assert table.stdout.count("│") == 2 * 4  # header + 3 rows
    assert len(csv.stdout.splitlines()) == 51


def test_first_failing_statement_stops_with_nonzero_exit(db):
    r = sqlrec_cmd(str(db), "--format", "csv", "-c",
                   "SELECT 1 AS first;\nINSERT INTO ratings VALUES (1, 2, 3.0);\nSELECT * FROM no_such_table;\nSELECT 4 AS never;")
    assert r.returncode == 1
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
    r = sqlrec_cmd(str(db), "-f", str(script))
    assert r.returncode == 1
    assert r.stderr.startswith(f"Error: {script}, line 3: CREATE MODEL m: unknown option 'los' (did you mean 'loss'?)")
    assert r.stderr.count("\n") == 1
    r = sqlrec_cmd(str(db), "--debug", "-c", "SELECT * FROM no_such_model USING recommender_type = 'user_item'")
    assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr
    assert r.stderr.startswith("Error: ")


def test_bad_invocations():
    missing, extra, r = sqlrec_each(["-f", "/no/such/script.sql"], ["shop.duckdb", "SELECT 1"], ["--no-such-option"])
    assert missing.returncode == 1
    assert missing.stderr == "Error: cannot read '/no/such/script.sql': No such file or directory\n"
    assert extra.returncode == 2 and "unexpected argument 'SELECT 1' after the database 'shop.duckdb'" in extra.stderr
    assert r.returncode == 2 and "No such option" in r.stderr and "--no-such-option" in r.stderr


def test_read_only(db):
    r = sqlrec_cmd(str(db), "--read-only", "-c", "CREATE TABLE t (x INTEGER)")
    assert r.returncode == 1 and r.stderr.startswith("Error: ") and "read-only" in r.stderr


def test_timer():
    r = sqlrec_cmd("--timer", "--format", "csv", "-c", "SELECT 1 AS a")
    lines = r.stdout.splitlines()
    assert lines[:2] == ["a", "1"] and lines[2].startswith("Run Time (s): real ")


def test_version():
    for r in sqlrec_each(["--version"], ["-V"]):
        assert r.returncode == 0 and r.stdout == f"sqlrec {sqlrec.__version__}\n"


def test_help():
    r, demo = sqlrec_each(["--help"], ["demo", "--help"])
    assert r.returncode == 0
    for text in ("Usage: sqlrec [OPTIONS] [DATABASE]", "-c, --command SQL", "-f, --file FILE",
                 "--format [table|csv|json|markdown]", "--version", "demo", "Examples:"):
        assert text in r.stdout, text
    assert demo.returncode == 0 and "Usage: sqlrec demo [OPTIONS]" in demo.stdout and "MovieLens" in demo.stdout


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
