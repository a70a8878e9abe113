"""Where the memory of ``CREATE TABLE recs AS SELECT * FROM m`` over every user goes: sqlrec
streamed against sqlrec materialised, and DuckDB alone inserting the same rows from one Arrow
table against a RecordBatchReader (issue 13, item 2). Every lane runs in a fresh process.

The rows: --users users x --k recommendations (200,000 x 100 = 20M rows; key BIGINT, target
BIGINT, score FLOAT, rank INTEGER: 24 bytes a row as Arrow, ~480 MB). sqlrec lanes score them
with the popularity engine (cheap scoring, so the rows, not the factors, dominate memory); the
DuckDB lanes build the same columns with numpy in batches of 32,768 keys (3.3M rows).
sqlrec lanes: streamed (CREATE TABLE AS over the model), materialised (the reference in a CTE,
or inside BEGIN ... COMMIT: sqlrec.exec.streaming then builds all rows first), and other checkouts
(--tree: two lanes each, run from that tree so that it, not this one, is imported).

Peak RSS: the larger of the kernel's high-water mark (VmHWM, reset through /proc/self/clear_refs
just before the statement) and VmRSS read every ms by another process. tracemalloc does not see
DuckDB's allocations, and a sampling thread here misses what happens while DuckDB holds the GIL.
In MB over the RSS before:
  peak   the peak of the statement (and, materialised, of building the rows);
  table  RSS after the statement, the Arrow rows released: what DuckDB keeps (the new table);
  extra  peak - table: what the statement held on top of the table it leaves.
Lanes run with DuckDB's default preserve_insertion_order = true and, marked "pio off", false.

    python bench/stream_rss.py [--users 200000 --k 100] [--only duckdb|sqlrec] [--tree DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402

SAMPLE = """
import os, signal, sys, time
pid, out, samples = int(sys.argv[1]), sys.argv[2], []
def done(*_):
    with open(out, 'w') as f:
        f.write(''.join(f'{t} {r}\\n' for t, r in samples))
    os._exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    with open(f'/proc/{pid}/status') as f:
        samples.append((time.monotonic(), int(next(l for l in f if l.startswith('VmRSS')).split()[1]) * 1024))
    time.sleep(0.001)
"""

SAMPLER = """
import json, os, threading, time
import numpy as np, pyarrow as pa

def status(key):
    with open('/proc/self/status') as f:
        return int(next(l for l in f if l.startswith(key)).split()[1]) * 1024

def rss():
    return status('VmRSS')

class Peak:
    # Two lower bounds of the statement's peak RSS, the larger reported. (1) Another process reads
    # /proc/PID/status every ms: a thread here would need the GIL, which DuckDB holds while it
    # scans Python's Arrow objects. (2) The kernel's high-water mark (VmHWM, reset by clear_refs):
    # it catches short spikes, but misses memory freed by madvise (glibc's per-thread arenas).
    def __init__(self):
        import subprocess, sys, tempfile
        self.file = tempfile.mktemp()
        self.proc = subprocess.Popen([sys.executable, '-c', SAMPLE, str(os.getpid()), self.file])
        time.sleep(0.3)
    def start(self):
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        self.t0 = time.monotonic()
    def stop(self):
        t1, hwm = time.monotonic(), status('VmHWM')
        self.proc.terminate(); self.proc.wait()
        with open(self.file) as f:
            sampled = [int(r) for t, r in (l.split() for l in f) if self.t0 <= float(t) <= t1]
        os.unlink(self.file)
        self.sampled, self.hwm = max(sampled, default=0), hwm
        return max(hwm, self.sampled)

