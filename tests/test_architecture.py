"""The shape of the package (docs/architecture.md): layers that import only downwards, no import
cycles, a short top level.

The layers contract itself lives in pyproject.toml ([tool.importlinter]) and is checked by
import-linter here, as CI runs it. import-linter sees imports inside functions and under
TYPE_CHECKING too; the cycle test below covers what a layers contract cannot (two modules of one
layer that import each other).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sqlrec"
MAX_TOP_LEVEL_MODULES = 12


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Package modules `name` imports anywhere in it: module level, function bodies and
    TYPE_CHECKING blocks alike (a cycle through any of them is still a cycle to a reader)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_the_layers_contract_holds():
    """lint-imports (import-linter) over pyproject.toml's contracts, exactly as CI runs it."""
    done = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                           "sys.exit(lint_imports())"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "sqlrec's layers KEPT" in done.stdout


def test_no_import_cycle():
    graph = {name: imports(name) for name in MODULES}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    # it sees relative, absolute, function-level and TYPE_CHECKING imports alike
    assert "sqlrec.numeric.scoring" in imports("sqlrec.models.model")
    assert "sqlrec.frontend.magic" in imports("sqlrec")  # the IPython hook, inside a function


def test_the_top_level_stays_short():
    """Everything but the entry points and the error classes lives in a layer package."""
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert {"api", "exec", "models", "ingest", "engines", "store", "numeric", "sql", "frontend", "serve"} <= packages


def test_sql_and_engines_keep_to_their_layer():
    """sql/ knows grammar (no DuckDB, no numpy in the grammar); engines know models (no DuckDB)."""
    for name, path in MODULES.items():
        source = path.read_text()
        if name.startswith("sqlrec.sql"):
            assert "import duckdb" not in source, name
        if name.startswith("sqlrec.sql") and not name.endswith(".options"):
            assert "import numpy" not in source, name
        if name.startswith("sqlrec.engines"):
            assert "import duckdb" not in source, name


def test_only_the_store_catches_duckdb_errors():
    """Every DuckDB error passes through one place (sqlrec.store.session), where it gets its label."""
    # errors: its docs show `except duckdb.X`; store.statements: DuckDB's parser, for the classifier
    allowed = {"sqlrec.store.session", "sqlrec.store.statements", "sqlrec.errors"}
    offenders = [name for name in MODULES
                 if "except duckdb." in MODULES[name].read_text() and name not in allowed
                 and not name.startswith("sqlrec.frontend")]
    assert offenders == []
