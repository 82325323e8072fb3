"""The import rules of ARCHITECTURE.md, read from the source with ``ast``: no import cycles among moneyd/ and
uplinks/ (at module level, nor through imports inside functions or under TYPE_CHECKING), ``moneyd/wire`` imports
nothing else of moneyd, nothing in moneyd/ imports uplinks/ (uplinks are plugins), and no test module imports another
(what tests share lives in tests/support/)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("moneyd", "uplinks")
KINDS = ("module", "function", "typing")  # where an import statement stands


def _modules() -> dict[str, tuple[Path, bool]]:
    found: dict[str, tuple[Path, bool]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours that ``name`` (a module, or a name in one) is; None for anything else."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> dict[str, set[str]]:
    """What ``module`` imports of ours, by where the import stands."""
    path, is_package = MODULES[module]
    package = module if is_package else module.rpartition(".")[0]
    found: dict[str, set[str]] = {kind: set() for kind in KINDS}

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = kind
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = "function"
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = "typing"
            if isinstance(child, ast.Import):
                targets = [_resolve(a.name) for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - child.level + 1] + ([base] if base else []))
                targets = [_resolve(f"{base}.{a.name}") if f"{base}.{a.name}" in MODULES else _resolve(base)
                           for a in child.names]
            else:
                targets = []
            found[inner].update(t for t in targets if t is not None and t != module)
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), "module")
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def cycles(kinds: tuple[str, ...]) -> list[list[str]]:
    """The groups of modules that import each other (Tarjan's strongly connected components of two or more)."""
    edges = {m: set().union(*(GRAPH[m][k] for k in kinds)) for m in GRAPH}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return groups


def test_the_graph_is_read() -> None:
    # Guards the checks below against reading nothing: known edges at each kind of import.
    assert "moneyd.wire.ilp" in GRAPH["moneyd.router.layers"]["module"]
    assert "moneyd.runtime" in GRAPH["moneyd.uplink_cli"]["function"]
    assert "moneyd.app" in GRAPH["moneyd.admin.api"]["typing"]


@pytest.mark.parametrize("kinds", [("module",), ("module", "function"), KINDS], ids=["module", "function", "typing"])
def test_no_import_cycles(kinds: tuple[str, ...]) -> None:
    assert cycles(kinds) == []


def test_wire_imports_nothing_else_of_moneyd() -> None:
    outside = {(m, t) for m, g in GRAPH.items() if m.startswith("moneyd.wire")
               for kind in KINDS for t in g[kind] if not t.startswith("moneyd.wire")}
    assert outside == set()


def test_moneyd_never_imports_uplinks() -> None:
    # Uplinks are plugins, found through the entry points (moneyd/uplink.py), as a third party's would be.
    into_uplinks = {(m, t) for m, g in GRAPH.items() if m.startswith("moneyd")
                    for kind in KINDS for t in g[kind] if t.startswith("uplinks")}
    assert into_uplinks == set()


def test_a_cycle_is_seen() -> None:
    # The check itself: a made-up cycle is found.
    saved = GRAPH["moneyd.wire.oer"]["function"]
    GRAPH["moneyd.wire.oer"]["function"] = saved | {"moneyd.wire.ilp"}
    try:
        assert ["moneyd.wire.ilp", "moneyd.wire.oer"] in cycles(("module", "function"))
    finally:
        GRAPH["moneyd.wire.oer"]["function"] = saved


# -- tests import helpers, not each other ----------------------------------------------------------------------


def imported_test_modules(source: str, package: str) -> set[str]:
    """The ``test_*`` modules a file of ``package`` imports, or names from (relative imports resolved)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # ``from tests.x import test_y`` imports a module too
            names = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        found.update(n for n in names if any(part.startswith("test_") for part in n.split(".")))
    return found


def test_no_test_module_imports_another() -> None:
    tests = ROOT / "tests"
    files = [p for p in tests.rglob("*.py") if p.relative_to(tests).parts[0] != "js"]
    assert len(files) > 50  # the tree is read
    imports: dict[str, list[str]] = {}
    for path in files:
        package = ".".join(path.relative_to(ROOT).parent.parts)
        found = imported_test_modules(path.read_text(encoding="utf-8"), package)
        if found:
            imports[str(path.relative_to(ROOT))] = sorted(found)
    assert imports == {}, "move what tests share into tests/support/"


@pytest.mark.parametrize("source", ["from tests.uplinks.xrp.test_uplink import Setup", "from .test_uplink import Setup",
                                    "from . import test_uplink", "import tests.admin.test_process",
                                    "def f():\n    from tests.admin.test_dashboard import Page"])
def test_a_test_module_import_is_seen(source: str) -> None:
    assert imported_test_modules(source, "tests.uplinks.xrp")
    assert not imported_test_modules("from tests.support.xrp_setup import Setup\nimport pytest", "tests.uplinks.xrp")
