"""The live state: what Superset holds for one tenant's managed objects, read through the REST API
with a handful of list calls (and a detail call where a list leaves a compared field out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .client import SupersetClient
from .desired import DesiredState
from .identity import ObjectKey, dataset_marker, deployed_slug, parse_marker

DATASET_COLUMNS = ["id", "uuid", "table_name", "schema", "sql", "description", "extra", "database.id"]
CHART_COLUMNS = ["id", "uuid", "slice_name", "viz_type", "datasource_id", "description", "params",
                 "certified_by", "certification_details"]
DATABASE_COLUMNS = ["id", "uuid", "database_name", "expose_in_sqllab", "allow_run_async", "allow_dml"]
DASHBOARD_COLUMNS = ["id", "uuid", "slug", "dashboard_title", "certified_by", "certification_details"]
DASHBOARD_DETAIL = ("dashboard_title", "slug", "published", "position_json", "json_metadata", "certified_by",
                    "certification_details")


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
    """About 20 GETs for a deployed tenant, one after another: Superset's list endpoints gave
    incomplete answers now and then when asked side by side, and a plan must never miss an object."""
    live = LiveState()
    database_id = _read_database(client, state, live)
    if database_id is not None:  # datasets and charts of this tenant live in its database
        _read_datasets_and_charts(client, state, live, database_id)
    _read_dashboards(client, state, live)
    return live


def _read_database(client: SupersetClient, state: DesiredState, live: LiveState) -> int | None:
    database = state.database
    for row in client.iter_list("database", columns=DATABASE_COLUMNS):
        if row["uuid"] == database.uuid:
            connection = client.get(f"/api/v1/database/{row['id']}/connection")["result"]
            fields = {k: row.get(k) for k in DATABASE_COLUMNS[2:]}
            fields["sqlalchemy_uri"] = connection.get("sqlalchemy_uri")
            live.add(LiveObject("database", row["id"], row["uuid"], row["database_name"], fields, database.key))
        elif row["database_name"] == database.name:
            live.others.append(LiveObject("database", row["id"], row["uuid"], row["database_name"], {}))
    found = live.objects.get(database.uuid)
    return found.id if found else None


def _read_datasets_and_charts(client: SupersetClient, state: DesiredState, live: LiveState, database_id: int) -> None:
    desired = state.by_uuid()
    dataset_filter = [{"col": "database", "opr": "rel_o_m", "value": database_id}]
    datasets = []
    for row in client.iter_list("dataset", dataset_filter, columns=DATASET_COLUMNS):
        fields = {k: row.get(k) for k in DATASET_COLUMNS[2:-1]}
        fields["database_id"] = (row.get("database") or {}).get("id")
        marker = dataset_marker(row.get("extra"))
        obj = LiveObject("dataset", row["id"], row["uuid"], marker.key if marker else row["table_name"], fields, marker)
        if row["uuid"] in desired or _owned(obj.marker, state):
            live.add(obj)
            datasets.append(obj)
        else:
            live.others.append(obj)
    for dataset in datasets:
        chart_filter = [{"col": "datasource_id", "opr": "eq", "value": dataset.id}]
        for row in client.iter_list("chart", chart_filter, columns=CHART_COLUMNS):
            fields = {k: row.get(k) for k in CHART_COLUMNS[2:]}
            marker = parse_marker(row.get("certification_details"))
            name = marker.key if marker else row["slice_name"]
            if row["uuid"] in desired or _owned(marker, state):
                live.add(LiveObject("chart", row["id"], row["uuid"], name, fields, marker))


def _read_dashboards(client: SupersetClient, state: DesiredState, live: LiveState) -> None:
    """Owned dashboards with their details; a stranger holding one of our slugs becomes a conflict."""
    desired = state.by_uuid()
    slugs = {deployed_slug(state.tenant.name, o.key.key) for o in state.by_kind("dashboard")}
    for row in client.iter_list("dashboard", columns=DASHBOARD_COLUMNS):
        marker = parse_marker(row.get("certification_details"))
        if row["uuid"] in desired or _owned(marker, state):
            found = client.get(f"/api/v1/dashboard/{row['id']}")["result"]
            fields = {k: found.get(k) for k in DASHBOARD_DETAIL}
            live.add(LiveObject("dashboard", row["id"], row["uuid"], row["slug"] or "", fields, marker))
        elif row.get("slug") in slugs:
            live.others.append(LiveObject("dashboard", row["id"], row["uuid"], row["slug"], {}))
