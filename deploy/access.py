"""Who sees a tenant: one viewer role per environment and tenant, kept by `apply` like any other object.

The role `pfill <env> <tenant> viewer` holds exactly `datasource_access` on the tenant's datasets
(charts and their data follow from those), each of the tenant's dashboards names it as its only
role (Superset's DASHBOARD_RBAC), and the users named under `viewers:` hold it. A user who holds
Gamma and this role sees that tenant's dashboards and data, and nothing of another tenant's.

Roles are matched by name, and only names of this exact shape are ever changed or deleted: a role
the kit did not name this way is never touched. Read and written through Superset's security API
(FAB_ADD_SECURITY_API = True on the server).
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import prison

from pfill.errors import ConfigError

from .client import SupersetClient, SupersetError
from .desired import DesiredState, dataset_name
from .identity import deployed_slug
from .live import LiveState
from .plan import Change, FieldDiff, Plan

DATASOURCE_ACCESS = "datasource_access"
ACCESS_ATTEMPTS = 3  # the role's writes, sent again after a server error (see apply_access)
_VIEW = re.compile(r"^\[(?P<database>.+)\]\.\[(?P<table>.+)\]\(id:(?P<id>\d+)\)$")


def role_name(env: str, tenant: str) -> str:
    return f"pfill {env} {tenant} viewer"


def _is_kit_role(name: str, env: str) -> str | None:
    """The tenant a role of this environment is named for, or None when the kit did not name it."""
    match = re.fullmatch(rf"pfill {re.escape(env)} (?P<tenant>\S+) viewer", name)
    return match["tenant"] if match else None


@dataclass
class SecurityState:
    """Roles, dataset grants and users as Superset has them, read once for every tenant."""

    roles: dict[str, dict[str, Any]]  # name -> {id, permission_ids, user_ids}
    grants: dict[int, str]  # datasource_access permission-view id -> its view name
    users: dict[str, int] = field(default_factory=dict)  # username -> id (only the viewers asked for)

    @classmethod
    def read(cls, client: SupersetClient, viewers: set[str]) -> SecurityState:
        """Roles, grants and the viewers asked for: three independent reads, side by side."""
        roles, grants, users = client.together(
            lambda: {row["name"]: row for row in client.iter_list("security/roles/search")},
            lambda: _read_grants(client),
            lambda: _read_users(client, viewers))
        return cls(roles, grants, users)


def _read_grants(client: SupersetClient) -> dict[int, str]:
    found = client.get("/api/v1/security/permissions/", params={"q": prison.dumps(
        {"filters": [{"col": "name", "opr": "eq", "value": DATASOURCE_ACCESS}]})})["result"]
    if not found:
        return {}
    only = [{"col": "permission", "opr": "rel_o_m", "value": found[0]["id"]}]
    return {row["id"]: row["view_menu"]["name"] for row in client.iter_list("security/permissions-resources", only)}


def _read_users(client: SupersetClient, viewers: set[str]) -> dict[str, int]:
    if not viewers:
        return {}
    only = [{"col": "username", "opr": "in", "value": sorted(viewers)}]
    return {row["username"]: row["id"] for row in client.iter_list("security/users", only)}


def _tenant_tables(state: DesiredState) -> list[str]:
    return sorted(dataset_name(o.name, state.env.name, state.tenant.name) for o in state.by_kind("dataset"))


def role_change(state: DesiredState, live: LiveState, security: SecurityState) -> Change | None:
    """The tenant's role as a plan change: create it, or update its grants, dashboards and viewers."""
    name = role_name(state.env.name, state.tenant.name)
    role = security.roles.get(name)
    database = state.database.name
    granted = sorted(
        m["table"] for pid in (role or {}).get("permission_ids", [])
        if pid in security.grants and (m := _VIEW.match(security.grants[pid])) and m["database"] == database)
    dashboards = [o for o in live.objects.values() if o.kind == "dashboard"]
    restricted = sorted(o.name for o in dashboards if role and [r.get("id") for r in o.fields.get("roles") or []]
                        == [role["id"]])
    wanted_viewers = sorted(state.tenant.viewers)
    holders = sorted(u for u, uid in security.users.items() if role and uid in role.get("user_ids", []))
    diffs = [FieldDiff(path, before, after) for path, before, after in (
        ("datasource_access", granted, _tenant_tables(state)),
        ("dashboards", restricted, sorted(_slugs(state))),
        ("viewers", holders, sorted(set(holders) | set(wanted_viewers))),
    ) if before != after]
    if role is not None and not diffs:
        return None
    return Change("create" if role is None else "update", "role", name, "", diffs=diffs)


