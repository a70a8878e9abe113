"""`sqlrec serve` under hostile load: each limit refuses with a clear error and the server answers
the next request.

Real servers (``Server(...).start()`` on threads of the test process, or the real `sqlrec serve`
console script when the server process's own memory is measured), real clients (httpx, psycopg),
a real DuckDB file with a trained model.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
psycopg = pytest.importorskip("psycopg")
pytest.importorskip("fastapi")

from conftest import FAST, file_database  # noqa: E402
from sqlrec.serve import ConfigError, Settings  # noqa: E402
from sqlrec.serve.pgauth import LoginThrottle  # noqa: E402
from sqlrec.serve.server import Server  # noqa: E402

CREATE = ("CREATE MODEL movie_rec FROM ratings PREDICT movieId "
          f"USING user_id = 'userId', rating = 'rating', threshold = 4, {FAST}")
# 2,000 rows of 10 KB: joined with range(100) and aggregated into one string, 2 GB
BIG_TEXT = "CREATE TABLE big_text AS SELECT repeat('abcdefghij', 1000) || range AS t FROM range(2000)"
STRING_BOMB = "SELECT length(string_agg(t, '')) FROM big_text, range(100)"


def in_list(n: int) -> str:
    """A statement naming no model with an IN list of `n` literals (about 8 bytes each)."""
    return "SELECT count(*) FROM range(10) t(x) WHERE x IN (" + ", ".join(str(100_000 + i) for i in range(n)) + ")"


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("limits") / "shop.duckdb"
    con = file_database(path, CREATE)
    con.execute(BIG_TEXT)
    con.close()
    return str(path)


def dsn(port: int, password: str | None = None) -> str:
    return f"host=127.0.0.1 port={port} user=app dbname=shop connect_timeout=20" + (
        f" password={password}" if password is not None else "")


def answers(url: str, client: object = httpx) -> None:
    """The server still answers: a recommendation, through the model."""
    r = client.get(url + "/models/movie_rec/recommend", params={"user": 3, "k": 2}, timeout=30)
    assert r.status_code == 200 and len(r.json()["recommendations"]) == 2


# --- statement size ---------------------------------------------------------------------------


def test_a_statement_over_the_cap_is_refused_with_413_before_parsing(db):
    with Server(db, port=0, settings=Settings(max_statement_bytes=4096)) as srv:
        ok = httpx.post(srv.url + "/sql", json={"sql": in_list(300)}, timeout=30)  # 2.4 KB: runs
        assert ok.status_code == 200 and ok.json()["rows"] == [[0]]
        started = time.monotonic()
        r = httpx.post(srv.url + "/sql", json={"sql": in_list(5000)}, timeout=30)
        assert r.status_code == 413, r.text
        body = r.json()
        assert body["type"] == "ServeError"
        assert "--max-statement-bytes" in body["error"] and "at most 4096 bytes" in body["error"]
        assert time.monotonic() - started < 2  # refused, not parsed (which takes seconds here)
        # text within the cap in characters but not in UTF-8 bytes counts its bytes
        wide = httpx.post(srv.url + "/sql", json={"sql": "SELECT '" + "é" * 3000 + "'"}, timeout=30)
        assert wide.status_code == 413
        answers(srv.url)


def test_the_default_cap_keeps_real_statements_and_refuses_megabytes(db):
    assert Settings().max_statement_bytes == 64 << 10
    with Server(db, port=0) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        # a query with 1,000 literal ids (9 KB) is a real statement: it runs
        assert c.post("/sql", json={"sql": in_list(1000)}).status_code == 200
        r = c.post("/sql", json={"sql": in_list(45_000)})  # 0.35 MB
        assert r.status_code == 413 and "65536" in r.json()["error"]
        # the same ids as bound parameters parse nothing big: they are values
        ids = list(range(45_000))
        bound = c.post("/sql", json={"sql": "SELECT count(*) FROM range(100000) t(x) WHERE x = ANY(?)",
                                     "params": [ids]})
        assert bound.status_code == 200 and bound.json()["rows"] == [[45_000]]
        answers(srv.url, c)


def test_pgwire_refuses_a_long_statement_with_sqlstate_54000(db):
    with Server(db, port=0, pg_port=0) as srv, psycopg.connect(dsn(srv.pg_port), autocommit=True) as con:
        six_mb = "SELECT 1 WHERE 1 IN (" + ", ".join(["123456789"] * 600_000) + ")"
        assert len(six_mb) > 6_000_000
        started = time.monotonic()
        with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="--max-statement-bytes"):
            con.execute(six_mb)
        assert time.monotonic() - started < 10
        # the extended protocol (a statement with parameters) is refused the same way
        with pytest.raises(psycopg.errors.ProgramLimitExceeded):
            con.execute(in_list(10_000) + " AND x = %s", [1])
        # the same connection goes on
        assert con.execute("SELECT * FROM movie_rec WHERE userId = 3 USING n_recommendations = 2").rowcount == 2


# --- time ---------------------------------------------------------------------------------------


def test_the_time_limit_counts_checking_and_parsing(db):
    # 0.4 MB of IN list takes seconds to check and parse here, far past a 0.2 s limit: the request
    # is cancelled (408) before DuckDB runs it, rather than answered seconds late
    settings = Settings(timeout=0.2, max_statement_bytes=1 << 20)
    with Server(db, port=0, settings=settings) as srv:
        r = httpx.post(srv.url + "/sql", json={"sql": in_list(50_000)}, timeout=60)
        assert r.status_code == 408, r.text
        assert "time limit (0.2 s) while it was checked and parsed" in r.json()["error"]
        assert httpx.post(srv.url + "/sql", json={"sql": "SELECT 42"}, timeout=30).json()["rows"] == [[42]]


# --- memory -------------------------------------------------------------------------------------


def test_a_string_bomb_ends_at_the_memory_limit_with_a_clear_error(db):
    with Server(db, port=0, pg_port=0, settings=Settings(memory_limit="300MiB")) as srv:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            limit = c.post("/sql", json={"sql": "SELECT current_setting('memory_limit')"}).json()["rows"][0][0]
            assert limit.endswith("MiB") and 250 < float(limit.split()[0]) <= 300
            r = c.post("/sql", json={"sql": STRING_BOMB})
            assert r.status_code == 503, r.text
            assert r.json()["type"] == "OutOfMemoryException"
            assert "--memory-limit 300MiB" in r.json()["error"]
            answers(srv.url, c)
        with psycopg.connect(dsn(srv.pg_port), autocommit=True) as con:
            with pytest.raises(psycopg.errors.OutOfMemory, match="memory limit"):
                con.execute(STRING_BOMB)
            assert con.execute("SELECT 1").fetchone() == (1,)


def test_the_default_memory_limit_is_half_the_physical_memory():
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    default = Settings().memory_limit
    assert default.endswith("MiB") and int(default[:-3]) << 20 <= physical // 2 + (1 << 20)
    with pytest.raises(ConfigError, match="at least 64MiB"):
        Settings(memory_limit="1MB")
    with pytest.raises(ConfigError, match="give a size such as 4GB") as refused:
        Settings(memory_limit="lots")
    assert refused.value.option == "--memory-limit"


def vm_peak_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024


def test_eight_concurrent_large_statements_leave_memory_bounded(db):
    command = [str(Path(sys.executable).with_name("sqlrec")), "serve", db, "--port", "0", "--timeout", "10"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        url = re.search(r"on (http://127\.0\.0\.1:\d+)", line).group(1)
        answers(url)
        before = vm_peak_mb(proc.pid)
        text = in_list(45_000)  # 0.35 MB each, as in the load that once took 1.3 GB and 42 s
        statuses: list[int] = []

        def send() -> None:
            statuses.append(httpx.post(url + "/sql", json={"sql": text}, timeout=60).status_code)

        started = time.monotonic()
        threads = [threading.Thread(target=send) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        assert statuses == [413] * 8
        assert elapsed < 10 + 10  # --timeout + 10 s; refused before parsing, it takes well under 1 s
        growth = vm_peak_mb(proc.pid) - before
        assert growth < 100, f"peak RSS grew {growth:.0f} MB over 8 refused statements"
        answers(url)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stderr.close()


# --- pgwire: prepared statements and logins ---------------------------------------------------


def test_prepared_statements_per_connection_are_capped_in_number(db):
    with Server(db, port=0, pg_port=0, settings=Settings(max_prepared=3)) as srv, \
            psycopg.connect(dsn(srv.pg_port), autocommit=True) as con:
        for i in range(3):
            assert con.execute(f"SELECT {i} + %s", [1], prepare=True).fetchone() == (i + 1,)
        with pytest.raises(psycopg.errors.ProgramLimitExceeded, match=r"already holds 3 \(at most 3\)"):
            con.execute("SELECT 99 + %s", [1], prepare=True)
        # statements already prepared run, and unprepared ones still go through the unnamed slot
        assert con.execute("SELECT 0 + %s", [1], prepare=True).fetchone() == (1,)
        assert con.execute("SELECT 7 + %s", [1], prepare=False).fetchone() == (8,)


def test_prepared_statements_per_connection_are_capped_in_bytes(db):
    settings = Settings(max_prepared_bytes=20_000)
    with Server(db, port=0, pg_port=0, settings=settings) as srv, \
            psycopg.connect(dsn(srv.pg_port), autocommit=True) as con:
        padding = "/* " + "x" * 8_000 + " */ "
        con.execute(padding + "SELECT 1 + %s", [1], prepare=True)
        con.execute(padding + "SELECT 2 + %s", [1], prepare=True)
        with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="at most 20000"):
            con.execute(padding + "SELECT 3 + %s", [1], prepare=True)
        assert con.execute("SELECT 2 + %s", [2]).fetchone() == (4,)


def test_failed_logins_are_delayed_more_each_time_per_address(db, monkeypatch):
    monkeypatch.setattr(LoginThrottle, "FIRST_DELAY", 0.2)
    with Server(db, port=0, pg_port=0, token="s3cret") as srv:
        took = []
        for _ in range(4):
            started = time.monotonic()
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(dsn(srv.pg_port, "wrong"))
            took.append(time.monotonic() - started)
        # the 2nd, 3rd and 4th attempts wait 0.2, 0.4 and 0.8 s before their password is checked
        assert took[1] >= 0.18 and took[2] >= 0.38 and took[3] >= 0.78, took
        assert took[3] > took[1] + 0.4, took
        # the right token still gets in (after its turn), and a success starts the address afresh
        with psycopg.connect(dsn(srv.pg_port, "s3cret")) as con:
            assert con.execute("SELECT 1").fetchone() == (1,)
        started = time.monotonic()
        with psycopg.connect(dsn(srv.pg_port, "s3cret")) as con:
            assert con.execute("SELECT 2").fetchone() == (2,)
        assert time.monotonic() - started < 1.0


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("args, flag, says", [
    (["--host", "0.0.0.0"], "--host", "needs --token"),
    (["--memory-limit", "lots"], "--memory-limit", "give a size such as 4GB"),
    (["--max-statement-bytes", "0"], "--max-statement-bytes", "0"),
])
def test_refused_serve_flags_are_usage_errors(db, args, flag, says):
    sqlrec_bin = Path(sys.executable).with_name("sqlrec")
    refused = subprocess.run([str(sqlrec_bin), "serve", db, "--port", "0", *args], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "SQLREC_TOKEN": ""})
    assert refused.returncode == 2, refused.stderr
    assert f"Invalid value for '{flag}'" in refused.stderr and says in refused.stderr
    assert "Usage: sqlrec serve" in refused.stderr
    assert ".traceback" not in refused.stderr and "internal error" not in refused.stderr
