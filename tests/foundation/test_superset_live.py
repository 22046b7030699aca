"""Against the real Superset the test session starts: login, CRUD through the REST API, auth errors."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from pfill.deploy.client import SupersetClient, SupersetError

pytestmark = pytest.mark.superset


def _create_read_delete_database(client: SupersetClient, name: str, uri: str) -> None:
    key = str(uuid.uuid4())
    created = client.post(
        "/api/v1/database/",
        json={"database_name": name, "sqlalchemy_uri": uri, "uuid": key, "expose_in_sqllab": True},
    )
    database_id = created["id"]
    try:
        read = client.get(f"/api/v1/database/{database_id}")["result"]
        assert read["database_name"] == name
        found = client.find_by_uuid("database", key)
        assert found is not None and found["id"] == database_id
        # the database really answers: run SQL through Superset against it
        rows = client.post(
            "/api/v1/sqllab/execute/",
            json={"database_id": database_id, "sql": "SELECT 41 + 1 AS answer", "runAsync": False},
        )
        assert rows["data"][0]["answer"] == 42
    finally:
        client.delete(f"/api/v1/database/{database_id}")
    with pytest.raises(SupersetError) as gone:
        client.get(f"/api/v1/database/{database_id}")
    assert gone.value.status == 404
    assert client.find_by_uuid("database", key) is None


def test_login_to_live_superset(superset_client: SupersetClient) -> None:
    me = superset_client.get("/api/v1/me/")["result"]
    assert me["username"] == "admin"


def test_create_read_delete_sqlite_database(superset_client: SupersetClient, tmp_path) -> None:
    path = tmp_path / "data.db"
    import sqlite3

    sqlite3.connect(path).execute("create table t (x int)").connection.close()
    _create_read_delete_database(superset_client, f"pfill-test-sqlite-{uuid.uuid4().hex[:6]}", f"sqlite:///{path}")


@pytest.mark.postgres
def test_create_read_delete_postgresql_database(superset_client: SupersetClient, postgres_url: str) -> None:
    _create_read_delete_database(superset_client, f"pfill-test-pg-{uuid.uuid4().hex[:6]}", postgres_url)


def test_token_refresh_against_live_server(superset) -> None:
    """The refresh token really buys a new access token (the 401 trigger is tested with injected faults)."""
    with SupersetClient(superset.url, "admin", superset.admin_password()) as client:
        client.login()
        client._access_token = client.session.headers["Authorization"] = "stale"
        client._refresh()
        assert client.session.headers["Authorization"].startswith("Bearer ey")
        assert client.get("/api/v1/me/")["result"]["username"] == "admin"


def test_wrong_password_is_one_line_with_user_url_and_401(superset, tmp_path) -> None:
    """Through the real command: exit 1, one line, user and URL named, no traceback, no password."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PFILL_HOME": str(superset.root.parent),
        "PFILL_SUPERSET_PASSWORD": "definitely-wrong-pw",
        "PFILL_SUPERSET_PORT": str(superset.port),
    }
    result = subprocess.run(
        [sys.executable, "-m", "pfill", "env", "check"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines == [f"error: environment local: login as 'admin' at {superset.url} failed with 401: wrong user name "
                     "or password"]
    assert "definitely-wrong-pw" not in result.stdout + result.stderr


def test_env_check_logs_in_with_the_stored_password(superset, tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PFILL_HOME": str(superset.root.parent)}
    result = subprocess.run(
        [sys.executable, "-m", "pfill", "env", "check", "--json"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert '"login": "ok"' in result.stdout
