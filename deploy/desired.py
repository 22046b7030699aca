"""The desired state: every Superset object one tenant of one environment should have, built from
the report queries and the dashboard specs.

Payloads refer to other objects by UUID; ids differ per instance, so each payload is built by a
function of the id map (`Ids`: uuid -> id) known at that moment: the live ids when planning (0 for
objects that do not exist yet), the real ids as apply creates them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pfill.config import Environment, Tenant
from pfill.dashboards.specs import ChartSpec, LoadedSpec
from pfill.errors import ConfigError
from pfill.queries.catalog import Query
from pfill.urls import parse_url

from .charts import chart_params, query_context
from .identity import Ids, ObjectKey, dataset_certification, deployed_slug, external_url, managed_fields
from .layout import dashboard_metadata, position_json

KINDS = ("database", "dataset", "chart", "dashboard")  # dependency order: create in it, delete against it
TEMPORAL = ("date", "datetime")
MASKED_PASSWORD = "XXXXXXXXXX"  # how Superset shows a stored password


@dataclass
class DesiredObject:
    key: ObjectKey
    name: str
    payload: Callable[[Ids], dict[str, Any]]  # the object's fields (bundle.py writes them as import files)
    compared: tuple[str, ...]  # payload fields compared with the live object
    query: Query | None = None  # datasets: the query behind them
    chart: ChartSpec | None = None  # charts: the spec behind them
    dataset_name: str | None = None  # charts: the query their dataset holds

    @property
    def kind(self) -> str:
        return self.key.kind

    @property
    def uuid(self) -> str:
        return self.key.uuid


@dataclass
class DesiredState:
    env: Environment
    tenant: Tenant
    objects: list[DesiredObject]

    def by_kind(self, kind: str) -> list[DesiredObject]:
        return [o for o in self.objects if o.kind == kind]

    def by_uuid(self) -> dict[str, DesiredObject]:
        return {o.uuid: o for o in self.objects}

    @property
    def database(self) -> DesiredObject:
        return self.by_kind("database")[0]


def dataset_name(query: str, env: str, tenant: str) -> str:
    """Dataset names carry environment and tenant: Superset on SQLite metadata keeps a legacy UNIQUE
    constraint on the bare table name across all databases."""
    return f"{query} ({env}/{tenant})"


def masked_uri(url: str) -> str:
    """The URI as Superset lists it back: password replaced by its mask."""
    parsed = parse_url(url)
    return (parsed.with_password(MASKED_PASSWORD) if parsed.password else parsed).render()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class StateBuilder:
    """Builds the desired objects for one environment and tenant."""

    def __init__(self, env: Environment, tenant: Tenant, queries: dict[str, Query], specs: list[LoadedSpec]):
        self.env, self.tenant, self.queries, self.specs = env, tenant, queries, specs

    def key(self, kind: str, name: str) -> ObjectKey:
        return ObjectKey(self.env.name, self.tenant.name, kind, name)

    def uuid_of(self, kind: str, name: str) -> str:
        return self.key(kind, name).uuid

    def build(self) -> DesiredState:
        objects = [self.database()]
        used = sorted({s.chart_dataset(c) for s in self.specs for c in s.spec.charts}
                      | {s.filter_dataset(f) for s in self.specs for f in s.spec.filters})
        missing = [name for name in used if name not in self.queries]
        if missing:
            raise ConfigError(f"specs use unknown queries: {', '.join(missing)} (run `pfill validate`)")
        objects += [self.dataset(self.queries[name]) for name in used]
        for loaded in self.specs:
            objects += [self.chart(loaded, chart) for chart in loaded.spec.charts]
        objects += [self.dashboard(loaded) for loaded in self.specs]
        return DesiredState(self.env, self.tenant, objects)

    # -- database ----------------------------------------------------------------------------------
    def database(self) -> DesiredObject:
        key = self.key("database", "database")
        tenant = self.tenant
        name = f"PowerFill {tenant.name} ({self.env.name})"

        def payload(ids: Ids) -> dict[str, Any]:
            return {
                "database_name": name,
                "sqlalchemy_uri": tenant.database_url,
                "expose_in_sqllab": True,
                "allow_run_async": False,
                "allow_dml": False,
                "is_managed_externally": True,
                # where its connection is defined: the environments file (the built-in one has none)
                "external_url": external_url(self.env.source) if self.env.source else None,
            }

        return DesiredObject(key, name, payload, ("database_name", "sqlalchemy_uri", "expose_in_sqllab",
                                                   "allow_run_async", "allow_dml"))

    # -- datasets ----------------------------------------------------------------------------------
    def dataset(self, query: Query) -> DesiredObject:
        key = self.key("dataset", query.name)
        database_uuid = self.key("database", "database").uuid
        sql = query.render(self.tenant.dialect, tenant=self.tenant.name, schema=self.tenant.schema, superset=True)
        extra = dataset_certification(key)

        def payload(ids: Ids) -> dict[str, Any]:
            return {
                "database_id": ids.get(database_uuid, 0),
                "table_name": dataset_name(query.name, self.env.name, self.tenant.name),
                "schema": self.tenant.schema,
                "sql": sql,
                "description": query.description.strip(),
                "extra": _json(extra),
                "is_managed_externally": True,
                "external_url": external_url(query.template_path),
            }

        return DesiredObject(
            key, query.name, payload, ("database_id", "table_name", "schema", "sql", "description", "extra"),
            query=query,
        )

    # -- charts ------------------------------------------------------------------------------------
    def chart(self, loaded: LoadedSpec, chart: ChartSpec) -> DesiredObject:
        key = self.key("chart", f"{loaded.spec.slug}/{chart.key}")
        dataset_uuid = self.key("dataset", loaded.chart_dataset(chart)).uuid

        def payload(ids: Ids) -> dict[str, Any]:
            dataset_id = ids.get(dataset_uuid, 0)
            params = chart_params(chart, dataset_id)
            return {
                "slice_name": chart.title,
                "viz_type": chart.viz,
                "datasource_id": dataset_id,
                "datasource_type": "table",
                "description": chart.description or None,
                "params": _json(params),
                "query_context": _json(query_context(chart, dataset_id, params)),
                **managed_fields(key, loaded.path),
            }

        return DesiredObject(
            key, f"{loaded.spec.slug}/{chart.key}", payload,
            ("slice_name", "viz_type", "datasource_id", "description", "params", "certified_by",
             "certification_details"),
            chart=chart, dataset_name=loaded.chart_dataset(chart),
        )

    # -- dashboards --------------------------------------------------------------------------------
    def dashboard(self, loaded: LoadedSpec) -> DesiredObject:
        spec = loaded.spec
        key = self.key("dashboard", spec.slug)
        slug = deployed_slug(self.tenant.name, spec.slug)

        def payload(ids: Ids) -> dict[str, Any]:
            return {
                "dashboard_title": f"{spec.title} ({self.tenant.name})",
                "slug": slug,
                "published": True,
                "css": "",
                "position_json": _json(position_json(loaded, ids, self.uuid_of, self.tenant.name)),
                "json_metadata": _json(dashboard_metadata(loaded, ids, self.uuid_of, self.queries)),
                **managed_fields(key, loaded.path),
            }

        return DesiredObject(
            key, slug, payload,
            ("dashboard_title", "slug", "published", "position_json", "json_metadata", "certified_by",
             "certification_details"),
        )
