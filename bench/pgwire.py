"""`sqlrec serve --pg-port` under load: 1,000 psycopg queries (single-user recommend), 0 errors.

Starts the real console script (`sqlrec serve DB --port 0 --pg-port 0`) on loopback over a
synthetic model, runs the recommend query with a server-side bound parameter from psycopg 3
(extended protocol: Parse/Bind/Describe/Execute; psycopg prepares it after 5 runs) on 1 and on
8 connections, and reports p50, p99, queries/s and errors against the same query in-process (a
cursor, warm) as the reference. Target (issue 12): 0 errors.

    python bench/pgwire.py [--users 20000 --items 20000 --queries 1000]
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serve import build, in_process, pct  # noqa: E402
from _common import machine  # noqa: E402

import psycopg  # noqa: E402

QUERY = "SELECT * FROM bench_rec WHERE user_id = %s USING n_recommendations = 10"


def drive(port: int, clients: int, total: int, users: int) -> tuple[float, list[float], int]:
    """`total` queries over `clients` connections at once: (seconds, latencies, errors)."""
    latencies: list[float] = []
    errors = [0]

    def client(n: int) -> None:
        with psycopg.connect(f"host=127.0.0.1 port={port} user=bench dbname=bench", autocommit=True) as conn:
            for i in range(total // clients):
                user = (n * 7919 + i * 104729) % users
                t0 = time.perf_counter()
                try:
                    ok = len(conn.execute(QUERY, [user]).fetchall()) == 10
                except psycopg.Error:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors[0] += not ok

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies, errors[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=1_000, help="per level (1 and 8 connections)")
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.duckdb")
        build(path, args.users, args.items)
        ref = in_process(path, args.users)
        exe = Path(sys.executable).with_name("sqlrec")
        proc = subprocess.Popen([str(exe), "serve", path, "--port", "0", "--pg-port", "0"],
                                stderr=subprocess.PIPE, text=True)
        try:
            port = int(re.search(r"postgresql://\S+:(\d+)", proc.stderr.readline()).group(1))
            drive(port, 8, 80, args.users)  # warm: the model loaded and cached
            rows = []
            for clients in (1, 8):
                seconds, lat, errors = drive(port, clients, args.queries, args.users)
                rows.append((clients, len(lat), len(lat) / seconds, pct(lat, 0.5), pct(lat, 0.99), errors))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    print(f"\nin-process p50 (cursor, warm): {ref:.2f} ms\n")
    print("| connections | queries | queries/s | p50 ms | p99 ms | p50 vs in-process | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for c, n, qps, p50, p99, err in rows:
        print(f"| {c} | {n} | {qps:.0f} | {p50:.2f} | {p99:.2f} | {p50 / ref:.2f}x | {err} |")
    errors = sum(r[5] for r in rows)
    print(f"\n- {'PASS' if errors == 0 else 'FAIL'}: {errors} errors over {sum(r[1] for r in rows)} "
          "psycopg queries (target 0)")


if __name__ == "__main__":
    main()
