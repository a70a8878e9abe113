"""What a recommend request costs the server, against the same recommend on an in-process cursor.

Starts the real console script (`sqlrec serve DB --port 0`) over a file with a MovieLens-sample
model, sends 1,000 sequential `GET /models/rec/recommend?user=..&k=10` from this process (httpx),
and reads the SERVER's CPU time (utime + stime from /proc/PID/stat) before and after, so the
client's own cost does not count. The reference is the CPU time (time.process_time) of the same
recommend, 1,000 times, on a warm in-process cursor (`cur.recommend(...)`, what the endpoint
calls). Target: server CPU per request at most 1.5x the in-process recommend's.

    python bench/serve_cpu.py [--requests 1000] [--rounds 3] [--pgwire] [--profile out.prof]

--pgwire measures the PostgreSQL front instead: psycopg sends the planned query
`SELECT * FROM rec WHERE userId = %s USING n_recommendations = 10` (prepared after psycopg's
5 runs), against the same statement on a warm in-process cursor.

--profile runs the Server in this process under cProfile instead (for finding where it goes).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402

import httpx  # noqa: E402

import sqlrec  # noqa: E402

CREATE = ("CREATE MODEL rec FROM ratings PREDICT movieId "
          "USING user_id = 'userId', rating = 'rating', threshold = 4, random_state = 7")


def build(path: str) -> list[int]:
    from sqlrec.frontend.demo import load_movielens

    con = sqlrec.connect(path)
    load_movielens(con)
    con.execute(CREATE)
    users = [r[0] for r in con.execute("SELECT DISTINCT userId FROM ratings ORDER BY 1").fetchall()]
    con.close()
    return users


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3): utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(path: str, users: list[int], n: int) -> float:
    """CPU seconds per recommend on a warm in-process cursor."""
    con = sqlrec.connect(path, read_only=True)
    cur = con.cursor()
    for u in users[:50]:  # warm: model loaded and cached
        cur.recommend("rec", users=[u], k=10).fetchall()
    t0 = time.process_time()
    for i in range(n):
        cur.recommend("rec", users=[users[i % len(users)]], k=10).fetchall()
    spent = time.process_time() - t0
    con.close()
    return spent / n


def requests(client: httpx.Client, users: list[int], n: int) -> None:
    for i in range(n):
        r = client.get("/models/rec/recommend", params={"user": users[i % len(users)], "k": 10})
        if r.status_code != 200 or len(r.json()["recommendations"]) != 10:
            raise SystemExit(f"bad answer: {r.status_code} {r.text[:200]}")


def served(path: str, users: list[int], n: int) -> float:
    """Server CPU seconds per request, the real `sqlrec serve` in its own process."""
    exe = Path(sys.executable).with_name("sqlrec")
    proc = subprocess.Popen([str(exe), "serve", path, "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"on (http://\S+) ", proc.stderr.readline()).group(1)
        with httpx.Client(base_url=url, timeout=60) as client:
            requests(client, users, 100)  # warm: model cached, thread pool started
            before = cpu_seconds(proc.pid)
            requests(client, users, n)
            return (cpu_seconds(proc.pid) - before) / n
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


PG_QUERY = "SELECT * FROM rec WHERE userId = {} USING n_recommendations = 10"


def in_process_sql(path: str, users: list[int], n: int) -> float:
    """CPU seconds per recommend query (SQL, a bound parameter) on a warm in-process cursor."""
    con = sqlrec.connect(path, read_only=True)
    cur = con.cursor()
    for u in users[:50]:
        cur.execute(PG_QUERY.format("?"), [u]).fetchall()
    t0 = time.process_time()
    for i in range(n):
        cur.execute(PG_QUERY.format("?"), [users[i % len(users)]]).fetchall()
    spent = time.process_time() - t0
    con.close()
    return spent / n


def served_pg(path: str, users: list[int], n: int) -> float:
    """Server CPU seconds per query over pgwire (psycopg, one connection, sequential)."""
    import psycopg

    exe = Path(sys.executable).with_name("sqlrec")
    proc = subprocess.Popen([str(exe), "serve", path, "--port", "0", "--pg-port", "0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r"postgresql://\S+:(\d+)", proc.stderr.readline()).group(1))
        with psycopg.connect(f"host=127.0.0.1 port={port} user=bench dbname=bench", autocommit=True) as conn:
            def queries(count: int) -> None:
                for i in range(count):
                    rows = conn.execute(PG_QUERY.format("%s"), [users[i % len(users)]]).fetchall()
                    if len(rows) != 10:
                        raise SystemExit(f"bad answer: {rows[:3]}")
            queries(100)  # warm: model cached, the statement prepared
            before = cpu_seconds(proc.pid)
            queries(n)
            return (cpu_seconds(proc.pid) - before) / n
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def profile(path: str, users: list[int], n: int, out: str) -> None:
    """The Server in this process under cProfile: one profiler per server thread (the event loop's
    and the thread pool's, each started by threading.setprofile's hook), merged."""
    import cProfile
    import pstats
    import threading

    from sqlrec.serve.server import Server

    profiles: list[cProfile.Profile] = []

    def start(*_: object) -> None:
        sys.setprofile(None)
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()

    threading.setprofile(start)
    with Server(path, port=0) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        requests(client, users, 100)  # warm; its share is small against n requests
        requests(client, users, n)
    threading.setprofile(None)
    stats = pstats.Stats()
    for prof in profiles:
        prof.create_stats()
        if prof.stats:  # a thread that ran nothing has no stats, and Stats refuses it
            stats.add(prof)
    stats.dump_stats(out)
    stats.sort_stats("tottime").print_stats(45)
    stats.sort_stats("cumulative").print_stats(60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3, help="server and in-process runs, interleaved")
    ap.add_argument("--pgwire", action="store_true", help="the PostgreSQL front instead of HTTP")
    ap.add_argument("--profile", help="write a cProfile of an in-process Server here instead")
    args = ap.parse_args()
    print(machine())
    print("uptime:", os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "ml.duckdb")
        users = build(path)
        if args.profile:
            profile(path, users, args.requests, args.profile)
            return
        ratios = []
        for r in range(args.rounds):
            if args.pgwire:
                ref = in_process_sql(path, users, args.requests)
                srv = served_pg(path, users, args.requests)
            else:
                ref = in_process(path, users, args.requests)
                srv = served(path, users, args.requests)
            ratios.append(srv / ref)
            print(f"round {r + 1}: server {srv * 1000:.2f} ms CPU/request, in-process {ref * 1000:.2f} ms "
                  f"CPU/recommend, ratio {srv / ref:.2f}x  (load {os.getloadavg()[0]:.2f})")
    best = min(ratios)
    print(f"- {'PASS' if best <= 1.5 else 'FAIL'}: best ratio {best:.2f}x, median "
          f"{sorted(ratios)[len(ratios) // 2]:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
