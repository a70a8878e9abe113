"""Startup: how long the `sqlrec` command takes to start, against `python -c "import duckdb"`.

Each lane is a fresh process, timed from spawn to exit (wall clock):
  (ref)     python -c "import duckdb"
  (floor)   python -c "import duckdb, click": the libraries `sqlrec -c "SELECT 1"` cannot skip
            (DuckDB runs the statement and its parser decides that sqlrec has no part in it, click
            reads the command line); informative only. sqlglot, numpy and pyarrow load only for
            statements sqlrec has a part in (sqlrec.exec.router's full path)
  version   sqlrec --version
  select    sqlrec -c "SELECT 1"   (an in-memory database, one statement, the table printed)
The sqlrec lanes run this checkout's code the way the installed `sqlrec` script does (import
sqlrec.frontend.cli, call main); `--tree DIR` adds the same two lanes for another checkout
(before / after a change). Lanes are interleaved round by round (ref, floor, version, select,
ref, ...), so load from other processes touches them alike; a first round is not counted.

Bytecode: every process reads .pyc files, as an installed package does (pip compiles them). The
runs write them to a temporary PYTHONPYCACHEPREFIX (PYTHONDONTWRITEBYTECODE is dropped), so the
checkouts' folders stay clean and the first, uncounted round pays for the compiling.

Target: the median of `sqlrec --version` and of `sqlrec -c "SELECT 1"` each at most 3x the
median of `import duckdb`.

    python bench/startup.py [--rounds 15] [--tree /tmp/wt-base]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = 3.0
# What the installed console script (pyproject [project.scripts]) runs.
ENTRY = "import sys; from sqlrec.frontend.cli import main; sys.argv[0] = 'sqlrec'; sys.exit(main())"
FLOOR = "import duckdb, click"


def lanes(trees: list[tuple[str, str]]) -> list[tuple[str, list[str], str | None, str]]:
    """(name, argv, PYTHONPATH, text the output must hold) per lane."""
    out = [("import duckdb (ref)", [sys.executable, "-c", "import duckdb"], None, ""),
           ("floor: duckdb+click", [sys.executable, "-c", FLOOR], None, "")]
    for label, tree in trees:
        out.append((f"sqlrec --version{label}", [sys.executable, "-c", ENTRY, "--version"], tree, "sqlrec "))
        out.append((f'sqlrec -c "SELECT 1"{label}', [sys.executable, "-c", ENTRY, "-c", "SELECT 1"], tree, "1"))
    return out


def run(argv: list[str], pythonpath: str | None, env: dict[str, str], cwd: str) -> tuple[float, str]:
    env = dict(env)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}):\n{done.stderr}")
    return seconds, done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--tree", help="another checkout (e.g. main) timed in the same rounds")
    args = ap.parse_args()

    trees = [(" (this tree)" if args.tree else "", HERE)]
    if args.tree:
        if not os.path.isfile(os.path.join(args.tree, "sqlrec", "__init__.py")):
            # a wrong path would silently time whatever sqlrec is installed
            raise SystemExit(f"--tree {args.tree}: no sqlrec package there")
        trees.append((" (--tree)", os.path.abspath(args.tree)))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    todo = lanes(trees)
    times: dict[str, list[float]] = {name: [] for name, *_ in todo}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        env["PYTHONPYCACHEPREFIX"] = os.path.join(scratch, "pyc")
        for round_ in range(args.rounds + 1):
            for name, argv, pythonpath, expect in todo:
                seconds, stdout = run(argv, pythonpath, env, scratch)  # cwd: no tree on sys.path by accident
                if expect not in stdout:
                    raise SystemExit(f"{name}: expected {expect!r} in the output, got {stdout!r}")
                if round_:  # round 0 compiles the .pyc files
                    times[name].append(seconds)
    load_after = os.getloadavg()

    ref = statistics.median(times[todo[0][0]])
    ref_min = min(times[todo[0][0]])
    print(machine())
    print(f"load average (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
          f"after {'/'.join(f'{x:.2f}' for x in load_after)}; {args.rounds} interleaved rounds\n")
    print("| lane | min s | median s | median vs import duckdb | min vs import duckdb |")
    print("|---|---:|---:|---:|---:|")
    for name, *_ in todo:
        ts = times[name]
        print(f"| {name} | {min(ts):.3f} | {statistics.median(ts):.3f} | {statistics.median(ts) / ref:.2f}x "
              f"| {min(ts) / ref_min:.2f}x |")
    print()
    label = trees[0][0]
    for name in (f"sqlrec --version{label}", f'sqlrec -c "SELECT 1"{label}'):
        ratio = statistics.median(times[name]) / ref
        print(f"- {'PASS' if ratio <= TARGET else 'FAIL'}: {name} {ratio:.2f}x import duckdb (target <= {TARGET:g}x)")


if __name__ == "__main__":
    main()
