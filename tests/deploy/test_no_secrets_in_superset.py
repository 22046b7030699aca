"""No secret reaches Superset's own records: a tenant database's password travels inside the import
bundle (which Superset does not log), never in a form field (which its action log keeps as is)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import make_url

from .conftest import run_engine

pytestmark = [pytest.mark.superset, pytest.mark.postgres]

SECRET = "Tenant-Db-Pw-7Qx"  # the test PostgreSQL trusts local connections, so any password works


def test_tenant_password_never_lands_in_supersets_action_log(deploy_target, superset_client, postgres,
                                                             monkeypatch) -> None:
    base = make_url(postgres.new_database("secret"))
    run_engine(base.render_as_string(hide_password=False), "secretive")
    monkeypatch.setenv("TENANT_DB_PW", SECRET)
    deploy_target.tenants["secretive"] = (f"{base.drivername}://{base.username}:${{TENANT_DB_PW}}@{base.host}:"
                                          f"{base.port}/{base.database}")
    deploy_target.write_env("secret", ["secretive"])

    applied = deploy_target.pfill("apply", "--env", "secret", "--yes")
    assert applied.exit_code == 0, applied.output
    verified = deploy_target.pfill("verify", "--env", "secret", "--json")
    assert verified.exit_code == 0, verified.output  # Superset got the password: its charts run
    assert SECRET not in applied.output + verified.output

    written = [p for p in deploy_target.home.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert written == [], "the kit wrote the password into its own files"

    logged = [row for row in superset_client.iter_list("log") if "assets" in json.dumps(row)]
    assert logged, "Superset logged no import: this test would prove nothing"
    assert all(SECRET not in json.dumps(row) for row in superset_client.iter_list("log"))
