"""Service fixtures: a real `pfill serve` over a demo database (SQLite file or PostgreSQL schema)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pfill.database import open_database
from pfill.engine.db import init_schema
from tests.engine.service.server import IDLE_BROKER, Server, add_tenant_inputs, empty_idle_broker


@pytest.fixture
def server(demo_db: str, tmp_path: Path) -> Iterator[Server]:
    """`pfill serve` (embedded executor) on the demo database; runs wait 1 s in cash_grid, so that a
    run is still active when the test looks."""
    srv = Server(demo_db, tmp_path / "home", env={"PFILL_TEST_STEP_DELAY": "cash_grid=1"}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def module_demo_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """demo_db for a module's shared server: the schema and demo inputs for tenants demo (seed 7) and
    acme (seed 8), on a SQLite file or a fresh PostgreSQL schema, kept for the module's tests."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('module-db') / 'engine.db'}"
        admin, schema = None, None
    else:
        base = request.getfixturevalue("postgres_url")
        schema = f"m_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    init_schema(open_database(url))
    add_tenant_inputs(url, "demo", seed=7)
    add_tenant_inputs(url, "acme", seed=8)
    yield url
    if admin is not None:
        open_database(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def idle_broker() -> Iterator[str]:
    """The broker URL of a `--executor celery` server that no worker serves (its runs stay queued)."""
    yield IDLE_BROKER
    empty_idle_broker()
