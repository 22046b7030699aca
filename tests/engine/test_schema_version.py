"""The read-only commands outside the engine (`pfill preview --execute`, `pfill verify`) refuse an engine
database whose schema is not at this pfill's head, with the one message `runs list` gives (pfill.schema_version,
which the engine uses too), and leave the schema as it was. On SQLite and PostgreSQL (the `db_url` fixture).

pfill.schema_version knows the revisions without importing the engine (the layering): a constant, held
here equal to Alembic's revisions of engine/migrations."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from pfill import schema_version
from pfill.cli import cli
from pfill.database import open_database
from pfill.engine import db

OLDER = "0002"
PASSWORD_VAR = "PFILL_IT_SCHEMA_VERSION_PW"


def test_the_constant_is_alembics_head_and_revisions() -> None:
    assert db.head() == schema_version.HEAD  # a new revision in engine/migrations: add it to REVISIONS
    assert list(schema_version.REVISIONS) == db._known()
    assert [r for r, _ in schema_version.REVISIONS] == [r for r, _ in db.revisions()]
    assert schema_version.VERSION_TABLE == db.VERSION_TABLE
    assert db.SchemaError is schema_version.SchemaError and db.SchemaState is schema_version.SchemaState


class _Login(BaseHTTPRequestHandler):
    """A Superset that answers the login and records every other request (there must be none)."""

    seen: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/api/v1/security/login":
            body = json.dumps({"access_token": "token", "refresh_token": "refresh"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.do_GET()

    def do_GET(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def superset_login() -> Iterator[tuple[str, list[str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Login)
    seen: ClassVar[list[str]] = []
    _Login.seen = seen
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _schema(engine: sa.Engine) -> tuple[dict[str, set[str]], str | None]:
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        tables = {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}
        return tables, conn.execute(sa.text(f"SELECT version_num FROM {db.VERSION_TABLE}")).scalar()


def _one_error(code: int, out: str, err: str) -> str:
    assert code == 1, (code, out, err)
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    hints = [line for line in lines if line.startswith("hint: ")]
    assert len(errors) == 1 and len(hints) == 1 and "Traceback" not in out + err, err
    assert len(errors[0]) <= 220, errors[0]
    assert hints[0].startswith("hint: run `pfill db upgrade`"), hints[0]
    return errors[0]


def test_preview_and_verify_refuse_an_older_schema_and_leave_it(db_url: str, tmp_path: Path,
                                                                superset_login: tuple[str, list[str]]) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:  # the database a previous pfill made
        db.command.upgrade(db.alembic_config(conn), OLDER)
    before = _schema(engine)
    assert before[1] == OLDER
    labels = dict(schema_version.REVISIONS)
    expected = f"schema is at {OLDER} ({labels[OLDER]}), this pfill needs {db.head()} ({labels[db.head()]})"

    runner = CliRunner()
    home = ["--home", str(tmp_path / "home")]
    for args in (["preview", "run_overview", "--execute", "--db", db_url], ["preview", "--all", "--execute"]):
        result = runner.invoke(cli, [*home, "--db", db_url, *args])
        line = _one_error(result.exit_code, result.stdout, result.stderr)
        assert expected in line, line

    url, seen = superset_login
    config = tmp_path / "pfill.yaml"
    config.write_text(f"environments:\n  old:\n    superset:\n      url: {url}\n      username: admin\n"
                      f"      password: ${{{PASSWORD_VAR}}}\n    tenants:\n      acme:\n"
                      f"        database_url: '{db_url}'\n")
    result = runner.invoke(cli, [*home, "--config", str(config), "verify", "--env", "old"],
                           env={PASSWORD_VAR: "pw"})
    line = _one_error(result.exit_code, result.stdout, result.stderr)
    assert expected in line, line
    assert seen == []  # no chart was asked for

    # runs list says the same (the engine's check is this one)
    result = runner.invoke(cli, [*home, "--db", db_url, "runs", "list"])
    assert expected in _one_error(result.exit_code, result.stdout, result.stderr)
    assert _schema(engine) == before


def test_preview_refuses_a_database_without_the_engine_schema(db_url: str, tmp_path: Path) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE other_app (id INTEGER)")
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "preview", "switching", "--execute",
                                      "--db", db_url])
    assert result.exit_code == 1 and "is not initialised for the engine" in result.stderr, result.stderr
    assert "hint: not initialised; run `pfill db init`" in result.stderr
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == ["other_app"]
