"""The layering holds: every module imports alone, no import cycle, and imports only point down.

    pfill (foundation) <- queries <- dashboards <- deploy
    pfill (foundation) <- queries <- engine           (deploy and engine never import each other)
    pfill.cli, pfill.demo, pfill.__main__ on top

Read from the source with `ast` (imports at module level, under TYPE_CHECKING and inside functions),
with the folders mapped to import names as pyproject.toml maps them.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOP = {"pfill.cli", "pfill.demo", "pfill.__main__"}
# what each layer may import besides itself and the foundation
ALLOWED = {
    "foundation": set(),
    "queries": set(),
    "dashboards": {"queries"},
    "engine": {"queries"},
    "deploy": {"queries", "dashboards"},
}


def _modules() -> dict[str, Path]:
    """Import name -> file, for every module of every package pyproject.toml lists."""
    listed = re.search(r"^packages = \[(.*?)\]", (REPO / "pyproject.toml").read_text(), re.M | re.S)
    assert listed, "pyproject.toml lists no packages"
    found = {}
    for package in re.findall(r'"([\w.]+)"', listed[1]):
        spec = importlib.util.find_spec(package)
        assert spec and spec.submodule_search_locations, package
        for path in Path(next(iter(spec.submodule_search_locations))).glob("*.py"):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


MODULES = _modules()


def _layer(module: str) -> str:
    if module in TOP:
        return "top"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "foundation"


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported pfill module, line, at module level) for each import of a pfill module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.stem == "__init__" else module.rsplit(".", 1)[0]
    top_level = {id(node) for node in tree.body} | {
        id(inner) for node in tree.body if isinstance(node, ast.If) for inner in node.body  # TYPE_CHECKING
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the submodule when there is one
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            while name not in MODULES and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in MODULES and name != module:
                found.append((name, node.lineno, id(node) in top_level))
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_the_map_finds_every_package() -> None:
    layers = {_layer(m) for m in MODULES}
    assert layers == {"foundation", "queries", "dashboards", "engine", "deploy", "top"}
    assert len(MODULES) > 50


def test_imports_point_only_down() -> None:
    wrong = []
    for module, imports in GRAPH.items():
        layer = _layer(module)
        if layer == "top":
            continue
        for target, line, _ in imports:
            other = _layer(target)
            if other not in {layer, "foundation"} | ALLOWED[layer]:
                where = f"{MODULES[module].relative_to(REPO)}:{line}"
                wrong.append(f"{where}: {module} ({layer}) imports {target} ({other})")
    assert not wrong, "\n".join(wrong)


def test_the_solver_imports_nothing_above_it() -> None:
    """engine/solver is the algorithm: it may use the engine's leaf modules (those importing nothing of
    pfill: the reason codes, the array helpers), never the pipeline, and no strategy imports the package
    that registers it."""
    leaves = {module for module, imports in GRAPH.items() if not any(t.startswith("pfill") for t, _, _ in imports)}
    assert {"pfill.engine.reasons", "pfill.engine.arrays"} <= leaves
    wrong = [
        f"{module} imports {target}"
        for module, imports in GRAPH.items() if module.startswith("pfill.engine.solver.")
        for target, _, _ in imports
        if target == "pfill.engine.solver"
        or (target.startswith("pfill.engine") and not target.startswith("pfill.engine.solver")
            and target not in leaves and target != "pfill.engine")
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    """Module-level imports (TYPE_CHECKING included) form no cycle (Tarjan's strongly connected components)."""
    edges = {m: sorted({t for t, _, top in imports if top}) for m, imports in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            # a package importing its own submodule at the top is not a cycle unless the submodule imports it back
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in edges:
        if module not in index:
            visit(module)
    assert not cycles, cycles


def _import_alone(module: str) -> tuple[str, int, str]:
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, cwd="/")
    return module, result.returncode, (result.stderr.strip().splitlines() or [""])[-1]


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_import_alone, sorted(MODULES)))
    failed = [f"{module}: {error}" for module, code, error in results if code != 0]
    assert not failed, "\n".join(failed)