def batches(users, k, keys=32_768):
    # The rows sqlrec's stream yields, batch by batch: (key, target, score, rank) by key then rank.
    rng = np.random.default_rng(0)
    for a in range(0, users, keys):
        n = min(keys, users - a) * k
        yield pa.record_batch({
            "u": pa.array(np.repeat(np.arange(a, a + n // k, dtype=np.int64), k)),
            "it": pa.array(rng.integers(0, 5000, n, dtype=np.int64)),
            "score": pa.array(rng.random(n, dtype=np.float32)),
            "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n // k))})

def report(base, peak, t, rows):
    import gc; gc.collect()
    print(json.dumps({"s": t, "peak": peak - base, "table": rss() - base, "rows": rows,
                      "sampled": sampler.sampled - base, "hwm": sampler.hwm - base}))
"""

DUCKDB = """
import duckdb
con = duckdb.connect()
con.execute(f"SET preserve_insertion_order = {PIO}")
sampler = Peak()
base = rss(); sampler.start(); t0 = time.perf_counter()
if SOURCE == "table":
    rows = pa.Table.from_batches(list(batches(USERS, K)))   # what a materialised path holds
else:
    rows = pa.RecordBatchReader.from_batches(next(batches(1, K)).schema, batches(USERS, K))
con.register("rows", rows)
con.execute("CREATE TABLE recs AS SELECT * FROM rows")
t = time.perf_counter() - t0; peak = sampler.stop()
con.unregister("rows"); del rows
report(base, peak, t, con.execute("SELECT count(*) FROM recs").fetchone()[0])
"""

SQLREC = """
import sqlrec
if BATCH:  # keys per streamed batch (read by sqlrec.exec.queries at each statement)
    from sqlrec.exec import streaming
    streaming.BATCH_KEYS = BATCH
con = sqlrec.connect()
con.execute(f"CREATE TABLE big AS SELECT i % {USERS} AS u, (i * 7919) % 5000 AS it FROM range({3 * USERS}) t(i)")
con.execute("CREATE MODEL pop FROM big PREDICT it USING user_id = 'u', engine = 'popularity'")
con.execute("SELECT * FROM pop WHERE u = 1").fetchall()
con.execute(f"SET preserve_insertion_order = {PIO}")
sampler = Peak()
base = rss(); sampler.start(); t0 = time.perf_counter()
query = f"SELECT * FROM pop USING n_recommendations = {K}"
if SOURCE == "transaction":   # inside a transaction sqlrec builds the rows first (sqlrec.exec.streaming)
    con.execute("BEGIN")
if SOURCE == "cte":   # so does a reference in a CTE (DuckDB may scan one twice)
    con.execute(f"CREATE TABLE recs AS WITH r AS ({query}) SELECT * FROM r")
else:
    con.execute(f"CREATE TABLE recs AS {query}")
if SOURCE == "transaction":
    con.execute("COMMIT")
t = time.perf_counter() - t0; peak = sampler.stop()
report(base, peak, t, con.execute("SELECT count(*) FROM recs").fetchone()[0])
"""

LANES = {  # name: (code, source, preserve_insertion_order, keys per streamed batch or 0 for the default)
    "duckdb alone, one Arrow table": (DUCKDB, "table", "true", 0),
    "duckdb alone, RecordBatchReader": (DUCKDB, "reader", "true", 0),
    "duckdb alone, one Arrow table, pio off": (DUCKDB, "table", "false", 0),
    "duckdb alone, RecordBatchReader, pio off": (DUCKDB, "reader", "false", 0),
    "sqlrec materialised (reference in a CTE)": (SQLREC, "cte", "true", 0),
    "sqlrec materialised, in a transaction": (SQLREC, "transaction", "true", 0),
    "sqlrec streamed": (SQLREC, "streamed", "true", 0),
    "sqlrec streamed, pio off": (SQLREC, "streamed", "false", 0),
    "sqlrec streamed, 32,768-key batches": (SQLREC, "streamed", "true", 32_768),
}
OTHER_TREES = ("sqlrec materialised (reference in a CTE)", "sqlrec streamed")


def lane(code: str, source: str, pio: str, batch: int, users: int, k: int, tree: str) -> dict:
    head = f"USERS, K, SOURCE, PIO, BATCH = {users}, {k}, {source!r}, {pio!r}, {batch}\nSAMPLE = {SAMPLE!r}\n"
    # cwd too: `python -c` puts the working directory first on sys.path, ahead of PYTHONPATH (the
    # first version of this script ran from this tree, so its "other tree" imported this one).
    out = subprocess.run([sys.executable, "-c", head + SAMPLER + code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=tree), cwd=tree).stdout
    return json.loads(out[out.rfind('{"'):])  # DuckDB's progress bar may precede it on the line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--only", choices=("duckdb", "sqlrec"))
    ap.add_argument("--tree", nargs="*", default=[], help="other checkouts: two sqlrec lanes each (before / after)")
    a = ap.parse_args()
    runs = [(name, *spec, os.getcwd()) for name, spec in LANES.items()
            if a.only is None or name.startswith(a.only)]
    runs += [(f"{name} [{tree}]", *LANES[name], tree) for tree in a.tree for name in OTHER_TREES
             if a.only != "duckdb"]
    out = {}
    for name, code, source, pio, batch, tree in runs:
        out[name] = lane(code, source, pio, batch, a.users, a.k, tree)
        print(f"  {name}: {out[name]}", file=sys.stderr, flush=True)
    rows = next(iter(out.values()))["rows"]
    print(f"# CREATE TABLE AS over every user, fresh process per lane — {machine()} | load {os.getloadavg()[0]:.2f}")
    print(f"# {a.users:,} users x {a.k} = {rows:,} rows (~{rows * 24 / 1e6:.0f} MB as Arrow); MB over RSS before")
    print("| lane | seconds | peak MB (sampled / VmHWM) | table MB | extra MB (peak - table) |\n"
          "|---|---:|---:|---:|---:|")
    for name, r in out.items():
        mb = {key: r[key] / 1e6 for key in ("peak", "table", "sampled", "hwm")}
        print(f"| {name} | {r['s']:.2f} | {mb['peak']:.0f} ({mb['sampled']:.0f} / {mb['hwm']:.0f}) | {mb['table']:.0f} "
              f"| {mb['peak'] - mb['table']:.0f} |")


if __name__ == "__main__":
    main()
