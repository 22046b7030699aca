"""The live state: what Superset holds for the tenants' managed objects, read through the REST API
with a handful of list calls for all tenants at once (and a detail call where a list leaves a
compared field out)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import prison

from .client import SupersetClient
from .desired import KINDS, DesiredState
from .identity import ObjectKey, dataset_marker, deployed_slug, parse_marker
from .live_cache import DetailCache

DATASET_COLUMNS = ["id", "uuid", "table_name", "schema", "sql", "description", "extra", "database.id"]
CHART_COLUMNS = ["id", "uuid", "slice_name", "viz_type", "datasource_id", "description", "params",
                 "certified_by", "certification_details"]
DATABASE_COLUMNS = ["id", "uuid", "database_name", "expose_in_sqllab", "allow_run_async", "allow_dml"]
DASHBOARD_COLUMNS = ["id", "uuid", "slug", "dashboard_title", "published", "certified_by", "certification_details",
                     "roles.id"]
CHANGED_ON = {"database": "changed_on", "dashboard": "changed_on_utc"}  # moves on every write to the row
DASHBOARD_DETAIL = ("dashboard_title", "slug", "published", "position_json", "json_metadata", "certified_by",
                    "certification_details")
DASHBOARD_LAYOUT = ("position_json", "json_metadata")  # not in the list endpoint: one detail call each


@dataclass
class LiveObject:
    kind: str
    id: int
    uuid: str
    name: str
    fields: dict[str, Any]
    marker: ObjectKey | None = None


@dataclass
class LiveState:
    objects: dict[str, LiveObject] = field(default_factory=dict)  # by uuid
    others: list[LiveObject] = field(default_factory=list)  # same-named objects this tenant does not own

    @property
    def ids(self) -> dict[str, int]:
        return {uuid: obj.id for uuid, obj in self.objects.items()}

    def add(self, obj: LiveObject) -> None:
        self.objects[obj.uuid] = obj


def _owned(marker: ObjectKey | None, state: DesiredState) -> bool:
    return marker is not None and marker.env == state.env.name and marker.tenant == state.tenant.name


def read_live(client: SupersetClient, state: DesiredState) -> LiveState:
    """One tenant's live state (see read_live_all)."""
    return read_live_all(client, [state])[0]


def read_live_all(client: SupersetClient, states: list[DesiredState], cache: DetailCache | None = None
                  ) -> list[LiveState]:
    """The live state of every tenant, read once for all of them. Databases, then datasets, then
    charts (each list filtered by the one before) go one after another, and dashboards beside them;
    detail reads (database connections, dashboard layouts) go side by side, and only where the cache
    does not hold them for the row's current `changed_on`. 5 requests plus one dataset list per tenant
    when warm, in 3 rounds."""
    cache = cache or DetailCache(None)
    lives = [LiveState() for _ in states]

    def databases_datasets_charts() -> None:
        database_ids = _read_databases(client, states, lives, cache)
        _read_charts(client, states, lives, _read_datasets(client, states, lives, database_ids))

    client.together(databases_datasets_charts, lambda: _read_dashboards(client, states, lives, cache))
    for live in lives:  # in dependency order, as if read one after another
        live.others.sort(key=lambda obj: KINDS.index(obj.kind))
    cache.save()
    return lives


def _details(client: SupersetClient, cache: DetailCache, kind: str, rows: list[dict[str, Any]],
             path: Callable[[dict[str, Any]], str], pick: Callable[[dict[str, Any]], dict[str, Any]]
             ) -> list[dict[str, Any]]:
    """The detail fields of each row: from the cache where the row has not changed since, else read
    side by side (and cached)."""
    stamps = [row.get(CHANGED_ON[kind]) for row in rows]
    found = [cache.get(row["uuid"], stamp) for row, stamp in zip(rows, stamps, strict=True)]
    missing = [i for i, fields in enumerate(found) if fields is None]
    for i, body in zip(missing, client.get_many([path(rows[i]) for i in missing]), strict=True):
        found[i] = pick(body["result"])
        cache.put(rows[i]["uuid"], stamps[i], found[i])
    return [fields or {} for fields in found]


def _read_databases(client: SupersetClient, states: list[DesiredState], lives: list[LiveState],
                    cache: DetailCache) -> list[int | None]:
    """Each tenant's database (one list for all), with its connection URI (side by side)."""
    rows = list(client.iter_list("database", columns=[*DATABASE_COLUMNS, CHANGED_ON["database"]]))
    owned: list[dict[str, Any] | None] = []
    for state, live in zip(states, lives, strict=True):
        database = state.database
        owned.append(next((row for row in rows if row["uuid"] == database.uuid), None))
        live.others += [LiveObject("database", row["id"], row["uuid"], row["database_name"], {})
                        for row in rows if row["uuid"] != database.uuid and row["database_name"] == database.name]
    found = [row for row in owned if row is not None]
    connections = iter(_details(client, cache, "database", found,
                                lambda row: f"/api/v1/database/{row['id']}/connection",
                                lambda detail: {"sqlalchemy_uri": detail.get("sqlalchemy_uri")}))
    for state, live, row in zip(states, lives, owned, strict=True):
        if row is not None:
            fields = {k: row.get(k) for k in DATABASE_COLUMNS[2:]}
            fields.update(next(connections))
            live.add(LiveObject("database", row["id"], row["uuid"], row["database_name"], fields, state.database.key))
    return [row["id"] if row else None for row in owned]


