"""The cheap recommend request: the short way past FastAPI answers what the route answers, warm
cursors carry nothing from one request to the next, and one time-limit thread serves them all.

A real uvicorn server on a loopback port over a real DuckDB file with a trained model; real
httpx clients; real cursors for the watchdog.
"""

from __future__ import annotations

import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from conftest import FAST, file_database  # noqa: E402
import sqlrec  # noqa: E402
from sqlrec import errors  # noqa: E402
from sqlrec.serve.http import fast_recommend_args  # noqa: E402
from sqlrec.serve.server import Server  # noqa: E402
from sqlrec.serve.service import Watchdog  # noqa: E402

CREATE = ("CREATE MODEL movie_rec FROM ratings PREDICT movieId "
          f"USING user_id = 'userId', rating = 'rating', threshold = 4, {FAST}")
SLOW = "SELECT count(*) FROM range(3000000) a, range(3000000) b WHERE a.range + b.range = -1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("cheap") / "shop.duckdb"
    file_database(path, CREATE).close()
    with Server(str(path), port=0) as srv:
        yield srv


def scope(query: str, path: str = "/models/m/recommend", method: str = "GET") -> dict:
    return {"type": "http", "method": method, "path": path, "query_string": query.encode(), "root_path": ""}


def test_only_the_plain_form_takes_the_short_way():
    assert fast_recommend_args(scope("user=1&k=10")) == {
        "name": "m", "user": "1", "item": None, "kind": None, "k": 10, "exclude_seen": None}
    assert fast_recommend_args(scope("item=7&kind=item_item&exclude_seen=false"))["exclude_seen"] is False
    # everything FastAPI's validation must see (its errors are the answers) goes the long way
    for query in ("user=1&k=0", "user=1&k=-1", "user=1&k=abc", "user=1&k=010", "user=1&user=2",
                  "user=1&item=2", "k=3", "user=", "user=1&exclude_seen=yes", "user=1&limit=3"):
        assert fast_recommend_args(scope(query)) is None, query
    assert fast_recommend_args(scope("user=1", method="POST")) is None
    assert fast_recommend_args(scope("user=1", path="/models/m/recommend/x")) is None
    assert fast_recommend_args(scope("user=1", path="/models/m")) is None


@pytest.mark.parametrize("query", [
    {"user": 1, "k": 4}, {"item": 1, "k": 3}, {"user": 1, "kind": "user_user", "k": 2},
    {"user": "abc"}, {"user": 1, "kind": "bogus"}, {"user": 1, "k": 20000}, {"user": 999999999, "k": 2},
])
def test_the_short_way_answers_the_bytes_the_route_answers(server, query):
    # exclude_seen=true takes the short way; exclude_seen=1 (the same value to FastAPI's bool) the
    # FastAPI route: status, headers that matter and body must be the same
    with httpx.Client(base_url=server.url, timeout=30) as c:
        fast = c.get("/models/movie_rec/recommend", params={**query, "exclude_seen": "true"})
        routed = c.get("/models/movie_rec/recommend", params={**query, "exclude_seen": "1"})
    assert fast.status_code == routed.status_code
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert fast.content == routed.content


def test_errors_on_the_short_way_are_json_with_their_status(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        missing = c.get("/models/nope/recommend", params={"user": 1})
        assert missing.status_code == 404
        assert missing.json()["type"] == "ModelNotFoundError" and "nope" in missing.json()["error"]
        bad = c.get("/models/movie_rec/recommend", params={"user": "abc"})
        assert bad.status_code == 400 and "abc" in bad.json()["error"]


def test_failed_requests_leave_the_next_ones_on_warm_cursors_unharmed(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        first = c.get("/models/movie_rec/recommend", params={"user": 1, "k": 5}).json()
        for _ in range(3):
            assert c.get("/models/movie_rec/recommend", params={"user": "abc"}).status_code == 400
            assert c.get("/models/movie_rec/recommend", params={"user": 1, "kind": "bogus"}).status_code == 400
            again = c.get("/models/movie_rec/recommend", params={"user": 1, "k": 5})
            assert again.status_code == 200 and again.json() == first
    # cursors are kept for reuse: sequential requests do not open one each
    assert len(server.service._idle) == 1


def test_one_watchdog_interrupts_each_cursor_at_its_own_deadline():
    con = sqlrec.connect(":memory:")
    late_cur, early_cur = con.cursor(), con.cursor()
    dog = Watchdog()
    outcome: dict[str, object] = {}

    def run(name, cur, deadline):
        watch = dog.watch(cur, deadline)
        started = time.monotonic()
        try:
            cur.execute(SLOW)
            outcome[name] = "finished"
        except errors.Cancelled:
            outcome[name] = time.monotonic() - started
        finally:
            dog.forget(watch)

    try:
        # the far deadline first, then a nearer one: the sleeping thread must wake for it
        far = threading.Thread(target=run, args=("far", late_cur, time.monotonic() + 4.0))
        far.start()
        time.sleep(0.2)
        run("near", early_cur, time.monotonic() + 0.3)
        far.join(30)
        assert isinstance(outcome["near"], float) and outcome["near"] < 2.5, outcome
        assert isinstance(outcome["far"], float) and outcome["far"] >= 3.5, outcome
        # forgotten cursors are not interrupted afterwards: the next statement on each runs
        assert early_cur.execute("SELECT 42").fetchall() == [(42,)]
        assert late_cur.execute("SELECT 43").fetchall() == [(43,)]
    finally:
        dog.stop()
        con.close()
