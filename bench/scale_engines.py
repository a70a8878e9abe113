"""ALS and LightFM training at MovieLens-25M shape, same run (issue 13 item 4).

A synthetic set shaped like ML-25M (162,541 users x 59,047 items, ~28M implicit pairs, Zipf
item popularity: bench/synth.py) is written once to a DuckDB file; then each lane runs
`CREATE MODEL` in its own fresh process (so peak RSS is the lane's own: the child's
ru_maxrss) at 64 components on every core, lanes alternating. LightFM runs `--lightfm-epochs`
epochs (its default is 50: the table also gives seconds per epoch and the 50-epoch
extrapolation, labelled as such); ALS runs its default 15 iterations. Each lane also times
the fit alone (sqlrec.exec.training.fit_all, wrapped in the child), apart from loading and saving.

Then (issue 13 item 2, end to end) a fresh process opens the LightFM model and runs
`CREATE TABLE recs AS SELECT * FROM m` over every user (10 each, seen excluded: sqlrec
streams the rows into DuckDB), with its peak RSS, and after it the floor in the same process:
the GEMMs alone over the same factors at sqlrec's chunk height, BLAS on every core.

    pip install -e ".[als]"
    python bench/scale_engines.py [--users 162541 --items 59047 --per-user 154 --repeats 1]
        [--path FILE (data kept between runs)] [--recs-repeats 3 --recs-batch-keys 32768 8192]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402
from synth import create_interactions  # noqa: E402

LANE = r"""
import json, resource, sys, time
import sqlrec
from sqlrec.exec import training
path, name, using = sys.argv[1], sys.argv[2], sys.argv[3]
fit = []
def timed(*args, fit_all=training.fit_all):
    t = time.perf_counter(); out = fit_all(*args); fit.append(time.perf_counter() - t); return out
training.fit_all = timed  # called through the module's globals: the fit alone, no load or save
con = sqlrec.connect(path)
t0 = time.perf_counter()
con.execute(f"CREATE OR REPLACE MODEL {name} FROM inter PREDICT item_id USING user_id = 'user_id', {using}")
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "fit": fit[0], "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

RECS = r"""
import json, resource, sys, time
import numpy as np, sqlrec
from sqlrec.numeric import scoring
from sqlrec.exec import streaming
path, name = sys.argv[1], sys.argv[2]
if int(sys.argv[3]):  # 0: sqlrec's own; sqlrec.exec.queries reads it at each statement
    streaming.BATCH_KEYS = int(sys.argv[3])
rss = lambda: int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) / 1024
con = sqlrec.connect(path)
model = con._engine.model(name, con._duck)  # loaded (and cached) before the clock starts
u, ub = model.side("user").factors
v, ib = model.side("item").factors
rss0 = rss(); t0 = time.perf_counter()
con.execute(f"CREATE OR REPLACE TABLE recs AS SELECT * FROM {name}")
sql = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
rows = con.execute("SELECT count(*) FROM recs").fetchone()[0]
q, t = scoring.augment_query(u, ub, True), scoring.prepare_targets(v, ib, True)
rows_per = scoring.chunk_rows(len(v)); buf = np.empty((rows_per, t.shape[1]), np.float32)
t0 = time.perf_counter()
for a in range(0, len(q), rows_per):
    np.matmul(q[a:a + rows_per], t, out=buf[: min(rows_per, len(q) - a)])
gemm = time.perf_counter() - t0
print(json.dumps({"seconds": sql, "gemm": gemm, "rss_added_mb": peak, "rows": rows, "batch_keys": streaming.BATCH_KEYS}))
"""


