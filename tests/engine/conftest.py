"""Engine fixtures: a fresh database per test on SQLite (a file) or PostgreSQL (its own schema)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pfill.database import open_database
from pfill.engine import demo_data
from pfill.engine.db import init_schema
from tests.engine.helpers import AS_OF


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty engine database: a SQLite file, or a fresh schema in the session's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'engine.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def demo_db(db_url: str) -> str:
    """The schema plus small demo inputs for tenant `demo`."""
    engine = open_database(db_url)
    init_schema(engine)
    demo_data.replace_tenant_inputs(engine, "demo", demo_data.generate(400, 12, seed=7, as_of=AS_OF))
    return db_url


