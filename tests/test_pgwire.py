"""`sqlrec serve --pg-port`: the PostgreSQL wire protocol, with psycopg 3 and psql as real clients.

The module's server is the real `sqlrec serve` console script (read-only) over a real DuckDB file
with a trained model; tests that need other settings (--write, --token, limits) start a
``Server`` on background threads of the test process. Every port is a free loopback one.
"""

from __future__ import annotations

import datetime
import re
import shutil
import socket
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg")
httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from conftest import FAST, file_database, sqlrec_serve  # noqa: E402
from sqlrec.serve import Service, Settings  # noqa: E402
from sqlrec.serve.server import Server  # noqa: E402

CREATE = ("CREATE MODEL movie_rec FROM ratings PREDICT movieId "
          f"USING user_id = 'userId', rating = 'rating', threshold = 4, {FAST}")
RECOMMEND = "SELECT * FROM movie_rec WHERE userId = %s USING n_recommendations = 3"
# Statements a read-only server must refuse however they are dressed, and what they would change.
BYPASSES = [
    "EXPLAIN ANALYZE SET memory_limit = '64MB'",
    "EXPLAIN ANALYZE SET lock_configuration = true",
    "EXPLAIN ANALYZE /* /* */ SELECT 1 -- */ SET threads = 1",
    "EXPLAIN ANALYZE PRAGMA threads = 1",
    "WITH x AS (SELECT 1 AS a) INSERT INTO ratings SELECT a, a, a, a FROM x",
    "WITH x AS (SELECT 1 AS a) DELETE FROM ratings WHERE userId IN (SELECT a FROM x)",
    "CREATE TEMP TABLE scratch AS SELECT 1 AS a",
    "SET threads = 1",
    "RESET memory_limit",
    "CALL pragma_version()",
    "ATTACH ':memory:' AS other",
    "LOAD httpfs",
]
STATE = ("SELECT current_setting('memory_limit'), current_setting('threads'), current_setting('lock_configuration'), "
         "(SELECT count(*) FROM ratings), (SELECT count(*) FROM duckdb_tables()), "
         "(SELECT count(*) FROM duckdb_databases())")


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("pgwire") / "shop.duckdb"
    file_database(path, CREATE).close()
    return str(path)


@pytest.fixture(scope="module")
def pg_port(db):
    with sqlrec_serve(db, "--pg-port", "0") as (_url, line):
        found = re.search(r"PostgreSQL: postgresql://127\.0\.0\.1:(\d+)", line)
        assert found, line
        yield int(found.group(1))


def dsn(port: int, password: str | None = None) -> str:
    return f"host=127.0.0.1 port={port} user=app dbname=shop connect_timeout=10" + (
        f" password={password}" if password is not None else "")


@pytest.fixture
def conn(pg_port):
    with psycopg.connect(dsn(pg_port), autocommit=True) as c:
        yield c


def psql(port: int, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": password or "", "PGCONNECT_TIMEOUT": "10"}
    return subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(port), "-U", "app", "-d", "shop",
                           "-v", "ON_ERROR_STOP=1", *args], capture_output=True, text=True, timeout=60, env=env)


def copy_of(db: str, tmp_path: Path) -> str:
    target = tmp_path / "copy.duckdb"
    target.write_bytes(Path(db).read_bytes())
    return str(target)


# --- sqlrec statements and plain SQL over psycopg -----------------------------------------------

def test_recommend_with_a_server_side_bound_parameter(conn, db):
    cur = conn.execute(RECOMMEND, [7])
    assert [d.name for d in cur.description] == ["userId", "movieId", "score", "rank"]
    assert [d.type_code for d in cur.description][2] in (700, 701)  # float score
    rows = cur.fetchall()
    assert [r[0] for r in rows] == [7, 7, 7] and [r[3] for r in rows] == [1, 2, 3]
    assert rows[0][2] >= rows[1][2] >= rows[2][2]
    # the same query run in-process on the same file gives the same items
    service = Service(db)
    try:
        same = service.sql(RECOMMEND.replace("%s", "7")).rows
    finally:
        service.close()
    assert [r[1] for r in rows] == [r[1] for r in same]


