"""Threads, cursors, cancellation and crashes: what a running statement can count on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import sqlrec
from sqlrec import errors
from sqlrec.numeric.scoring import top_k
from conftest import FAST, file_database


def test_interrupt_reaches_the_running_statement_whatever_other_cursors_do(trained):
    """con.interrupt() cancels the statement running now; another cursor starting a statement
    afterwards no longer resets it (the flag was shared and cleared by every execute)."""
    before = trained.execute("SELECT version FROM sqlrec.models").fetchall()
    failure: list[BaseException] = []

    def train() -> None:
        cur = trained.cursor()
        try:
            cur.execute("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId "
                        "USING user_id = 'userId', epochs = 100000, num_threads = 1, verbose = false")
        except BaseException as exc:  # noqa: BLE001 - checked below
            failure.append(exc)

    worker = threading.Thread(target=train)
    worker.start()
    time.sleep(0.5)
    trained.interrupt()
    other = trained.cursor()
    other.execute("SELECT count(*) FROM ratings").fetchall()  # a statement started after the interrupt
    worker.join(60)
    assert not worker.is_alive(), "training did not stop"
    assert len(failure) == 1 and isinstance(failure[0], errors.Cancelled)
    assert trained.execute("SELECT version FROM sqlrec.models").fetchall() == before
    # a statement that starts after the interrupt runs normally
    assert len(trained.execute("SELECT * FROM movie_rec WHERE userId = 1").fetchall()) == 10


def test_scoring_stops_between_chunks():
    rng = np.random.default_rng(0)
    q, t = rng.normal(size=(5_000, 8)).astype(np.float32), rng.normal(size=(2_000, 8)).astype(np.float32)
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 3

    with pytest.raises(errors.Cancelled, match="cancelled while scoring"):
        top_k(q, None, t, None, 10, max_chunk_bytes=200 * 2_000 * 4, num_threads=1, cancelled=cancelled)
    assert len(asked) == 4, "no chunk is scored after the flag is set"
    idx, _ = top_k(q, None, t, None, 10, cancelled=lambda: False)
    assert idx.shape == (5_000, 10)


@pytest.mark.slow
def test_interrupt_stops_a_long_recommend_through_sql():
    con = sqlrec.connect()
    con.execute("CREATE TABLE big AS SELECT i % 200000 AS u, (i * 7919) % 5000 AS it FROM range(600000) t(i)")
    con.execute("CREATE MODEL pop FROM big PREDICT it USING user_id = 'u', engine = 'popularity'")
    threading.Timer(0.3, con.interrupt).start()
    started = time.perf_counter()
    with pytest.raises(errors.Cancelled):
        con.execute("SELECT count(*) FROM pop USING n_recommendations = 50, max_scored = 0").fetchall()
    assert time.perf_counter() - started < 5
    assert con.execute("SELECT count(*) FROM pop WHERE u = 3").fetchone() == (10,)  # still serving


def test_a_cursor_shared_by_two_threads_fails_clearly(trained):
    cur = trained.cursor()
    cur.execute("SELECT * FROM movie_rec WHERE userId = 1")
    seen: list[BaseException] = []

    def other_thread() -> None:
        try:
            cur.fetchall()
        except BaseException as exc:  # noqa: BLE001
            seen.append(exc)

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert len(seen) == 1 and isinstance(seen[0], errors.ProgrammingError)
    assert "another thread" in str(seen[0]) and "con.cursor()" in str(seen[0])
    assert len(cur.fetchall()) == 10  # the thread that ran it still reads its own rows


def test_concurrent_statements_on_one_cursor_never_swap_results(trained):
    cur = trained.cursor()
    outcomes = {"ok": 0, "refused": 0, "wrong": 0, "raw": 0}
    lock = threading.Lock()

    def worker(user: int) -> None:
        for _ in range(30):
            try:
                rows = cur.execute("SELECT userId FROM movie_rec WHERE userId = ?", [user]).fetchall()
                kind = "ok" if {r[0] for r in rows} == {user} else "wrong"
            except errors.ProgrammingError:
                kind = "refused"
            except BaseException:  # noqa: BLE001 - counted: must stay 0
                kind = "raw"
            with lock:
                outcomes[kind] += 1

    threads = [threading.Thread(target=worker, args=(u,)) for u in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes["wrong"] == 0 and outcomes["raw"] == 0 and outcomes["ok"] > 0


def test_queries_racing_a_replace_on_other_cursors(tmp_path):
    con = file_database(tmp_path / "race.duckdb",
                        f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    raw: list[BaseException] = []
    stop = threading.Event()

    def query() -> None:
        cur = con.cursor()
        while not stop.is_set():
            try:
                assert len(cur.execute("SELECT * FROM movie_rec WHERE userId = 2").fetchall()) == 10
            except errors.Error:
                pass  # a clear sqlrec error (e.g. a write conflict) is allowed; a raw one is not
            except BaseException as exc:  # noqa: BLE001
                raw.append(exc)

    readers = [threading.Thread(target=query) for _ in range(2)]
    for t in readers:
        t.start()
    writer = con.cursor()
    for _ in range(5):
        writer.execute(f"CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    stop.set()
    for t in readers:
        t.join()
    assert raw == []
    assert con.execute("SELECT max(version) FROM sqlrec.models").fetchone() == (6,)
    con.close()


def test_register_after_an_unfetched_model_statement(con):
    import pandas as pd

    con.execute(f"CREATE MODEL m FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")  # not fetched
    con.register("extra", pd.DataFrame({"x": [1, 2]}))
    assert con.execute("SELECT sum(x) FROM extra").fetchone() == (3,)


KILL_SCRIPT = """
import sqlrec, sys
con = sqlrec.connect(sys.argv[1])
print("ready", flush=True)
while True:
    con.execute("CREATE OR REPLACE MODEL movie_rec FROM ratings PREDICT movieId "
                "USING user_id = 'userId', epochs = 5, no_components = 8, verbose = false")