def _slugs(state: DesiredState) -> list[str]:
    return [deployed_slug(state.tenant.name, o.key.key) for o in state.by_kind("dashboard")]


def stale_roles(env: str, tenants: list[str], security: SecurityState) -> list[Change]:
    """Roles of this environment's tenants that left the config (deleted with --prune)."""
    return [Change("delete", "role", name, "") for name in sorted(security.roles)
            if (tenant := _is_kit_role(name, env)) is not None and tenant not in tenants]


def apply_access(client: SupersetClient, plan: Plan, change: Change) -> int:
    """Make the tenant's role, its grants, its dashboards and its viewers what the plan says."""
    writes = client.writes
    if change.action == "delete":
        role = SecurityState.read(client, set()).roles.get(change.name)
        if role:
            client.delete(f"/api/v1/security/roles/{role['id']}", expect=(404,))
        return client.writes - writes
    for attempt in range(1, ACCESS_ATTEMPTS + 1):
        try:
            client.send_many(_access_calls(client, plan, change))
            break
        except SupersetError as exc:
            # Two applies writing one role's rows at once: Superset inserts a row the other has just
            # inserted and answers 500. The writes set whole lists, so read again and send what is left.
            if attempt == ACCESS_ATTEMPTS or exc.status is None or exc.status < 500:
                raise
            time.sleep(random.uniform(0.2, 0.6))  # apart, so the two do not meet again
    return client.writes - writes


def _access_calls(client: SupersetClient, plan: Plan, change: Change) -> list[tuple[str, str, dict[str, Any]]]:
    """The writes that bring the role, its grants, dashboards and viewers to the plan, from a fresh read."""
    state = plan.state
    # the ids of the tenant's dashboards, those the import just created included (one filtered list),
    # and the grants of its datasets, which exist only once they are imported
    wanted_dashboards = [{"col": "uuid", "opr": "in", "value": [o.uuid for o in state.by_kind("dashboard")]}]
    dashboards, security = client.together(
        lambda: list(client.iter_list("dashboard", wanted_dashboards, columns=["id", "roles.id"])),
        lambda: SecurityState.read(client, set(state.tenant.viewers)))
    missing_users = [name for name in state.tenant.viewers if name not in security.users]
    if missing_users:
        raise ConfigError(f"viewers of {state.env.name}/{state.tenant.name} not found in Superset: "
                          f"{', '.join(missing_users)}", hint="create the users first, or remove them from viewers:")
    role = security.roles.get(change.name)
    role_id = role["id"] if role else _create_role(client, change.name)
    tables = set(_tenant_tables(state))
    database = state.database.name
    wanted = sorted(pid for pid, view in security.grants.items()
                    if (m := _VIEW.match(view)) and m["database"] == database and m["table"] in tables)
    calls: list[tuple[str, str, dict[str, Any]]] = []  # independent writes: sent side by side
    if wanted != sorted((role or {}).get("permission_ids", [])):
        calls.append(("POST", f"/api/v1/security/roles/{role_id}/permissions",
                      {"json": {"permission_view_menu_ids": wanted}}))
    calls += [("PUT", f"/api/v1/dashboard/{d['id']}", {"json": {"roles": [role_id]}}) for d in dashboards
              if [r.get("id") for r in d.get("roles") or []] != [role_id]]
    holders = set((role or {}).get("user_ids", []))
    required = {security.users[name] for name in state.tenant.viewers}
    if not required <= holders:
        calls.append(("PUT", f"/api/v1/security/roles/{role_id}/users",
                      {"json": {"user_ids": sorted(holders | required)}}))
    return calls


def _create_role(client: SupersetClient, name: str) -> int:
    """The new role's id; when another apply created it meanwhile (a name is unique), that one's."""
    try:
        return int(client.post("/api/v1/security/roles/", json={"name": name})["id"])
    except SupersetError:
        made = SecurityState.read(client, set()).roles.get(name)
        if made is None:
            raise
        return int(made["id"])


def ensure_viewer(client: SupersetClient, username: str, role: str, password: str) -> None:
    """A user holding Gamma (Superset's read-only base) and the tenant's viewer role, with this
    password: created, or brought to that state (for the local demo's viewers)."""
    roles = SecurityState.read(client, {username})
    role_ids = [roles.roles["Gamma"]["id"], roles.roles[role]["id"]]
    if username in roles.users:
        client.put(f"/api/v1/security/users/{roles.users[username]}", json={"roles": role_ids, "password": password})
    else:
        client.post("/api/v1/security/users/", json={
            "first_name": username, "last_name": "viewer", "username": username, "email": f"{username}@example.invalid",
            "active": True, "password": password, "roles": role_ids})