def test_describe_and_show_models(conn):
    models = conn.execute("SHOW MODELS").fetchall()
    names = [d.name for d in conn.execute("SHOW MODELS").description]
    assert [m[names.index("name")] for m in models] == ["movie_rec"]
    cur = conn.execute("DESCRIBE movie_rec")
    assert cur.description and cur.fetchall()


def test_types_come_back_as_python_values(conn):
    cur = conn.execute("SELECT 1::INTEGER AS i, 2::BIGINT AS b, 2.5::DOUBLE AS f, 'x' AS t, NULL::INTEGER AS n, "
                       "TIMESTAMP '2024-05-06 07:08:09' AS ts, DATE '2024-05-06' AS d, true AS ok, "
                       "1.25::DECIMAL(5,2) AS dec, '\\xAB'::BLOB AS raw")
    assert [d.name for d in cur.description] == ["i", "b", "f", "t", "n", "ts", "d", "ok", "dec", "raw"]
    # PostgreSQL's OIDs: int4, int8, float8, text, int4, timestamp, date, bool, numeric, bytea
    assert [d.type_code for d in cur.description] == [23, 20, 701, 25, 23, 1114, 1082, 16, 1700, 17]
    assert cur.fetchone() == (1, 2, 2.5, "x", None, datetime.datetime(2024, 5, 6, 7, 8, 9),
                              datetime.date(2024, 5, 6), True, Decimal("1.25"), b"\xab")
    stamp = conn.execute("SELECT TIMESTAMPTZ '2024-05-06 07:08:09+00' AS t").fetchone()[0]
    assert stamp == datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)


def test_parameters_of_each_kind_are_bound(conn):
    row = conn.execute("SELECT %s::INTEGER + 1, %s || '!', %s::DOUBLE * 2, %s IS NULL, %s::BOOLEAN",
                       [41, "it's", 1.5, None, False]).fetchone()
    assert row == (42, "it's!", 3.0, True, False)
    count = conn.execute("SELECT count(*) FROM ratings WHERE userId = %s AND rating >= %s", [1, 4.0]).fetchone()[0]
    assert count == conn.execute("SELECT count(*) FROM ratings WHERE userId = 1 AND rating >= 4").fetchone()[0] > 0


def test_client_side_binding(pg_port):
    with psycopg.connect(dsn(pg_port), autocommit=True, cursor_factory=psycopg.ClientCursor) as c:
        rows = c.execute(RECOMMEND, [7]).fetchall()
        assert [r[0] for r in rows] == [7, 7, 7]
        assert c.execute("SELECT %s AS quoted", ["a'; DROP TABLE ratings; --"]).fetchone() == (
            "a'; DROP TABLE ratings; --",)
        assert c.execute("SELECT count(*) FROM ratings").fetchone()[0] == 720


def test_a_transaction_of_a_default_psycopg_connection(pg_port):
    with psycopg.connect(dsn(pg_port)) as c:  # autocommit off: psycopg sends BEGIN first
        assert c.execute("SELECT count(*) FROM ratings").fetchone() == (720,)
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("SELECT * FROM no_such_table")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction, match="ROLLBACK"):
            c.execute("SELECT 1")
        c.rollback()
        assert c.execute("SELECT 2").fetchone() == (2,)


def test_transaction_control_is_allowed_read_only_and_tracked(conn):
    status = psycopg.pq.TransactionStatus
    for begin, end in (("BEGIN", "COMMIT"), ("START TRANSACTION", "END"), ("BEGIN TRANSACTION", "ROLLBACK")):
        conn.execute(begin)
        assert conn.info.transaction_status == status.INTRANS, begin
        assert conn.execute("SELECT count(*) FROM ratings").fetchone() == (720,)
        conn.execute(end)
        assert conn.info.transaction_status == status.IDLE, end
    conn.execute("BEGIN")
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT * FROM no_such_table")
    assert conn.info.transaction_status == status.INERROR
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        conn.execute("BEGIN")  # a failed transaction takes only its end
    conn.execute("ABORT")
    assert conn.info.transaction_status == status.IDLE


