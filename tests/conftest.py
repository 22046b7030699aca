"""Shared fixtures: a real PostgreSQL database per session and a real Superset per session.

PostgreSQL is the server on 127.0.0.1:5432 (override with PFILL_TEST_PG_URL, an admin URL). When it
does not answer, tests that need it fail under CI (CI=true) and are skipped, loudly, elsewhere.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

if TYPE_CHECKING:
    from pfill.deploy.client import SupersetClient
    from pfill.deploy.local_superset import LocalSuperset

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("PFILL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _unavailable(what: str, why: str) -> None:
    message = f"{what} is not available: {why}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(f"SKIPPED, NOT PASSED: {message}")


class PostgresServer:
    """The PostgreSQL server the tests use; hands out fresh databases and drops them at the end."""

    def __init__(self) -> None:
        self.admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
        self.created: list[str] = []

    def check(self) -> None:
        try:
            with self.admin.connect() as conn:
                conn.execute(sa.text("select 1"))
        except Exception as exc:
            self.admin.dispose()
            where = sa.engine.make_url(PG_ADMIN_URL).render_as_string()
            _unavailable(f"PostgreSQL at {where}", str(exc).splitlines()[0])

    def new_database(self, purpose: str = "test") -> str:
        name = f"pfill_{purpose}_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in self.created:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.check()
    try:
        yield server
    finally:
        server.drop_all()


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database for this test session; dropped at the end."""
    return postgres.new_database("test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shared_superset_venv() -> Path:
    """The Superset virtual environment the tests share with `pfill superset up` run from the repo,
    so it is installed once per clone (PFILL_SUPERSET_VENV overrides)."""
    return Path(os.environ.get("PFILL_SUPERSET_VENV") or REPO / ".pfill" / "superset" / "venv")


@pytest.fixture(scope="session")
def superset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSuperset]:
    """A real Superset 6.1, started through the same code as `pfill superset up`, on a free port
    with a throw-away home."""
    from pfill.deploy.local_superset import LocalSuperset, StackError

    home = tmp_path_factory.mktemp("superset-home")
    stack = LocalSuperset(home, port=free_port(), venv=shared_superset_venv())
    try:
        stack.up(lambda line: print(f"[superset] {line}", flush=True), timeout=240)
    except StackError as exc:
        stack.stop()
        pytest.fail(f"the test Superset did not start: {exc}", pytrace=False)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def superset_client(superset: LocalSuperset) -> Iterator[SupersetClient]:
    from pfill.deploy.client import SupersetClient

    with SupersetClient(superset.url, "admin", superset.admin_password()) as client:
        client.login()
        yield client