"""


@pytest.mark.slow
def test_kill_9_during_saves_leaves_one_intact_version(tmp_path):
    path = tmp_path / "crash.duckdb"
    con = file_database(path, f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    query = "SELECT * FROM movie_rec WHERE userId IN (1, 2) ORDER BY userId, rank"
    con.close()
    rng = np.random.default_rng(0)
    for delay in rng.uniform(0.2, 1.5, 6):
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "TQDM_DISABLE": "1"})
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        con = sqlrec.connect(str(path))
        active = con.execute("SELECT count(*) FROM sqlrec.models WHERE active").fetchone()[0]
        version = con.execute("SELECT version FROM sqlrec.models WHERE active").fetchone()[0]
        n_arrays = con.execute("SELECT count(DISTINCT version) FROM sqlrec.arrays").fetchone()[0]
        rows = con.execute(query).fetchall()
        con.close()
        # keep_versions (default 3) versions keep their arrays for rollback; never more
        assert active == 1 and 1 <= n_arrays <= 3 and len(rows) == 20, (delay, version)


FULL_DISK_SCRIPT = """
import resource, signal, sys
import sqlrec
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing us
con = sqlrec.connect(sys.argv[1])
size = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
try:
    con.execute("CREATE OR REPLACE MODEL movie_rec FROM (SELECT userId, movieId FROM ratings, range(40)) "
                "PREDICT movieId USING user_id = 'userId', epochs = 1, no_components = 512, verbose = false")
    print("saved")
except sqlrec.Error as exc:
    print("sqlrec error:", type(exc).__name__, str(exc).splitlines()[0])
except BaseException as exc:
    print("raw error:", type(exc).__module__, type(exc).__name__, exc)
"""


@pytest.mark.slow
def test_a_full_disk_is_a_clear_error_and_keeps_the_previous_version(tmp_path):
    path = tmp_path / "full.duckdb"
    con = file_database(path, f"CREATE MODEL movie_rec FROM ratings PREDICT movieId USING user_id = 'userId', {FAST}")
    query = "SELECT * FROM movie_rec WHERE userId IN (1, 2) ORDER BY userId, rank"
    before = con.execute(query).fetchall()
    con.execute("CHECKPOINT")
    con.close()
    size = 64 << 10  # the largest file offset a write may reach: the WAL fills up before the save ends
    out = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(path), str(size)], capture_output=True,
                         text=True, env={**os.environ, "TQDM_DISABLE": "1"}, timeout=120)
    assert out.stdout.startswith("sqlrec error:"), out.stdout + out.stderr
    con = sqlrec.connect(str(path))
    assert con.execute("SELECT count(*), max(version) FROM sqlrec.models WHERE active").fetchone() == (1, 1)
    assert con.execute(query).fetchall() == before
    con.close()
