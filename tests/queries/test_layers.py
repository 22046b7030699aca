"""The layer rule for pfill.queries and pfill.dashboards, and their folders as user folders.

pfill.queries imports only the pfill foundation; pfill.dashboards the foundation and pfill.queries;
neither reaches up to deploy, engine, the CLI root or the demo. Every module imports on its own.
"""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pfill.dashboards.specs import load_specs, packaged_dashboards, validate_specs
from pfill.queries.catalog import load_queries
from pfill.queries.template import PACKAGED_QUERIES

FOUNDATION = {f"pfill.{name}" for name in
              ("errors", "config", "dialects", "database", "secrets", "yamlfile", "output", "options")}
ALLOWED = {"pfill.queries": FOUNDATION, "pfill.dashboards": FOUNDATION | {"pfill.queries"}}


def _modules(package: str) -> list[tuple[str, Path]]:
    folder = Path(str(importlib.import_module(package).__file__)).parent
    return [(package if p.stem == "__init__" else f"{package}.{p.stem}", p) for p in sorted(folder.glob("*.py"))]


def _imports(package: str, path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (module level, TYPE_CHECKING, functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (node.module or "") if node.level == 0 else ".".join([package, *filter(None, [node.module])])
            found.add(base)
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below(package: str) -> None:
    for module, path in _modules(package):
        for imported in _imports(package, path):
            if imported != "pfill" and not imported.startswith("pfill."):
                continue  # standard library and third-party
            allowed = imported == package or imported.startswith(f"{package}.") or any(
                imported == layer or imported.startswith(f"{layer}.") for layer in ALLOWED[package]
            )
            assert allowed, f"{module} imports {imported}"


@pytest.mark.parametrize("module", [m for p in sorted(ALLOWED) for m, _ in _modules(p)])
def test_module_imports_alone(module: str) -> None:
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_folders_with_stray_python_files_still_load(tmp_path: Path) -> None:
    # a user who copies the packaged folders as a starter also copies their .py files
    queries = tmp_path / "queries"
    dashboards = tmp_path / "dashboards"
    shutil.copytree(PACKAGED_QUERIES, queries, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(packaged_dashboards(), dashboards, ignore=shutil.ignore_patterns("__pycache__"))
    assert (queries / "catalog.py").exists() and (dashboards / "specs.py").exists()
    loaded = load_queries(queries)
    assert list(loaded) == list(load_queries())
    specs = load_specs(dashboards)
    assert len(specs) == 8
    assert validate_specs(specs, loaded) == []
