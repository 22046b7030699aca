"""Reading Superset's state: lists once for all tenants, details only where a row changed since the
kit last read it (validated by the row's changed_on), and a layout edited by hand still seen."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pfill.config import Settings
from pfill.deploy.client import SupersetClient
from pfill.deploy.project import Project

from .conftest import PASSWORD_VAR

pytestmark = [pytest.mark.superset, pytest.mark.postgres]


class RecordingClient(SupersetClient):
    """Remembers the path of every GET it sends (a real client, nothing stubbed)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.paths: list[str] = []

    def request(self, method, path, **kwargs):  # type: ignore[no-untyped-def]
        if method.upper() == "GET":
            self.paths.append(path.split("?")[0])
        return super().request(method, path, **kwargs)


def _project(deploy_target, env: str, monkeypatch) -> tuple[Project, RecordingClient]:
    monkeypatch.setenv(PASSWORD_VAR, deploy_target.password)
    settings = Settings.resolve(home=deploy_target.home, config=deploy_target.config)
    client = RecordingClient(deploy_target.url, "admin", deploy_target.password)
    return Project.load(settings, env).using(client), client


def _details(paths: list[str]) -> list[str]:
    return [p for p in paths if not p.endswith("/")]  # list endpoints end in "/"; details do not


def _object_walks(paths: list[str]) -> list[str]:
    """The list calls over databases, datasets, charts and dashboards (the security API's roles and
    grants, read once per plan for every tenant, are counted apart)."""
    kinds = tuple(f"/api/v1/{kind}/" for kind in ("database", "dataset", "chart", "dashboard"))
    return [p for p in paths if p in kinds]


def _pages(superset_client: SupersetClient, kind: str) -> int:
    """How many pages of 100 a walk over every object of a kind takes."""
    count = superset_client.get(f"/api/v1/{kind}/", params={"q": "(page_size:1)"})["count"]
    return max(1, -(-count // 100))


def test_warm_plan_reads_lists_only_and_still_sees_a_layout_edited_by_hand(
        deploy_target, superset_client, monkeypatch) -> None:
    deploy_target.write_env("warm", ["warm"])
    assert deploy_target.pfill("apply", "--env", "warm", "--yes").exit_code == 0
    project, client = _project(deploy_target, "warm", monkeypatch)
    (cold,) = project.plan()
    assert not cold.pending
    client.paths.clear()
    (warm,) = project.plan()
    assert not warm.pending
    assert _details(client.paths) == []  # layouts and the connection came from the cache
    # one walk per kind: databases, this tenant's datasets, their charts, dashboards
    assert len(_object_walks(client.paths)) == 3 + _pages(superset_client, "dashboard")
    # and the security API: roles, the grant permission, the grants (a page per 100 datasets)
    assert len(client.paths) - len(_object_walks(client.paths)) <= 2 + _pages(superset_client, "dataset")

    hub = next(o for o in warm.live.objects.values() if o.kind == "dashboard" and o.name.endswith("-hub"))
    metadata = json.loads(superset_client.get(f"/api/v1/dashboard/{hub.id}")["result"]["json_metadata"])
    superset_client.put(f"/api/v1/dashboard/{hub.id}",
                        json={"json_metadata": json.dumps({**metadata, "refresh_frequency": 300})})
    client.paths.clear()
    (edited,) = project.plan()
    assert [(c.action, c.kind, c.live.id if c.live else None) for c in edited.pending] == [
        ("update", "dashboard", hub.id)]
    assert [d.path for d in edited.pending[0].diffs] == ["json_metadata.refresh_frequency"]
    assert _details(client.paths) == [f"/api/v1/dashboard/{hub.id}"]  # only the edited row is read again

    assert deploy_target.pfill("apply", "--env", "warm", "--yes").exit_code == 0
    assert deploy_target.pfill("plan", "--env", "warm").exit_code == 0


def test_several_tenants_read_once_see_what_each_alone_sees(deploy_target, superset_client, monkeypatch) -> None:
    deploy_target.write_env("many", ["many1", "many2", "many3"])
    assert deploy_target.pfill("apply", "--env", "many", "--yes").exit_code == 0
    project, client = _project(deploy_target, "many", monkeypatch)
    together = project.live()
    walks = _object_walks(client.paths)
    # one walk per kind for the three tenants together, not one per tenant
    assert len(walks) == 2 + _pages(superset_client, "dataset") + _pages(superset_client, "dashboard")
    for state, live in zip(project.states, together, strict=True):
        settings = Settings.resolve(home=deploy_target.home, config=deploy_target.config)
        alone = Project.load(settings, "many", [state.tenant.name]).using(client).live()[0]
        assert len(live.objects) == 49
        assert {u: (o.kind, o.id, o.fields) for u, o in live.objects.items()} == {
            u: (o.kind, o.id, o.fields) for u, o in alone.objects.items()}


def test_a_walk_over_several_pages_sees_every_object_once(deploy_target, superset_client) -> None:
    """After the first page the rest are read side by side: the same rows as pages read one by one."""
    deploy_target.write_env("paged", ["paged1", "paged2", "paged3", "paged4"])  # 128 charts at least
    assert deploy_target.pfill("apply", "--env", "paged", "--yes").exit_code == 0
    walked = [row["id"] for row in superset_client.iter_list("chart", columns=["id"])]
    count = superset_client.get("/api/v1/chart/", params={"q": "(page_size:1)"})["count"]
    assert count > 100
    one_by_one = [row["id"] for page in range(_pages(superset_client, "chart"))
                  for row in superset_client.get("/api/v1/chart/", params={
                      "q": f"(columns:!(id),page:{page},page_size:100)"})["result"]]
    assert len(walked) == len(set(walked)) == count
    assert walked == one_by_one
