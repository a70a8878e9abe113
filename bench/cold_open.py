"""Cold open: a fresh process's first recommendation from a stored LightFM model at ML-25M shape
(162,541 users x 59,047 items, 64 components), against reading the scoring arrays alone (issue 13, item 3).

The model file is made once (--make): CREATE MODEL over synthetic interactions (bench/synth.py)
with one epoch; its arrays have the full shape (embeddings, biases, adagrad state, seen pairs).
Each lane then runs in a fresh subprocess, so nothing is cached but the OS page cache (warmed
by a first untimed run of each lane):
  (ref) raw duckdb: connect and fetch the blobs sqlrec needs for scoring (no sqlrec import).
  (sqlrec) sqlrec.connect + SELECT * FROM m WHERE userId = 1, fetched.
`--tree DIR` runs the sqlrec lane on another checkout too (before / after).
Seconds from connect to the answer (imports not counted, reported apart); RSS added since connect.
Targets: sqlrec <= 2x (ref) in time and RSS after the answer <= 2x the scoring arrays' bytes.

    python bench/cold_open.py --make /tmp/ml25m.duckdb   # once, minutes
    python bench/cold_open.py --path /tmp/ml25m.duckdb [--tree /work/main] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402

TRAINING_ONLY = [f"h.{s}_{p}" for s in ("user", "item") for p in
                 ("embedding_gradients", "embedding_momentum", "bias_gradients", "bias_momentum")]

_RSS = "int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) * 1024"
REF = f"""
import time, duckdb, numpy as np
rss0 = {_RSS}; t0 = time.perf_counter()
con = duckdb.connect(PATH, read_only=True)
rows = con.execute("SELECT name, data FROM sqlrec.arrays WHERE version = (SELECT max(version) FROM sqlrec.models) "
                   "AND list_position(?, name) IS NULL", [{TRAINING_ONLY!r}]).fetchall()
arrays = {{n: np.frombuffer(d, np.uint8) for n, d in rows}}
t1 = time.perf_counter()
print(json.dumps({{"s": t1 - t0, "rss": {_RSS} - rss0, "bytes": sum(a.nbytes for a in arrays.values())}}))
"""
SQLREC = f"""
import time
ti = time.perf_counter(); import sqlrec; ti = time.perf_counter() - ti
rss0 = {_RSS}; t0 = time.perf_counter()
con = sqlrec.connect(PATH, read_only=True)
got = con.execute("SELECT * FROM m WHERE user_id = 1").fetchall()
t1 = time.perf_counter()
assert len(got) == 10, got
print(json.dumps({{"s": t1 - t0, "rss": {_RSS} - rss0, "import_s": ti}}))
"""


def lane(code: str, path: str, tree: str | None) -> dict:
    env = dict(os.environ, PYTHONPATH=tree or os.getcwd())
    # cwd too: `python -c` puts the working directory ahead of PYTHONPATH on sys.path, so run from
    # this tree a --tree lane imported this tree's sqlrec (found by bench/stream_rss.py).
    out = subprocess.run([sys.executable, "-c", f"import json; PATH = {os.path.abspath(path)!r}\n{code}"], env=env,
                         cwd=tree or os.getcwd(), capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def make(path: str) -> None:
    import sqlrec
    from synth import create_interactions
    con = sqlrec.connect(path)
    n = create_interactions(con, "inter", 162_541, 59_047, 10)
    con.execute("CREATE MODEL m FROM inter PREDICT item_id USING user_id = 'user_id', epochs = 1, "
                "no_components = 64, verbose = false")
    print(f"{path}: {n:,} interactions, {con.execute('SELECT * FROM m.versions').fetchall()[0][6:8]} users/items")
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--make", help="write the model file here and stop")
    ap.add_argument("--path", default="/tmp/ml25m.duckdb")
    ap.add_argument("--tree", help="another checkout to time the sqlrec lane on (e.g. before a change)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.make:
        return make(a.make)
    lanes = {"(ref) raw duckdb: read the scoring arrays": (REF, None),
             "(sqlrec) connect + first recommendation": (SQLREC, None)}
    if a.tree:
        lanes[f"(sqlrec) same, tree {a.tree}"] = (SQLREC, a.tree)
    for code, tree in lanes.values():  # warm the page cache: cold processes, not a cold disk
        lane(code, a.path, tree)
    runs: dict[str, list[dict]] = {name: [] for name in lanes}
    for _ in range(a.repeats):
        for name, (code, tree) in lanes.items():
            runs[name].append(lane(code, a.path, tree))
    ref = runs[next(iter(lanes))]
    t_ref, nbytes = min(r["s"] for r in ref), ref[0]["bytes"]
    print(f"# Cold open, fresh processes — {machine()} | load {os.getloadavg()[0]:.2f}")
    print(f"# {a.path} ({os.path.getsize(a.path) / 1e6:.0f} MB file), scoring arrays {nbytes / 1e6:.0f} MB; "
          f"min / median of {a.repeats}, lanes interleaved")
    print("| lane | min s | median s | vs ref | RSS added MB (min) | vs scoring arrays | import s |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for name, rs in runs.items():
        t, rss = min(r["s"] for r in rs), min(r["rss"] for r in rs)
        imp = f"{min(r['import_s'] for r in rs):.2f}" if "import_s" in rs[0] else "-"
        print(f"| {name} | {t:.2f} | {statistics.median(r['s'] for r in rs):.2f} | {t / t_ref:.2f}x | "
              f"{rss / 1e6:.0f} | {rss / nbytes:.2f}x | {imp} |")
    ours = runs["(sqlrec) connect + first recommendation"]
    t, rss = min(r["s"] for r in ours), min(r["rss"] for r in ours)
    for ok, text in ((t <= 2 * t_ref, f"first recommendation {t / t_ref:.2f}x reading the arrays (target <= 2x)"),
                     (rss <= 2 * nbytes, f"RSS {rss / nbytes:.2f}x the scoring arrays (target <= 2x)")):
        print(f"{'PASS' if ok else 'FAIL'}: {text}")


if __name__ == "__main__":
    main()
