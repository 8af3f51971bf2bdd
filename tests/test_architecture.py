"""The package's shape: no import cycles, dependencies point inward, a pure clinical core.

The layers, innermost first (README "Layout"): the clinical core ``risk/``; the typed
configuration; outbound HTTP, the audit trail and logging; the FHIR adapters and the SMART
client; the service seam; the delivery edges (web, CDS Hooks, worklist); the app factory; the
command line. A module may import its own layer or an inner one, never an outer one, so a change
at the edge never reaches the core. The sandbox EHR stands apart: the app must work against a
real EHR, so neither side imports the other.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a cycle that
only type checking sees is still two modules that cannot be understood one without the other.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "smart_app"

#: Layer of each part of the package (the longest matching prefix wins); higher is outer.
LAYERS: dict[str, int] = {
    "smart_app.risk": 0,
    "smart_app.config": 1,
    "smart_app.http": 2,
    "smart_app.ops": 2,
    "smart_app.fhir": 3,
    "smart_app.smart": 3,
    "smart_app.service": 4,
    "smart_app.web": 5,
    "smart_app.cds": 5,
    "smart_app.worklist": 5,
    "smart_app.app": 6,
    "smart_app.ops.checkconfig": 6,  # checks a whole deployment: the outermost but the CLI
    "smart_app.cli": 7,
    "smart_app.wsgi": 7,  # the app for a site's own WSGI server: serve's checks, then the app
}
SANDBOX = "smart_app.sandbox"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> Iterator[str]:
    """Every module ``name`` imports: absolute, or relative resolved against its package."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                sub = f"{target}.{alias.name}"
                yield sub if sub in MODULES else target


def internal_imports(name: str) -> set[str]:
    return {t for t in imports_of(name) if t in MODULES and t != name}


GRAPH = {name: internal_imports(name) for name in MODULES}


def layer(name: str) -> int:
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len,
               default=None)
    if best is None:
        pytest.fail(f"{name} belongs to no layer: add its package to LAYERS in {__file__}")
    return LAYERS[best]


def test_no_import_cycles() -> None:
    # Tarjan's strongly connected components: every component must be a single module.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    assert cycles == [], f"modules that import each other: {cycles}"


def test_dependencies_point_inward() -> None:
    outward = [
        f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})"
        for name, targets in GRAPH.items() if not name.startswith(SANDBOX)
        for target in targets if not target.startswith(SANDBOX) and layer(target) > layer(name)
    ]
    assert outward == []


def test_the_sandbox_and_the_app_stay_apart() -> None:
    app_side = {"smart_app.app", "smart_app.cli"}  # the demo command mounts both
    crossings = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if name.startswith(SANDBOX) != target.startswith(SANDBOX)
        and not any(name == a or name.startswith(a + ".") for a in app_side)
        and target != "smart_app"
    ]
    assert crossings == []


def test_the_clinical_core_imports_only_the_standard_library_and_itself() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    foreign = [
        f"{name} imports {target}"
        for name in MODULES if name.startswith("smart_app.risk")
        for target in imports_of(name)
        if not target.startswith("smart_app.risk") and target.split(".")[0] not in stdlib
    ]
    assert foreign == []


def test_the_engine_never_loads_files() -> None:
    # Table files are read by ``risk.tables`` only; the rules get a RiskTable value.
    loaders = [name for name in MODULES
               if name.startswith("smart_app.risk") and not name.startswith("smart_app.risk.tables")
               and "smart_app.risk.tables" in GRAPH[name]]
    assert loaders == []


def test_the_checks_above_can_fail() -> None:
    # The graph really holds the package's imports: a known edge of each kind is found.
    assert "smart_app.risk.records" in GRAPH["smart_app.risk.engine"]
    assert "smart_app.fhir.client.chart" in GRAPH["smart_app.fhir.client"]
    assert "smart_app.web.page.render" in GRAPH["smart_app.web.page.views"]  # from . import x
    assert layer("smart_app.cli.demo") > layer("smart_app.app") > layer("smart_app.risk.engine")
