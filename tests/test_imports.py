"""Starting sqlrec loads no heavy library a statement does not need.

`import sqlrec`, `sqlrec --version` and `sqlrec -c "SELECT 1"` each run in a fresh interpreter
(real subprocesses on this checkout); each prints the sys.modules entries it ended with, and
the heavy ones must be absent. The CLI runs in-process in that interpreter, through the same
entry point the installed `sqlrec` script calls (sqlrec.frontend.cli:main). bench/startup.py
times the same commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Optional extras and the libraries only training, plots, serving or notebooks need.
HEAVY = ("lightfm", "implicit", "pandas", "matplotlib", "fastapi", "uvicorn", "pyspark", "faiss",
         "IPython", "scipy")
# What plain SQL needs but `import sqlrec` (errors, __version__) and `sqlrec --version` do not.
# duckdb is not among them: sqlrec's error classes subclass DuckDB's (sqlrec.errors), so that
# `except duckdb.BinderException` catches sqlrec's too, and importing duckdb loads none of these.
ENGINE = ("sqlglot", "numpy", "pyarrow")

REPORT = """
import json, sys
import sqlrec
print(json.dumps({"sqlrec": sqlrec.__file__, "top": sorted({m.split('.')[0] for m in sys.modules}),
                  "own": sorted(m for m in sys.modules if m.startswith("sqlrec."))}))
"""

CLI = """
import sys
from sqlrec.frontend.cli import main
sys.argv = ["sqlrec", *ARGS]
try:
    main()
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
""" + REPORT


def loaded(code: str, own: bool = False) -> tuple[str, set[str]]:
    """Run `code` in a fresh interpreter on this checkout: (its stdout before the report,
    the top-level packages in its sys.modules; with `own`, sqlrec's modules as well)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    *printed, last = done.stdout.strip().splitlines()
    report = json.loads(last)
    # the checkout under test, not an installed copy
    assert Path(report["sqlrec"]).resolve().is_relative_to(ROOT / "sqlrec"), report["sqlrec"]
    return "\n".join(printed), set(report["top"]) | (set(report["own"]) if own else set())


def cli(*args: str) -> tuple[str, set[str]]:
    return loaded(CLI.replace("ARGS", repr(list(args))), own=True)


def test_the_check_sees_a_heavy_import() -> None:
    # The control: the same report does list a heavy library once something imports it.
    _, modules = loaded("import pandas, scipy.sparse\n" + REPORT)
    assert {"pandas", "scipy"} <= modules


def test_import_sqlrec_loads_no_heavy_library() -> None:
    _, modules = loaded(REPORT)
    assert modules.isdisjoint(HEAVY + ENGINE), sorted(modules & set(HEAVY + ENGINE))


def test_version_loads_no_heavy_library() -> None:
    printed, modules = cli("--version")
    assert printed.startswith("sqlrec ")
    assert modules.isdisjoint(HEAVY + ENGINE), sorted(modules & set(HEAVY + ENGINE))


def test_select_1_loads_no_heavy_library() -> None:
    # Plain SQL takes the router's fast path (DuckDB's own parser decides that sqlrec has no part
    # in it): sqlrec's grammar (sqlglot), numpy, pyarrow and the commands stay unloaded, and so
    # does wcwidth while every cell printed is plain ASCII.
    printed, modules = cli("-c", "SELECT 1")
    assert "1" in printed
    assert {"duckdb", "sqlrec.exec.router", "sqlrec.store.statements"} <= modules  # it did run through sqlrec
    assert "sqlrec.exec.dispatch" not in modules  # the full path's command table
    assert modules.isdisjoint(HEAVY + ENGINE + ("wcwidth",)), sorted(modules & set(HEAVY + ENGINE + ("wcwidth",)))


def test_plain_sql_through_the_api_loads_no_engine() -> None:
    printed, modules = loaded(
        "import sqlrec\n"
        "con = sqlrec.connect()\n"
        "con.execute('CREATE TABLE t AS SELECT range AS x FROM range(5)')\n"
        "print(con.execute('SELECT sum(x) FROM t WHERE x > ?', [1]).fetchone()[0])\n" + REPORT, own=True)
    assert printed == "9"
    assert modules.isdisjoint(HEAVY + ENGINE), sorted(modules & set(HEAVY + ENGINE))


def test_a_model_statement_on_the_command_line_loads_the_full_path() -> None:
    # The control of the two tests above: SHOW MODELS is sqlrec's, so its grammar loads when it
    # runs; and a cell that is not ASCII loads wcwidth to measure it.
    printed, modules = cli("-c", "SHOW MODELS", "-c", "SELECT '日本'")
    assert "日本" in printed
    assert {"sqlglot", "sqlrec.exec.dispatch", "wcwidth"} <= modules


def test_connect_and_the_package_names_still_work() -> None:
    # connect / Connection / Cursor come from the package root on first use.
    printed, _ = loaded(
        "import sqlrec\n"
        "from sqlrec import Connection, Cursor, connect\n"
        "con = sqlrec.connect()\n"
        "assert isinstance(con, Connection) and isinstance(con.cursor(), Cursor)\n"
        "assert {'connect', 'Connection', 'Cursor'} <= set(dir(sqlrec))\n"
        "print(con.execute('SELECT 41 + 1').fetchone()[0])\n" + REPORT)
    assert printed == "42"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import sqlrec

        sqlrec.nope  # noqa: B018


def test_a_model_statement_loads_what_it_needs() -> None:
    # Lazy, not missing: training a LightFM model imports lightfm (and scipy) when it runs, and
    # .df() hands back a pandas DataFrame.
    printed, modules = loaded(
        "import sqlrec\n"
        "con = sqlrec.connect()\n"
        "con.execute(\"CREATE TABLE r AS SELECT u, i FROM range(20) t(u), range(8) s(i) WHERE (u + i) % 3 = 0\")\n"
        "con.execute(\"CREATE MODEL m FROM r PREDICT i USING user_id = 'u', epochs = 2\")\n"
        "print(type(con.execute('SELECT * FROM m WHERE u = 1').df()).__name__)\n" + REPORT)
    assert printed == "DataFrame"
    assert {"lightfm", "scipy", "pandas"} <= modules


def test_lazy_module_imports_on_first_attribute() -> None:
    printed, _ = loaded(
        "import sys\n"
        "from sqlrec.lazy import sparse\n"
        "before = 'scipy.sparse' in sys.modules\n"
        "matrix = sparse.csr_matrix((2, 3))\n"
        "import scipy.sparse\n"
        "assert sparse.csr_matrix is scipy.sparse.csr_matrix and matrix.shape == (2, 3)\n"
        "try:\n"
        "    sparse.csr_matrix = None\n"
        "except AttributeError:\n"
        "    print(before, 'scipy.sparse' in sys.modules, 'read-only')\n" + REPORT)
    assert printed == "False True read-only"