def test_bypasses_are_refused_and_change_nothing(conn):
    before = conn.execute(STATE).fetchone()
    for sql in BYPASSES:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(sql)
        assert info.value.sqlstate == "25006", (sql, info.value)
        assert "read-only" in str(info.value) and "--write" in str(info.value)
    assert conn.execute(STATE).fetchone() == before


def test_in_the_transaction_psycopg_begins_a_bypass_is_refused(pg_port):
    with psycopg.connect(dsn(pg_port)) as c:  # autocommit off: psycopg sends BEGIN first
        before = c.execute(STATE).fetchone()
        with pytest.raises(psycopg.Error, match="read-only"):
            c.execute("EXPLAIN ANALYZE SET threads = 1")
        c.rollback()
        assert c.execute(STATE).fetchone() == before


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql (postgresql-client) not installed")
def test_psql_bypasses_are_refused(conn, pg_port):
    before = conn.execute(STATE).fetchone()
    r = psql(pg_port, "-c", "EXPLAIN ANALYZE SET memory_limit = '64MB'")
    assert r.returncode != 0 and "read-only" in r.stderr, r.stderr
    # one simple-query message, two statements: the first runs, the second is refused
    r = psql(pg_port, "-c", "SELECT 40 + 2 AS answer; EXPLAIN ANALYZE SET threads = 1")
    assert r.returncode != 0 and "read-only" in r.stderr, r.stderr
    r = psql(pg_port, "-c", "WITH x AS (SELECT 1 AS a) INSERT INTO ratings SELECT a, a, a, a FROM x")
    assert r.returncode != 0 and "read-only" in r.stderr, r.stderr
    assert conn.execute(STATE).fetchone() == before


def test_a_write_server_runs_a_cte_write(db, tmp_path):
    with Server(copy_of(db, tmp_path), port=0, pg_port=0, settings=Settings(write=True)) as srv, \
            psycopg.connect(dsn(srv.pg_port), autocommit=True) as c:
        c.execute("WITH x AS (SELECT 7 AS a) INSERT INTO ratings SELECT a, a, a, a FROM x")
        assert c.execute("SELECT count(*) FROM ratings").fetchone() == (721,)


# --- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("sql, sqlstate, words", [
    ("SELEC 1", "42601", "syntax error"),
    ("SELECT * FROM no_such_table", "42P01", "no_such_table"),
    ("SELECT * FROM movie_recc WHERE userId = 1 USING n_recommendations = 3", "42P01", "movie_recc"),
    ("SELECT * FROM movie_rec WHERE userId = 1 USING n_recommendatons = 3", "22023", "n_recommendatons"),
    ("CREATE TABLE t AS SELECT 1 AS x", "25006", "read-only"),
    (CREATE.replace("movie_rec", "other_rec"), "25006", "read-only"),
    ("SELECT * FROM read_csv('/etc/passwd')", None, "disabled"),
])
def test_errors_carry_sqlrec_message_and_sqlstate_and_the_connection_goes_on(conn, sql, sqlstate, words):
    with pytest.raises(psycopg.Error) as info:
        conn.execute(sql)
    if sqlstate:
        assert info.value.sqlstate == sqlstate
    assert words in str(info.value).lower() if words.islower() else words in str(info.value)
    assert conn.execute("SELECT count(*) FROM ratings").fetchone() == (720,)
    assert conn.execute("SHOW MODELS").fetchone()[0] == "movie_rec"


