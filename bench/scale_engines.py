"""ALS and LightFM training at MovieLens-25M shape, same run (issue 13 item 4).

A synthetic set shaped like ML-25M (162,541 users x 59,047 items, ~25M implicit pairs, Zipf
item popularity: bench/synth.py) is written once to a DuckDB file; then each lane runs
`CREATE MODEL` in its own fresh process (so peak RSS is the lane's own: the child's
ru_maxrss) at 64 components on every core, lanes alternating. LightFM runs `--lightfm-epochs`
epochs (its default is 50: the table also gives seconds per epoch and the 50-epoch
extrapolation, labelled as such); ALS runs its default 15 iterations.

    pip install -e ".[als]"
    python bench/scale_engines.py [--users 162541 --items 59047 --per-user 154 --repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402
from synth import create_interactions  # noqa: E402

LANE = r"""
import json, resource, sys, time
import sqlrec
path, using = sys.argv[1], sys.argv[2]
con = sqlrec.connect(path)
t0 = time.perf_counter()
con.execute(f"CREATE OR REPLACE MODEL m FROM inter PREDICT item_id USING user_id = 'user_id', {using}")
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def lane(path: str, using: str) -> dict:
    out = subprocess.run([sys.executable, "-c", LANE, path, using], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=162_541)
    ap.add_argument("--items", type=int, default=59_047)
    ap.add_argument("--per-user", type=float, default=154)
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--lightfm-epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    threads = os.cpu_count() or 1
    lanes = {
        "lightfm (warp)": f"no_components = {a.components}, epochs = {a.lightfm_epochs}, num_threads = {threads}, "
                          "verbose = false",
        "als": f"engine = 'als', no_components = {a.components}, num_threads = {threads}, verbose = false",
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scale.duckdb")
        import duckdb
        con = duckdb.connect(path)
        n = create_interactions(con, "inter", a.users, a.items, a.per_user)
        con.close()
        print(f"# {machine()}\n# {a.users:,} users x {a.items:,} items, {n:,} interactions, {a.components} components, "
              f"{threads} threads", flush=True)
        results: dict[str, list[dict]] = {name: [] for name in lanes}
        for r in range(a.repeats):
            order = list(lanes) if r % 2 == 0 else list(lanes)[::-1]
            for name in order:
                results[name].append(lane(path, lanes[name]))
                print(f"  {name}: {results[name][-1]}", flush=True)
    print("\n| engine | CREATE MODEL s (min / median) | peak RSS MB (max) | note |\n|---|---:|---:|---|")
    for name, runs in results.items():
        secs = sorted(x["seconds"] for x in runs)
        note = ""
        if name.startswith("lightfm"):
            note = f"{a.lightfm_epochs} epochs; includes loading and saving"
        else:
            note = "15 iterations (the default); includes loading and saving"
        print(f"| {name} | {secs[0]:.1f} / {secs[len(secs) // 2]:.1f} | {max(x['rss_mb'] for x in runs):.0f} | {note} |")
    lf = min(x["seconds"] for x in results["lightfm (warp)"])
    als = min(x["seconds"] for x in results["als"])
    print(f"\nALS at its default 15 iterations took {als / lf:.2f}x the time of {a.lightfm_epochs} LightFM epochs.")


if __name__ == "__main__":
    main()
