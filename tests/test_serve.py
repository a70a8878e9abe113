"""`sqlrec serve`: the HTTP API over a real uvicorn server on a loopback port, real httpx clients.

Servers run on background threads of the test process (``Server(...).start()``, port 0: a free
one) over a real DuckDB file with real trained models; one test starts the real console script.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from conftest import FAST, file_database, group, sqlrec_serve  # noqa: E402
from sqlrec.serve import Settings  # noqa: E402
from sqlrec.serve.server import Server  # noqa: E402

CREATE = ("CREATE MODEL movie_rec FROM ratings PREDICT movieId "
          f"USING user_id = 'userId', rating = 'rating', threshold = 4, {FAST}")
# Statements a read-only server's first-word check once let through (or that would change what
# every client gets): each must be refused, with the database and its settings left as they were.
BYPASSES = [
    "EXPLAIN ANALYZE SET memory_limit = '64MB'",
    "EXPLAIN ANALYZE SET lock_configuration = true",
    "EXPLAIN ANALYZE /* /* */ SELECT 1 -- */ SET threads = 1",
    "/* ( */ -- a comment\n EXPLAIN ANALYZE LOAD httpfs",
    "WITH x AS (SELECT 1 AS a) INSERT INTO ratings SELECT a, a, a, a FROM x",
    "CREATE TEMP TABLE scratch AS SELECT 1 AS a",
    "CREATE TEMP VIEW v AS SELECT 1 AS a",
    "RESET threads",
    "PRAGMA threads = 1",
    "CALL pragma_version()",
    "ATTACH ':memory:' AS other",
    "LOAD httpfs",
    "SELECT 1; EXPLAIN ANALYZE SET threads = 1",
]


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("serve") / "shop.duckdb"
    con = file_database(path, CREATE)
    con.execute("CREATE MODEL strict_rec FROM ratings PREDICT movieId "
                f"USING user_id = 'userId', rating = 'rating', threshold = 4, cold_start = 'error', {FAST}")
    con.execute("CREATE TABLE movies AS SELECT DISTINCT movieId, 'movie ' || movieId AS title FROM ratings")
    con.close()
    return str(path)


@pytest.fixture(scope="module")
def server(db):
    with Server(db, port=0) as srv:
        yield srv


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def copy_of(db: str, tmp_path: Path) -> str:
    target = tmp_path / "copy.duckdb"
    target.write_bytes(Path(db).read_bytes())
    return str(target)


# --- models and recommendations ---------------------------------------------------------------


def test_models_lists_the_active_models(client):
    r = client.get("/models")
    assert r.status_code == 200
    by_name = {m["name"]: m for m in r.json()}
    assert set(by_name) == {"movie_rec", "strict_rec"}
    assert by_name["movie_rec"]["user_id"] == "userId" and by_name["movie_rec"]["n_items"] == 40


def test_model_describes_info_and_metrics(client):
    body = client.get("/models/movie_rec").json()
    assert body["engine"] == "lightfm" and body["version"] == 1
    assert body["info"]["user_id_type"] == "BIGINT" and body["info"]["training_query"] == "SELECT * FROM ratings"
    assert body["metrics"] == []


def test_recommend_for_one_user(client):
    r = client.get("/models/movie_rec/recommend", params={"user": 2, "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "user_item" and body["columns"] == ["userId", "movieId", "score", "rank"]
    recs = body["recommendations"]
    assert [x["rank"] for x in recs] == [1, 2, 3, 4, 5] and {x["userId"] for x in recs} == {2}
    assert sum(group(x["movieId"]) == 1 for x in recs) >= 4  # user 2 (u = 1, odd) likes items 120-139


def test_recommend_kinds_and_exclude_seen(client):
    similar = client.get("/models/movie_rec/recommend", params={"item": 101, "k": 3}).json()
    assert similar["kind"] == "item_item" and len(similar["recommendations"]) == 3
    assert all(x["movieId"] == 101 for x in similar["recommendations"])
    users = client.get("/models/movie_rec/recommend", params={"item": 101, "kind": "item_user", "k": 4}).json()
    assert users["columns"][:2] == ["movieId", "userId"] and len(users["recommendations"]) == 4
    seen = {row[0] for row in client.post("/sql", json={"sql": "SELECT movieId FROM ratings WHERE userId = 2 "
                                                               "AND rating >= 4"}).json()["rows"]}
    all_items = client.get("/models/movie_rec/recommend", params={"user": 2, "k": 40, "exclude_seen": "false"})
    assert seen <= {x["movieId"] for x in all_items.json()["recommendations"]}
    unseen = client.get("/models/movie_rec/recommend", params={"user": 2, "k": 40}).json()["recommendations"]
    assert not seen & {x["movieId"] for x in unseen}


def test_recommend_a_batch_of_users(client):
    r = client.post("/models/movie_rec/recommend", json={"users": [1, 2, 3], "k": 2})
    assert r.status_code == 200, r.text
    recs = r.json()["recommendations"]
    assert sorted({x["userId"] for x in recs}) == [1, 2, 3] and len(recs) == 6


def test_a_new_user_from_liked_items_is_folded_in(client):
    r = client.post("/models/movie_rec/recommend", json={"liked": [100, 101, 102, 103, 104, 105], "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    recs = body["recommendations"]
    assert len(recs) == 5 and {x["userId"] for x in recs} == {body["user"]}
    assert not {100, 101, 102, 103, 104, 105} & {x["movieId"] for x in recs}  # liked ones are seen
    assert sum(group(x["movieId"]) == 0 for x in recs) >= 4
    named = client.post("/models/movie_rec/recommend", json={"liked": [120, 121, 122], "user": 9999, "k": 3}).json()
    assert {x["userId"] for x in named["recommendations"]} == {9999}
    assert sum(group(x["movieId"]) == 1 for x in named["recommendations"]) >= 2


def test_request_values_are_bound_never_pasted_into_sql(client):
    r = client.get("/models/movie_rec/recommend", params={"user": "1) OR 1=1; DROP TABLE ratings; --"})
    assert r.status_code == 400 and "not an integer" in r.json()["error"]
    r = client.post("/models/movie_rec/recommend", json={"liked": ["1'), (2, 3); DROP TABLE ratings; --"]})
    assert r.status_code == 400
    assert client.get('/models/movie_rec".info; --/recommend', params={"user": 1}).status_code == 404
    assert client.post("/sql", json={"sql": "SELECT count(*) FROM ratings"}).json()["rows"] == [[720]]


# --- /sql -------------------------------------------------------------------------------------


def test_sql_returns_json_rows_with_bound_parameters(client):
    r = client.post("/sql", json={"sql": "SELECT movieId, title FROM movies WHERE movieId = ?", "params": [101]})
    assert r.status_code == 200, r.text
    assert r.json() == {"columns": ["movieId", "title"], "types": ["BIGINT", "VARCHAR"],
                        "rows": [[101, "movie 101"]], "row_count": 1, "truncated": False}
    shown = client.post("/sql", json={"sql": "SHOW MODELS"}).json()
    assert [row[0] for row in shown["rows"]] == ["movie_rec", "strict_rec"]
    joined = client.post("/sql", json={"sql": "SELECT m.title, r.rank FROM movie_rec r JOIN movies m USING (movieId) "
                                              "WHERE r.userId = $u ORDER BY r.rank", "params": {"u": 2}}).json()
    assert [row[1] for row in joined["rows"]] == list(range(1, 11))


def test_sql_as_arrow_and_csv_by_accept_header(client):
    import pyarrow as pa

    sql = {"sql": "SELECT * FROM movie_rec WHERE userId = 1 USING n_recommendations = 3"}
    r = client.post("/sql", json=sql, headers={"Accept": "application/vnd.apache.arrow.stream"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.apache.arrow.stream")
    table = pa.ipc.open_stream(r.content).read_all()
    assert table.column_names == ["userId", "movieId", "score", "rank"] and table.num_rows == 3
    r = client.post("/sql", json=sql, headers={"Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv")
    lines = r.text.strip().splitlines()
    assert lines[0] == "userId,movieId,score,rank" and len(lines) == 4


def test_openapi_and_docs_need_no_network(client):
    assert "/models/{name}/recommend" in client.get("/openapi.json").json()["paths"]
    page = client.get("/docs").text
    assert "/docs-static/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert client.get("/docs-static/swagger-ui-bundle.js").status_code == 200


# --- errors -----------------------------------------------------------------------------------


def test_bad_input_gets_clear_errors_and_the_server_keeps_serving(client):
    cases = [
        (client.get("/models/nope"), 404, "no model named 'nope'"),
        (client.get("/models/movie_recc/recommend", params={"user": 1}), 404, "did you mean 'movie_rec'"),
        (client.get("/models/strict_rec/recommend", params={"user": 424242}), 404, "424242"),
        (client.get("/models/movie_rec/recommend", params={"user": 1, "k": 0}), 400, "k"),
        (client.get("/models/movie_rec/recommend", params={"user": 1, "k": "many"}), 400, "k"),
        (client.get("/models/movie_rec/recommend", params={"user": 1, "kind": "user_movie"}), 400, "kind"),
        (client.get("/models/movie_rec/recommend"), 400, "exactly one of user= or item="),
        (client.post("/models/movie_rec/recommend", json={"users": [1], "liked": [2]}), 400, "exactly one"),
        (client.post("/sql", content=b"{not json", headers={"content-type": "application/json"}), 400, "JSON"),
        (client.post("/sql", json={"query": "SELECT 1"}), 400, "sql"),
        (client.post("/sql", json={"sql": "SELEC 1"}), 400, "syntax error"),
        (client.post("/sql", json={"sql": "SELECT * FROM movie_rec USING recommender_type = 'x'"}), 400,
         "recommender_type"),
        (client.post("/sql", json={"sql": "SELECT ?", "params": [1, 2]}), 400, ""),
        (client.post("/sql", content=b"[" + b"1," * 600_000 + b"1]",
                     headers={"content-type": "application/json"}), 413, "request body over"),
    ]
    for response, status, text in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert text in response.json()["error"], response.json()
    assert client.get("/models").status_code == 200


def test_a_huge_body_without_length_is_cut_off(client):
    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    r = client.post("/sql", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/models").status_code == 200


# --- safety -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "CREATE TABLE t AS SELECT 1",
    "INSERT INTO ratings VALUES (1, 2, 3, 4)",
    "DROP MODEL movie_rec",
    "CREATE MODEL m2 FROM ratings PREDICT movieId USING user_id = 'userId'",
    "ATTACH ':memory:' AS other",
    "SET threads = 1",
    "COPY ratings TO 'out.csv'",
    "EXPORT RECOMMENDATIONS movie_rec TO 'recs/' (FORMAT parquet)",
    "/* a comment */ -- and another\nCREATE TABLE t2 AS SELECT 1",
    "SELECT 1; DROP TABLE ratings",
    *BYPASSES,
])
def test_read_only_unless_write(client, sql):
    r = client.post("/sql", json={"sql": sql})
    assert r.status_code == 403, r.text
    assert "read-only" in r.json()["error"] and "--write" in r.json()["error"]


def test_bypasses_leave_the_database_and_its_settings_as_they_were(client):
    def state():
        sql = ("SELECT current_setting('memory_limit'), current_setting('threads'), "
               "current_setting('lock_configuration'), (SELECT count(*) FROM ratings), "
               "(SELECT list(table_name ORDER BY table_name) FROM duckdb_tables()), "
               "(SELECT list(database_name ORDER BY database_name) FROM duckdb_databases())")
        r = client.post("/sql", json={"sql": sql})
        assert r.status_code == 200, r.text
        return r.json()["rows"]

    before = state()
    for sql in BYPASSES:
        r = client.post("/sql", json={"sql": sql})
        assert r.status_code == 403, (sql, r.text)
        assert r.json()["error"].startswith(("SET under EXPLAIN", "LOAD under EXPLAIN", "INSERT", "CREATE", "SET",
                                             "PRAGMA", "CALL", "ATTACH", "LOAD")), r.json()
    assert state() == before
    # what the rule allows still runs: reads, and transaction control around them
    r = client.post("/sql", json={"sql": "BEGIN; SELECT count(*) FROM ratings"})
    assert r.status_code == 200 and r.json()["rows"] == [[720]]
    r = client.post("/sql", json={"sql": "EXPLAIN ANALYZE SELECT count(*) FROM ratings"})
    assert r.status_code == 200, r.text


def test_the_rule_guards_an_in_memory_database_duckdb_would_let_write(tmp_path):
    # ':memory:' cannot be opened read-only: the rule is all that stands between clients and it
    with Server(":memory:", port=0) as srv, httpx.Client(base_url=srv.url) as c:
        srv.service.con.execute("CREATE TABLE t AS SELECT 1 AS a")  # the operator's setup, in process
        for sql in ("WITH x AS (SELECT 2 AS a) INSERT INTO t SELECT a FROM x",
                    "EXPLAIN ANALYZE INSERT INTO t VALUES (3)", "CREATE TABLE u AS SELECT 1",
                    "EXPLAIN ANALYZE SET threads = 1"):
            r = c.post("/sql", json={"sql": sql})
            assert r.status_code == 403 and "read-only" in r.json()["error"], (sql, r.text)
        assert c.post("/sql", json={"sql": "SELECT list(a) FROM t"}).json()["rows"] == [[[1]]]
        assert c.post("/sql", json={"sql": "SELECT count(*) FROM duckdb_tables()"}).json()["rows"] == [[1]]


def test_a_write_server_runs_what_a_read_only_one_refuses(db, tmp_path):
    with Server(copy_of(db, tmp_path), port=0, settings=Settings(write=True)) as srv, \
            httpx.Client(base_url=srv.url) as c:
        r = c.post("/sql", json={"sql": "WITH x AS (SELECT 7 AS a) INSERT INTO ratings SELECT a, a, a, a FROM x"})
        assert r.status_code == 200, r.text
        assert c.post("/sql", json={"sql": "SELECT count(*) FROM ratings"}).json()["rows"] == [[721]]
        assert c.post("/sql", json={"sql": "EXPLAIN ANALYZE SET threads = 3"}).status_code == 200
        assert c.post("/sql", json={"sql": "SELECT current_setting('threads')"}).json()["rows"] == [[3]]


def test_external_access_is_off_even_with_write(db, tmp_path):
    with Server(copy_of(db, tmp_path), port=0, settings=Settings(write=True)) as srv:
        with httpx.Client(base_url=srv.url) as c:
            r = c.post("/sql", json={"sql": "SELECT * FROM read_csv('/etc/passwd')"})
            assert r.status_code == 403 and "Permission Error" in r.json()["error"]
            target = tmp_path / "out.csv"
            r = c.post("/sql", json={"sql": f"COPY ratings TO '{target}'"})
            assert r.status_code == 403 and not target.exists()
            recs = tmp_path / "recs"
            r = c.post("/sql", json={"sql": f"EXPORT RECOMMENDATIONS movie_rec TO '{recs}'"})
            assert r.status_code == 400 and "enable_external_access = false" in r.json()["error"]
            assert not recs.exists()
            r = c.post("/sql", json={"sql": "SET enable_external_access = true"})
            assert r.status_code >= 400
            assert c.post("/sql", json={"sql": "SELECT * FROM read_csv('/etc/passwd')"}).status_code == 403


def test_a_token_is_required_when_set(db):
    with Server(db, port=0, token="s3cret") as srv:
        assert httpx.get(srv.url + "/models").status_code == 401
        assert httpx.get(srv.url + "/models", headers={"Authorization": "Bearer nope"}).status_code == 403
        ok = httpx.get(srv.url + "/models", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and len(ok.json()) == 2


def test_other_hosts_than_loopback_need_a_token(db):
    with pytest.raises(ValueError, match="needs --token"):
        Server(db, host="0.0.0.0", port=0)


def test_row_limit(db):
    with Server(db, port=0, settings=Settings(max_rows=5)) as srv:
        body = httpx.post(srv.url + "/sql", json={"sql": "SELECT * FROM range(100)"}).json()
        assert body["row_count"] == 5 and body["truncated"] is True
        assert httpx.get(srv.url + "/models/movie_rec/recommend", params={"user": 1, "k": 6}).status_code == 400


@pytest.mark.slow
def test_time_limit_cancels_the_statement_and_the_server_goes_on(db):
    with Server(db, port=0, settings=Settings(timeout=0.5)) as srv:
        slow = "SELECT count(*) FROM range(3000000) a, range(3000000) b WHERE a.range + b.range = -1"
        r = httpx.post(srv.url + "/sql", json={"sql": slow}, timeout=30)
        assert r.status_code == 408 and "time limit" in r.json()["error"]
        assert httpx.get(srv.url + "/models/movie_rec/recommend", params={"user": 1}).status_code == 200


@pytest.mark.slow
def test_writes_through_the_server_are_served_at_the_new_version(db, tmp_path):
    with Server(copy_of(db, tmp_path), port=0, settings=Settings(write=True)) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as c:
        before = c.get("/models/movie_rec/recommend", params={"user": 1, "k": 3}).json()
        assert before["version"] == 1
        r = c.post("/sql", json={"sql": CREATE.replace("CREATE MODEL", "CREATE OR REPLACE MODEL")
                                 .replace("random_state = 7", "random_state = 8")})
        assert r.status_code == 200, r.text
        after = c.get("/models/movie_rec/recommend", params={"user": 1, "k": 3}).json()
        assert after["version"] == 2 and c.get("/models/movie_rec").json()["version"] == 2
        r = c.post("/sql", json={"sql": CREATE})
        assert r.status_code == 409 and "movie_rec" in r.json()["error"]
        assert c.post("/sql", json={"sql": "CREATE TABLE liked AS SELECT 1 AS x"}).status_code == 200


@pytest.mark.slow
def test_many_clients_at_once(client, server):
    failures: list[str] = []

    def work(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for i in range(10):
                user = 1 + (n * 10 + i) % 60
                r = c.get("/models/movie_rec/recommend", params={"user": user, "k": 3})
                if r.status_code != 200 or {x["userId"] for x in r.json()["recommendations"]} != {user}:
                    failures.append(r.text)
                bad = c.get("/models/movie_rec/recommend", params={"user": "x"})
                if bad.status_code != 400:
                    failures.append(bad.text)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# --- the command line ---------------------------------------------------------------------------


def test_serve_without_the_extra_says_what_to_install(db, monkeypatch):
    from click.testing import CliRunner

    from sqlrec.frontend.cli import cli

    monkeypatch.setitem(sys.modules, "fastapi", None)
    result = CliRunner().invoke(cli, ["serve", db], prog_name="sqlrec")
    assert result.exit_code == 1
    assert "pip install 'sqlrec[serve]'" in result.output


@pytest.mark.slow
def test_sqlrec_serve_command(db):
    with sqlrec_serve(db, "--token", "t0k") as (url, line):
        assert "read-only" in line
        r = httpx.get(url + "/models/movie_rec/recommend", params={"user": 3, "k": 2},
                      headers={"Authorization": "Bearer t0k"})
        assert r.status_code == 200 and len(r.json()["recommendations"]) == 2
    sqlrec_bin = Path(sys.executable).with_name("sqlrec")
    refused = subprocess.run([str(sqlrec_bin), "serve", db, "--host", "0.0.0.0", "--port", "0"],
                             capture_output=True, text=True, timeout=60, env={**os.environ, "SQLREC_TOKEN": ""})
    assert refused.returncode == 2 and "needs --token" in refused.stderr  # a usage error, naming --host
    assert ".traceback" not in refused.stderr


