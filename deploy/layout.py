"""A dashboard spec as Superset lays it out: `position_json` (rows of charts and markdown on a
12-column grid) and `json_metadata` (native filters; `positions` links the charts on PUT)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pfill.dashboards.specs import LoadedSpec
from pfill.queries.catalog import Query

from .identity import Ids, deployed_slug

UuidOf = Callable[[str, str], str]  # (kind, key) -> the object's UUID for this environment and tenant

# json_metadata keys this kit sets and compares; Superset adds its own (colour maps and so on).
METADATA_COMPARED = ("native_filter_configuration", "cross_filters_enabled", "refresh_frequency")


def position_json(loaded: LoadedSpec, ids: Ids, uuid_of: UuidOf, tenant: str) -> dict[str, Any]:
    spec = loaded.spec
    charts = {c.key: c for c in spec.charts}
    markdown = {m.key: m for m in spec.markdown}
    position: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": spec.title}},
    }
    for r, row in enumerate(spec.layout, start=1):
        row_id = f"ROW-{r}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {
            "type": "ROW", "id": row_id, "children": [], "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        parents = ["ROOT_ID", "GRID_ID", row_id]
        for key in row:
            if key in charts:
                chart = charts[key]
                chart_uuid = uuid_of("chart", f"{spec.slug}/{key}")
                item_id = f"CHART-{key}"
                meta = {"chartId": ids.get(chart_uuid, 0), "uuid": chart_uuid, "width": chart.width,
                        "height": chart.height, "sliceName": chart.title}
                position[item_id] = {"type": "CHART", "id": item_id, "children": [], "parents": parents, "meta": meta}
            else:
                block = markdown[key]
                item_id = f"MARKDOWN-{key}"
                text = re.sub(
                    r"\{slug:([a-z0-9-]+)\}",
                    lambda m: f"/superset/dashboard/{deployed_slug(tenant, m[1])}/",
                    block.text,
                )
                meta = {"width": block.width, "height": block.height, "code": text}
                position[item_id] = {"type": "MARKDOWN", "id": item_id, "children": [], "parents": parents,
                                     "meta": meta}
            position[row_id]["children"].append(item_id)
    return position


def native_filters(loaded: LoadedSpec, ids: Ids, uuid_of: UuidOf, queries: dict[str, Query]) -> list[dict[str, Any]]:
    spec = loaded.spec
    filters = []
    for flt in spec.filters:
        dataset = loaded.filter_dataset(flt)
        dataset_id = ids.get(uuid_of("dataset", dataset), 0)
        # a chart whose dataset lacks the column cannot be filtered by it: keep it out of scope
        excluded = [
            ids.get(uuid_of("chart", f"{spec.slug}/{chart.key}"), 0)
            for chart in spec.charts
            if flt.column not in queries[loaded.chart_dataset(chart)].column_names
        ]
        filters.append({
            "id": f"NATIVE_FILTER-{flt.key}",
            "name": flt.title,
            "filterType": "filter_select",
            "type": "NATIVE_FILTER",
            "description": flt.description,
            "targets": [{"datasetId": dataset_id, "column": {"name": flt.column}}],
            "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
            "controlValues": {
                "enableEmptyFilter": False, "defaultToFirstItem": False, "multiSelect": flt.multi,
                "searchAllOptions": False, "inverseSelection": False,
            },
            "cascadeParentIds": [],
            "scope": {"rootPath": ["ROOT_ID"], "excluded": excluded},
        })
    return filters


def dashboard_metadata(loaded: LoadedSpec, ids: Ids, uuid_of: UuidOf, queries: dict[str, Query]) -> dict[str, Any]:
    return {
        "native_filter_configuration": native_filters(loaded, ids, uuid_of, queries),
        "cross_filters_enabled": True,
        "refresh_frequency": 0,
    }
