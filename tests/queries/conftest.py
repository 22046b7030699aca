"""Helpers for the query tests: a writable copy of the packaged queries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pfill.queries.template import PACKAGED_QUERIES


@pytest.fixture
def queries_copy(tmp_path: Path) -> Path:
    """A copy of the packaged queries folder that a test may break."""
    folder = tmp_path / "queries"
    shutil.copytree(PACKAGED_QUERIES, folder, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return folder


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))
