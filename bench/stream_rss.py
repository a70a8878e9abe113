"""Peak RSS of ``CREATE TABLE recs AS SELECT * FROM m`` over every user, streamed (this tree)
against another checkout (--tree, e.g. before streaming), each in a fresh process (issue 13, item 2).

The model: 200,000 users x 5,000 items (600k interactions, popularity engine: its scoring is
cheap, so the rows, not the factors, dominate memory), 100 recommendations each = 20M rows.
Reported: peak RSS added by the statement (ru_maxrss after minus RSS before), and the Arrow size
of the rows (what the materialised path holds on top of DuckDB's copy).

    python bench/stream_rss.py [--tree /work/main] [--users 200000 --k 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402

CODE = """
import json, resource, time, sqlrec
con = sqlrec.connect()
con.execute(f"CREATE TABLE big AS SELECT i % {USERS} AS u, (i * 7919) % 5000 AS it FROM range({3 * USERS}) t(i)")
con.execute("CREATE MODEL pop FROM big PREDICT it USING user_id = 'u', engine = 'popularity'")
con.execute("SELECT * FROM pop WHERE u = 1").fetchall()
rss0 = int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) * 1024
t0 = time.perf_counter()
con.execute(f"CREATE TABLE recs AS SELECT * FROM pop USING n_recommendations = {K}")
s = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
rows = con.execute("SELECT count(*) FROM recs").fetchone()[0]
print(json.dumps({"s": s, "peak_added": peak - rss0, "rows": rows}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", help="another checkout to compare with")
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--k", type=int, default=100)
    a = ap.parse_args()
    trees = {"this tree (streamed)": os.getcwd(), **({f"{a.tree}": a.tree} if a.tree else {})}
    out = {}
    for name, tree in trees.items():
        res = subprocess.run([sys.executable, "-c", f"USERS, K = {a.users}, {a.k}\n{CODE}"], capture_output=True,
                             text=True, check=True, env=dict(os.environ, PYTHONPATH=tree)).stdout
        out[name] = json.loads(res.strip().splitlines()[-1])
    arrow_mb = next(iter(out.values()))["rows"] * (8 + 8 + 4 + 4) / 1e6
    print(f"# CREATE TABLE AS over every user — {machine()} | load {os.getloadavg()[0]:.2f}")
    print(f"# {a.users:,} users x {a.k} recommendations = {next(iter(out.values()))['rows']:,} rows "
          f"(~{arrow_mb:.0f} MB as Arrow)")
    print("| tree | seconds | peak RSS added MB |\n|---|---:|---:|")
    for name, r in out.items():
        print(f"| {name} | {r['s']:.2f} | {r['peak_added'] / 1e6:.0f} |")


if __name__ == "__main__":
    main()