def test_binary_results_are_refused_and_the_connection_goes_on(conn):
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="binary result format"):
        conn.execute("SELECT 1", binary=True)
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_garbage_and_huge_messages_are_refused_and_the_server_goes_on(pg_port):
    # only length words and what they announce: bytes left unread would make the close a reset
    for junk in (b"garb", b"\x00\x00\x00\x06ab", b"\x7f\xff\xff\xff"):
        with socket.create_connection(("127.0.0.1", pg_port), timeout=10) as raw:
            raw.sendall(junk)
            raw.shutdown(socket.SHUT_WR)
            answer = raw.recv(1000)
        assert answer == b"" or answer.startswith(b"E") and b"refused" in answer
    with psycopg.connect(dsn(pg_port), autocommit=True) as c:
        with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="refused"):
            c.execute("SELECT '" + "x" * (17 << 20) + "'")
    with psycopg.connect(dsn(pg_port), autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM ratings").fetchone() == (720,)


def test_connect_time_settings_are_answered(conn):
    conn.execute("SET application_name = 'shop-app'")
    assert conn.execute("SHOW application_name").fetchone() == ("shop-app",)
    assert conn.execute("SHOW server_version").fetchone()[0].startswith("16")
    assert conn.execute("SELECT version()").fetchone()[0]
    with pytest.raises(psycopg.Error, match="UTF8"):
        conn.execute("SET client_encoding = 'LATIN1'")


# --- psql ---------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("psql") is None, reason="psql (postgresql-client) not installed")
def test_psql_runs_sqlrec_statements(pg_port):
    r = psql(pg_port, "-c", "SHOW MODELS", "-c", "SELECT * FROM movie_rec WHERE userId = 7 USING n_recommendations = 2")
    assert r.returncode == 0, r.stderr
    assert re.search(r"\bmovie_rec\b.*\blightfm\b", r.stdout)
    assert re.search(r"userId \| movieId \| +score +\| rank", r.stdout) and "(2 rows)" in r.stdout


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql (postgresql-client) not installed")
def test_psql_shows_errors_and_goes_on(pg_port):
    r = psql(pg_port, "-v", "ON_ERROR_STOP=0", "-c", "SELECT * FROM movie_rec USING n_recommendatons = 3",
             "-c", "SELECT 40 + 2 AS answer")
    assert "n_recommendatons" in r.stderr and "ERROR" in r.stderr
    assert re.search(r"answer\s*\n-+\s*\n\s*42", r.stdout), r.stdout


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql (postgresql-client) not installed")
def test_psql_catalog_commands_are_refused_clearly(pg_port):
    r = psql(pg_port, "-c", r"\dt")
    assert r.returncode != 0 and "catalog queries" in r.stderr and "SHOW TABLES" in r.stderr
    r = psql(pg_port, "-c", "SHOW TABLES")
    assert r.returncode == 0 and "ratings" in r.stdout


def test_a_taken_pg_port_is_a_clear_error_and_frees_the_database(db, pg_port):
    with pytest.raises(OSError):
        Server(db, port=0, pg_port=pg_port)
    with Server(db, port=0, pg_port=0) as srv, psycopg.connect(dsn(srv.pg_port), autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM ratings").fetchone() == (720,)


# --- settings: token, write, limits -------------------------------------------------------------

def test_the_token_is_the_password_checked_with_scram(db):
    with Server(db, port=0, pg_port=0, token="s3cret") as srv:
        for password in ("wrong", None):
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(dsn(srv.pg_port, password))
        # require_auth: libpq refuses to send the password unless the server asks for SCRAM
        with psycopg.connect(dsn(srv.pg_port, "s3cret") + " require_auth=scram-sha-256", autocommit=True) as c:
            assert c.execute("SELECT count(*) FROM ratings").fetchone() == (720,)
        if shutil.which("psql"):
            assert psql(srv.pg_port, "-c", "SELECT 1", password="wrong").returncode != 0
            r = psql(srv.pg_port, "-c", "SHOW MODELS", password="s3cret")
            assert r.returncode == 0 and "movie_rec" in r.stdout, r.stderr


def test_row_limit_truncates_with_a_warning(db):
    notices: list[str] = []
    with Server(db, port=0, pg_port=0, settings=Settings(max_rows=5)) as srv, \
            psycopg.connect(dsn(srv.pg_port), autocommit=True) as c:
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
        assert c.execute("SELECT * FROM range(100)").fetchall() == [(i,) for i in range(5)]
    assert notices and "5 rows" in notices[0]


@pytest.mark.slow
def test_time_limit_and_client_cancel_give_57014(db):
    slow = "SELECT count(*) FROM range(3000000) a, range(3000000) b WHERE a.range + b.range = -1"
    with Server(db, port=0, pg_port=0, settings=Settings(timeout=1.0)) as srv, \
            psycopg.connect(dsn(srv.pg_port), autocommit=True) as c:
        with pytest.raises(psycopg.errors.QueryCanceled, match="time limit"):
            c.execute(slow)
        assert c.execute("SELECT 1").fetchone() == (1,)
    with Server(db, port=0, pg_port=0, settings=Settings(timeout=60)) as srv, \
            psycopg.connect(dsn(srv.pg_port), autocommit=True) as c:
        threading.Timer(0.5, c.cancel_safe if hasattr(c, "cancel_safe") else c.cancel).start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled, match="cancelled"):
            c.execute(slow)
        assert time.monotonic() - started < 30
        assert c.execute("SELECT 2").fetchone() == (2,)


@pytest.mark.slow
def test_a_model_written_over_pgwire_is_served_at_its_new_version(db, tmp_path):
    with Server(copy_of(db, tmp_path), port=0, pg_port=0, settings=Settings(write=True)) as srv, \
            psycopg.connect(dsn(srv.pg_port), autocommit=True) as c:
        before = [r[1] for r in c.execute(RECOMMEND, [7]).fetchall()]
        c.execute(CREATE.replace("CREATE MODEL", "CREATE OR REPLACE MODEL")
                  .replace("random_state = 7", "random_state = 8"))
        names = [d.name for d in c.execute("SHOW MODELS").description]
        assert c.execute("SHOW MODELS").fetchone()[names.index("version")] == 2
        after = [r[1] for r in c.execute(RECOMMEND, [7]).fetchall()]
        http = httpx.get(srv.url + "/models/movie_rec/recommend", params={"user": 7, "k": 3}).json()
        assert http["version"] == 2 and [x["movieId"] for x in http["recommendations"]] == after
        assert len(before) == len(after) == 3
        with pytest.raises(psycopg.Error, match="movie_rec"):
            c.execute(CREATE)
        c.execute("CREATE TABLE liked AS SELECT 1 AS x")
        assert c.execute("SELECT x FROM liked").fetchall() == [(1,)]
        if shutil.which("psql"):
            r = psql(srv.pg_port, "-c", CREATE.replace("movie_rec", "psql_rec"), "-c", "DESCRIBE psql_rec")
            assert r.returncode == 0 and "psql_rec" in r.stdout, r.stderr
            assert [m["name"] for m in httpx.get(srv.url + "/models").json()] == ["movie_rec", "psql_rec"]


@pytest.mark.slow
def test_ctrl_c_with_a_client_connected_stops_the_server_cleanly(db):
    with sqlrec_serve(db, "--pg-port", "0") as (_url, line):  # the helper asserts exit status 0
        port = int(re.search(r"postgresql://127\.0\.0\.1:(\d+)", line).group(1))
        client = psycopg.connect(dsn(port), autocommit=True)
        assert client.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        client.execute("SELECT 1")
    client.close()


@pytest.mark.slow
def test_many_clients_at_once(pg_port):
    failures: list[str] = []

    def work(n: int) -> None:
        with psycopg.connect(dsn(pg_port), autocommit=True) as c:
            for i in range(10):
                user = 1 + (n * 10 + i) % 60
                rows = c.execute(RECOMMEND, [user]).fetchall()
                if {r[0] for r in rows} != {user} or len(rows) != 3:
                    failures.append(repr(rows))
                try:
                    c.execute("SELECT * FROM nope")
                    failures.append("no error")
                except psycopg.errors.UndefinedTable:
                    pass

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
