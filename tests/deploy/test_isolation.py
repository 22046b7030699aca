"""Tenants on one Superset see only their own: each tenant's viewer role grants its datasets and
dashboards and nothing else; roles follow the config (viewers, prune) and never touch others'."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from pfill.deploy.access import SecurityState
from pfill.deploy.client import SupersetClient, SupersetError

pytestmark = [pytest.mark.superset, pytest.mark.postgres]
VIEWER_PASSWORD = "Viewer-Pw-" + uuid.uuid4().hex[:8]


def _roles(client: SupersetClient) -> dict[str, dict]:
    """Every role by name (all pages: each environment and tenant the tests deploy has one)."""
    return SecurityState.read(client, set()).roles


def _user(admin: SupersetClient, name: str, roles: list[int]) -> SupersetClient:
    admin.post("/api/v1/security/users/", json={
        "first_name": name, "last_name": "viewer", "username": name, "email": f"{name}@example.com",
        "active": True, "password": VIEWER_PASSWORD, "roles": roles})
    user = SupersetClient(admin.url, name, VIEWER_PASSWORD)
    user.login()
    return user


@pytest.fixture(scope="module")
def two_tenants(deploy_target, superset_client):
    deploy_target.write_env("iso", ["isonorth", "isosouth"])
    applied = deploy_target.pfill("apply", "--env", "iso", "--yes")
    assert applied.exit_code == 0, applied.output
    roles = _roles(superset_client)
    gamma = roles["Gamma"]["id"]
    north = _user(superset_client, "viewer-isonorth", [gamma, roles["pfill iso isonorth viewer"]["id"]])
    return north, roles


def _chart_of(admin: SupersetClient, tenant: str) -> dict:
    datasets = {d["id"] for d in admin.iter_list("dataset", columns=["id", "table_name"])
                if d["table_name"].endswith(f"(iso/{tenant})")}
    chart = next(c for c in admin.iter_list("chart", columns=["id", "datasource_id"]) if c["datasource_id"] in datasets)
    return admin.get(f"/api/v1/chart/{chart['id']}")["result"]


def test_a_viewer_sees_only_their_tenants_dashboards(two_tenants) -> None:
    north, _ = two_tenants
    slugs = sorted(d["slug"] for d in north.iter_list("dashboard", columns=["slug"]))
    assert len(slugs) == 8 and all(s.startswith("pfill-isonorth-") for s in slugs), slugs


def test_a_viewer_gets_their_charts_data_and_is_refused_anothers(two_tenants, superset_client) -> None:
    north, _ = two_tenants
    own = north.post("/api/v1/chart/data", json=json.loads(_chart_of(superset_client, "isonorth")["query_context"]))
    assert own["result"][0]["rowcount"] > 0
    with pytest.raises(SupersetError) as refused:
        north.post("/api/v1/chart/data", json=json.loads(_chart_of(superset_client, "isosouth")["query_context"]))
    assert refused.value.status == 403


def test_a_viewer_cannot_query_another_tenants_database(two_tenants, superset_client) -> None:
    north, _ = two_tenants
    south_db = next(d["id"] for d in superset_client.iter_list("database", columns=["id", "database_name"])
                    if d["database_name"] == "PowerFill isosouth (iso)")
    with pytest.raises(SupersetError) as refused:
        north.post("/api/v1/sqllab/execute/", json={"database_id": south_db, "sql": "SELECT 1", "runAsync": False})
    assert refused.value.status == 403


def test_roles_follow_the_config_and_leave_others_alone(two_tenants, deploy_target, superset_client) -> None:
    """viewers: puts a user in the role; a tenant leaving the config loses its role on --prune only;
    a role the kit did not name is never touched; the second apply writes nothing."""
    superset_client.post("/api/v1/security/roles/", json={"name": "pfill iso handmade"})  # not the kit's shape
    _user(superset_client, "viewer-isosouth-extra", [_roles(superset_client)["Gamma"]["id"]])
    data = yaml.safe_load(deploy_target.config.read_text())
    data["environments"]["iso"]["tenants"]["isosouth"]["viewers"] = ["viewer-isosouth-extra"]
    deploy_target.config.write_text(yaml.safe_dump(data))
    assert deploy_target.pfill("apply", "--env", "iso", "--yes").exit_code == 0
    roles = _roles(superset_client)
    extra = next(u for u in superset_client.iter_list("security/users", columns=["id", "username"])
                 if u["username"] == "viewer-isosouth-extra")
    assert extra["id"] in roles["pfill iso isosouth viewer"]["user_ids"]
    again = deploy_target.pfill("apply", "--env", "iso", "--yes", "--json")
    assert [row["writes"] for row in json.loads(again.stdout)] == [0, 0]

    del data["environments"]["iso"]["tenants"]["isosouth"]
    deploy_target.config.write_text(yaml.safe_dump(data))
    plan = deploy_target.pfill("plan", "--env", "iso", "--prune")
    assert "- role      pfill iso isosouth viewer" in plan.stdout
    assert deploy_target.pfill("apply", "--env", "iso", "--yes").exit_code == 0
    assert "pfill iso isosouth viewer" in _roles(superset_client)  # without --prune: kept
    assert deploy_target.pfill("apply", "--env", "iso", "--yes", "--prune").exit_code == 0
    roles = _roles(superset_client)
    assert "pfill iso isosouth viewer" not in roles and "pfill iso isonorth viewer" in roles
    assert "pfill iso handmade" in roles
