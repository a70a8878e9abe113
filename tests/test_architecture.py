"""The shape of the package: no import cycles, small modules and functions, one way to reach DuckDB.

These guard the layout described in the README's "How a statement flows": a change that
makes two modules import each other, or grows a module past what a reader can hold, fails
here rather than in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sqlrec"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(name: str) -> set[str]:
    """Package modules `name` imports, anywhere in it (function bodies too), except under
    TYPE_CHECKING and except the package's own facade from inside a function (a lazy hook)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in child.names]
            for target in targets:
                while target and target not in MODULES:
                    target = target.rpartition(".")[0]
                if target and target != name and not (nested and target == "sqlrec"):
                    found.add(target)
            visit(child, nested)

    visit(tree, False)
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


def test_no_import_cycle():
    graph = {name: imports(name) for name in MODULES}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    # and it sees through relative imports: sqlrec.models.model really imports sqlrec.numeric.scoring
    assert "sqlrec.numeric.scoring" in imports("sqlrec.models.model")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_stay_small(name):
    source = MODULES[name].read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{name} has {len(source.splitlines())} lines"
    long = [(f.name, f.end_lineno - f.lineno + 1) for f in ast.walk(ast.parse(source))
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_sql_and_handlers_keep_to_their_layer():
    """sql/ knows grammar (no DuckDB, no numpy); handlers know models (no DuckDB, no SQL)."""
    for name in MODULES:
        source = MODULES[name].read_text()
        if name.startswith("sqlrec.sql"):
            assert "import duckdb" not in source and "import numpy" not in source, name
        if name.startswith("sqlrec.engines"):
            assert "import duckdb" not in source and "sqlrec.store.session" not in imports(name), name


def test_only_the_session_layer_catches_duckdb_errors():
    """Every DuckDB error passes through one place (sqlrec.store.session), where it gets its label."""
    allowed = {"sqlrec.store.session", "sqlrec.store.statements", "sqlrec.models.catalog", "sqlrec.exec.router", "sqlrec.api.connection", "sqlrec.errors"}
    offenders = [name for name in MODULES
                 if "except duckdb." in MODULES[name].read_text() and name not in allowed
                 and not name.startswith("sqlrec.frontend")]
    assert offenders == []
