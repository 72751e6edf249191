"""The package's layers, as they really import, with no cycles and no upward import.

Two stacks (an arrow reads "is imported by"; nothing imports against an arrow):

    model stack:  kernels -> modules -> models -> families
    pipeline:     families -> config -> plan -> execute;  families -> run -> execute;  measure -> run;
                  store -> plan (the suite record),  store -> execute (the writer),  store -> report (the reader);
                  store -> config, measure (the row's columns: claims name them, the measurer fills them)

``config`` validates suites against the family registry, ``plan`` expands them into typed run configs,
``execute`` launches runs and records their rows (``store``), ``run`` trains and ``measure``s one run,
``report`` reads a results folder through ``store.results_format`` alone (no torch, no model code).
``errors``, ``versions``, ``registry`` and ``plugins`` (loading them) are leaves every layer may use; ``benchmarks``
(scripts that time kernels, mixers, the verdict's error rates and a loader's memory), ``cli`` and ``extend`` (the
plugin API) sit on top. An entry may name one module
of a layer (``config.claims``: the claim schema, which the report parses from suite.json). Imports inside
functions count like any other (a lazy import is still a dependency); ``if TYPE_CHECKING:`` ones do not.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import harness

PKG = Path(harness.__file__).parent
LEAVES = {"errors", "versions", "registry", "plugins", ""}  # "": harness/__init__.py (__version__)
MAY_IMPORT: dict[str, set[str]] = {
    "kernels": set(),
    "modules": {"kernels"},
    "models": {"modules", "kernels"},
    "families": {"models", "modules", "kernels"},
    "config": {"families", "store"},
    "plan": {"config", "store"},
    "measure": {"config", "kernels", "modules", "store"},
    "run": {"config", "families", "measure", "modules"},
    "store": set(),
    "execute": {"config", "plan", "run", "measure", "store"},
    "report": {"store", "config.claims"},
    "benchmarks": {"config", "families", "kernels", "modules", "measure", "report"},
    **{leaf: set() for leaf in LEAVES},
}
TOP = {"cli", "__main__", "extend"}  # may import anything (extend: the plugin API)


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = ("harness", *f.relative_to(PKG).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (annotations only, never imported at run time)."""
    blocks = [n for n in ast.walk(tree) if isinstance(n, ast.If) and getattr(n.test, "id", getattr(n.test, "attr", "")) == "TYPE_CHECKING"]
    return {id(inner) for block in blocks for stmt in block.body for inner in ast.walk(stmt)}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The harness modules a file imports, anywhere in it (``from pkg import submodule`` is the submodule)."""
    out = set()
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("harness")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("harness"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
            out |= subs if len(subs) == len(node.names) else {node.module}
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(f, modules) - {m} for m, f in modules.items()}


def test_every_package_is_placed():
    layers = {_layer(m) for m in _modules()}
    assert layers <= MAY_IMPORT.keys() | TOP, f"place {sorted(layers - MAY_IMPORT.keys() - TOP)} in MAY_IMPORT"


def test_no_package_imports_upward():
    bad = sorted(
        f"{m} imports {t}"
        for m, targets in _graph().items() if _layer(m) not in TOP
        for t in targets
        if _layer(t) != _layer(m) and _layer(t) not in LEAVES
        and not {_layer(t), t.removeprefix("harness.")} & MAY_IMPORT[_layer(m)]
    )
    assert not bad, "\n".join(bad)


def test_the_allowed_imports_have_no_cycle():
    """MAY_IMPORT itself is a DAG, so obeying it rules out cycles between packages."""
    state: dict[str, int] = {}

    def visit(layer: str, path: tuple[str, ...]) -> None:
        assert state.get(layer) != 1, f"cycle: {' -> '.join((*path, layer))}"
        if state.get(layer) == 2:
            return
        state[layer] = 1
        for below in MAY_IMPORT[layer]:
            visit(below.split(".")[0], (*path, layer))
        state[layer] = 2

    for layer in MAY_IMPORT:
        visit(layer, ())


def test_no_module_import_cycle():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def strongconnect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            strongconnect(v)
    assert not cycles, cycles


def test_families_never_import_the_spine():
    spine = {"config", "plan", "execute", "run", "measure", "store", "report", "benchmarks", "cli"}
    bad = sorted(f"{m} imports {t}" for m, ts in _graph().items() if _layer(m) == "families" for t in ts if _layer(t) in spine)
    assert not bad, bad


def test_the_report_runs_without_torch_or_model_code():
    code = ("import sys, harness.report.load, harness.report.render, harness.report.compare, harness.report.claims, "
            "harness.store.results_format; "
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.split('.')[:2] in "
            "(['harness', 'families'], ['harness', 'models'], ['harness', 'modules'], ['harness', 'kernels'])); "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
