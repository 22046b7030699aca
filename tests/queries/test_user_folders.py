"""The packaged folders double as starters: a copy of them, .py files included, loads as a user folder.

(The layer rule and lone imports of pfill.queries and pfill.dashboards: tests/foundation/test_layers.py.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pfill.dashboards.specs import load_specs, packaged_dashboards, validate_specs
from pfill.queries.catalog import load_queries
from pfill.queries.template import PACKAGED_QUERIES


def test_folders_with_stray_python_files_still_load(tmp_path: Path) -> None:
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
