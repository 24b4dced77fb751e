"""The package's import graph (module-level and in-function imports alike) has no circles."""

from __future__ import annotations

import ast
from pathlib import Path

FLOW = Path(__file__).resolve().parent.parent / "flow"
# Circles left to the modules' owners, each named with why it is still here (an entry is removed when fixed).
KNOWN = {
    frozenset({"flow.cost.asic_timing", "flow.cost.yosys"}),  # asic_timing reuses yosys' area parser
}


def _module_names() -> dict[str, Path]:
    out = {}
    for path in FLOW.rglob("*.py"):
        parts = path.relative_to(FLOW.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(tree: ast.AST, modules: dict[str, Path]) -> set[str]:
    """The flow modules a module imports, at any depth of its code; ``if TYPE_CHECKING:`` blocks are annotations."""

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    found: set[str] = set()
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        if isinstance(node, ast.Import):
            found |= {resolve(a.name) for a in node.names if a.name.startswith("flow")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("flow"):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                found.add(full if full in modules else resolve(node.module))
        todo.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the flow modules it imports."""
    modules = _module_names()
    return {m: _imports(ast.parse(p.read_text()), modules) - {m, ""} for m, p in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    found = set(circles(import_graph()))
    assert found <= KNOWN, sorted(sorted(c) for c in found - KNOWN)


def test_the_checker_finds_a_circle():
    """Fed a known circle (also one through an in-function import), the checker must report it."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [frozenset({"a", "b", "c"})]
    tree = ast.parse("def f():\n    from flow.card import load_card\n")
    assert _imports(tree, {"flow.card": Path("card.py")}) == {"flow.card"}


def test_the_testbench_ships_inside_the_package():
    """``flow sim`` finds its testbench and harness through importlib.resources, not a checkout's tb/ folder; every
    non-Python, non-doc file under flow/ is package data, so a non-editable install has them too."""
    import fnmatch
    import importlib.resources
    import importlib.util
    import tomllib

    from flow import sim

    tb = importlib.resources.files(sim.TB_PACKAGE)
    assert (tb / "qflow_harness.v").is_file() and sim.HARNESS == Path(str(tb / "qflow_harness.v"))
    assert sim.HARNESS.is_relative_to(FLOW) and importlib.util.find_spec(sim.TB_MODULE) is not None
    assert (sim.PACKAGE_PARENT / "flow" / "tb" / "qflow_tb.py").is_file()
    config = tomllib.loads((FLOW.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["flow"]
    data = [
        p.relative_to(FLOW).as_posix()
        for p in FLOW.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc", ".md")
    ]
    data = [d for d in data if "__pycache__" not in d]
    assert data and all(any(fnmatch.fnmatch(d, pat) for pat in patterns) for d in data), data