def lane(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    # The last JSON object printed: DuckDB's progress bar (a long query on a busy machine) writes
    # to the same stdout, with no newline before the lane's own line.
    start = out.stdout.rfind('{"')
    if start < 0:
        raise RuntimeError(f"lane {args[1:]} printed no result: {out.stdout[-2000:]!r} {out.stderr[-2000:]!r}")
    return json.JSONDecoder().raw_decode(out.stdout, start)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=162_541)
    ap.add_argument("--items", type=int, default=59_047)
    ap.add_argument("--per-user", type=float, default=154)
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--lightfm-epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--recs-batch-keys", type=int, nargs="+", default=[0],
                    help="keys per streamed batch for the CREATE TABLE AS lane (0: sqlrec.exec.streaming.BATCH_KEYS)")
    ap.add_argument("--recs-repeats", type=int, default=3)
    ap.add_argument("--path", help="DuckDB file kept between runs (the data is made once); default: a temporary one")
    a = ap.parse_args()
    threads = os.cpu_count() or 1
    # name -> (model, USING, steps the fit runs, their unit)
    lanes = {
        "lightfm (warp)": ("m_lightfm", f"no_components = {a.components}, epochs = {a.lightfm_epochs}, "
                                        f"num_threads = {threads}, verbose = false", a.lightfm_epochs, "epoch"),
        "als": ("m_als", f"engine = 'als', no_components = {a.components}, num_threads = {threads}, verbose = false",
                15, "iteration"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = a.path or os.path.join(tmp, "scale.duckdb")
        import duckdb
        con = duckdb.connect(path)
        if a.path and con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'inter'").fetchone()[0]:
            n = con.execute("SELECT count(*) FROM inter").fetchone()[0]  # kept from an earlier run: same shape asked
        else:
            n = create_interactions(con, "inter", a.users, a.items, a.per_user)
        con.close()
        print(f"# {machine()} | load {os.getloadavg()[0]:.2f}\n# {a.users:,} users x {a.items:,} items, "
              f"{n:,} interactions, {a.components} components, {threads} threads", flush=True)
        results: dict[str, list[dict]] = {name: [] for name in lanes}
        for r in range(a.repeats):
            for name in list(lanes) if r % 2 == 0 else list(lanes)[::-1]:
                results[name].append(lane(LANE, path, lanes[name][0], lanes[name][1]))
                print(f"  {name}: {results[name][-1]}", flush=True)
        recs = []
        for _ in range(a.recs_repeats):
            for keys in a.recs_batch_keys:
                recs.append(lane(RECS, path, lanes["lightfm (warp)"][0], str(keys)))
                print(f"  recs: {recs[-1]}", flush=True)
    train_table(results, lanes, a.lightfm_epochs)
    recs_table(recs)
    print(f"# load {os.getloadavg()[0]:.2f} at the end")


def _min_med(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def train_table(results: dict[str, list[dict]], lanes: dict[str, tuple], lightfm_epochs: int) -> None:
    print("\n| engine | CREATE MODEL s (min / median) | fit alone s (min / median) | fit s per step | "
          "peak RSS MB (max) | steps |\n|---|---:|---:|---:|---:|---|")
    for name, runs in results.items():
        total, fit = _min_med([x["seconds"] for x in runs]), _min_med([x["fit"] for x in runs])
        steps, unit = lanes[name][2], lanes[name][3]
        print(f"| {name} | {total[0]:.1f} / {total[1]:.1f} | {fit[0]:.1f} / {fit[1]:.1f} | {fit[0] / steps:.2f} "
              f"per {unit} | {max(x['rss_mb'] for x in runs):.0f} | {steps} {unit}s |")
    lf = min(x["fit"] for x in results["lightfm (warp)"]) / lightfm_epochs
    als = min(x["fit"] for x in results["als"])
    print(f"\nALS's 15 iterations (fit alone) took {als / lf:.2f} LightFM epochs' time; LightFM's default 50 "
          f"epochs would take ~{50 * lf:.0f} s (extrapolated from {lightfm_epochs}, not measured).")


def recs_table(recs: list[dict]) -> None:
    gemm = _min_med([x["gemm"] for x in recs])
    print(f"\n`CREATE TABLE recs AS SELECT * FROM m_lightfm`: {recs[0]['rows']:,} rows\n"
          "| lane | min s | median s | min vs GEMMs | peak RSS added MB (max) |\n|---|---:|---:|---:|---:|")
    print(f"| GEMMs alone (floor), same processes | {gemm[0]:.2f} | {gemm[1]:.2f} | 1.00x | |")
    for keys in dict.fromkeys(x["batch_keys"] for x in recs):
        runs = [x for x in recs if x["batch_keys"] == keys]
        sql = _min_med([x["seconds"] for x in runs])
        print(f"| CREATE TABLE recs AS SELECT * FROM m, batches of {keys:,} keys | {sql[0]:.2f} | {sql[1]:.2f} | "
              f"{sql[0] / gemm[0]:.2f}x | {max(x['rss_added_mb'] for x in runs):.0f} |")


if __name__ == "__main__":
    main()