def _read_datasets(client: SupersetClient, states: list[DesiredState], lives: list[LiveState],
                   database_ids: list[int | None]) -> list[set[int]]:
    """Datasets of each tenant's database (they live nowhere else); returns each tenant's owned ids.
    One tenant: its database's datasets. Several: one walk over all datasets (a list call costs about
    as much as a page of 100, and the relation filter takes one database at a time)."""
    wanted = {database_id for database_id in database_ids if database_id is not None}
    if not wanted:
        return [set() for _ in states]
    only = [{"col": "database", "opr": "rel_o_m", "value": next(iter(wanted))}] if len(wanted) == 1 else None
    by_database: dict[int, list[dict[str, Any]]] = {}
    for row in client.iter_list("dataset", only, columns=DATASET_COLUMNS):
        by_database.setdefault((row.get("database") or {}).get("id"), []).append(row)
    owned_ids: list[set[int]] = []
    for state, live, database_id in zip(states, lives, database_ids, strict=True):
        desired, owned = state.by_uuid(), set()
        for row in by_database.get(database_id, []) if database_id is not None else []:
            fields = {k: row.get(k) for k in DATASET_COLUMNS[2:-1]}
            fields["database_id"] = database_id
            marker = dataset_marker(row.get("extra"))
            obj = LiveObject("dataset", row["id"], row["uuid"], marker.key if marker else row["table_name"], fields,
                             marker)
            if row["uuid"] in desired or _owned(obj.marker, state):
                live.add(obj)
                owned.add(obj.id)
            else:
                live.others.append(obj)
        owned_ids.append(owned)
    return owned_ids


def _read_charts(client: SupersetClient, states: list[DesiredState], lives: list[LiveState],
                 dataset_ids: list[set[int]]) -> None:
    """Charts on the owned datasets: one list for all tenants."""
    every_id = sorted(set().union(*dataset_ids))
    if not every_id:
        return
    chart_filter = [{"col": "datasource_id", "opr": "in", "value": every_id}]
    tenants = [(state, live, state.by_uuid(), ids) for state, live, ids in zip(states, lives, dataset_ids, strict=True)]
    for row in client.iter_list("chart", chart_filter, columns=CHART_COLUMNS):
        fields = {k: row.get(k) for k in CHART_COLUMNS[2:]}
        marker = parse_marker(row.get("certification_details"))
        name = marker.key if marker else row["slice_name"]
        for state, live, desired, tenant_dataset_ids in tenants:
            if row["datasource_id"] in tenant_dataset_ids and (row["uuid"] in desired or _owned(marker, state)):
                live.add(LiveObject("chart", row["id"], row["uuid"], name, fields, marker))


def _read_dashboards(client: SupersetClient, states: list[DesiredState], lives: list[LiveState],
                     cache: DetailCache) -> None:
    """Owned dashboards with their layouts (read side by side); a stranger holding one of our slugs
    becomes a conflict."""
    rows = list(client.iter_list("dashboard", columns=[*DASHBOARD_COLUMNS, CHANGED_ON["dashboard"]]))
    owned: list[tuple[LiveState, dict[str, Any], ObjectKey | None]] = []
    for state, live in zip(states, lives, strict=True):
        desired = state.by_uuid()
        slugs = {deployed_slug(state.tenant.name, o.key.key) for o in state.by_kind("dashboard")}
        for row in rows:
            marker = parse_marker(row.get("certification_details"))
            if row["uuid"] in desired or _owned(marker, state):
                owned.append((live, row, marker))
            elif row.get("slug") in slugs:
                live.others.append(LiveObject("dashboard", row["id"], row["uuid"], row["slug"], {}))
    query = prison.dumps({"columns": list(DASHBOARD_LAYOUT)})
    layouts = _details(client, cache, "dashboard", [row for _, row, _ in owned],
                       lambda row: f"/api/v1/dashboard/{row['id']}?q={query}",
                       lambda detail: {k: detail.get(k) for k in DASHBOARD_LAYOUT})
    for (live, row, marker), layout in zip(owned, layouts, strict=True):
        fields = {k: row.get(k) for k in DASHBOARD_DETAIL if k not in DASHBOARD_LAYOUT}
        fields.update(layout, roles=row.get("roles") or [])  # roles: the tenant's viewer role (access.py)
        live.add(LiveObject("dashboard", row["id"], row["uuid"], row["slug"] or "", fields, marker))
