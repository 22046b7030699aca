"""Service fixtures: a real `pfill serve` over a demo database (SQLite file or PostgreSQL schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.service.server import Server


@pytest.fixture
def server(demo_db: str, tmp_path: Path) -> Iterator[Server]:
    """`pfill serve` (embedded executor) on the demo database; runs wait 1 s in cash_grid, so that a
    run is still active when the test looks."""
    srv = Server(demo_db, tmp_path / "home", env={"PFILL_TEST_STEP_DELAY": "cash_grid=1"}).start()
    yield srv
    srv.stop()
