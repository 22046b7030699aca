"""Export a dashboard from Superset as this kit's specs: a dashboard YAML plus one query template
(and its metadata) per dataset, so a team can adopt the kit from hand-made dashboards.

Charts and dashboards this kit deployed come back under their original keys (read from the
marker), so exporting, validating and planning against the same instance shows no changes."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pfill.dashboards.specs import AGGREGATES, ChartSpec, DashboardSpec, FilterSpec, MarkdownSpec, SqlMetric, WhereSpec
from pfill.errors import PfillError, UsageError
from pfill.queries.catalog import TEMPLATE_SUFFIX

from .charts import chart_params
from .client import SupersetClient
from .identity import dataset_marker, deployed_slug, parse_marker

# form-data keys Superset or the UI add that are not part of a chart's definition
IGNORED_PARAMS = {"slice_id", "dashboards", "extra_form_data", "url_params", "force", "result_format",
                  "result_type", "granularity_sqla", "time_range"}


@dataclass
class Exported:
    spec: DashboardSpec
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)  # table_name -> dataset detail


def _key(text: str, fallback: str) -> str:
    """A name from Superset as a key and a safe file stem (specs' KEY: `[a-z][a-z0-9_]{0,62}`).

    Names that come from a server are data, never paths: `../../pfill` becomes `pfill`."""
    key = re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")
    if not key or not key[0].isalpha():
        key = f"{fallback}_{key}".strip("_")
    return key[:63].rstrip("_")


def _slug(text: str) -> str:
    """A dashboard slug from Superset as a spec slug and a safe file stem (`[a-z][a-z0-9-]{0,62}`)."""
    return _key(text, "dashboard").replace("_", "-")


def _metric(metric: Any) -> str | SqlMetric:
    if isinstance(metric, str):  # a saved metric of the dataset
        return SqlMetric(sql=metric, label=metric)
    label = metric.get("label") or ""
    if metric.get("expressionType") == "SIMPLE" and metric.get("aggregate") in AGGREGATES:
        simple = f"{metric['aggregate']}({(metric.get('column') or {}).get('column_name')})"
        if label in (simple, ""):
            return simple
    sql = metric.get("sqlExpression") or ""
    if sql == "COUNT(*)" and label in ("COUNT(*)", ""):
        return "COUNT(*)"
    return SqlMetric(sql=sql or label, label=label or sql)


def _where(adhoc: dict[str, Any]) -> WhereSpec | None:
    if adhoc.get("expressionType") != "SIMPLE" or adhoc.get("clause", "WHERE") != "WHERE":
        return None
    try:
        return WhereSpec(column=adhoc["subject"], op=adhoc["operator"], value=adhoc.get("comparator"))
    except Exception:
        return None


def chart_spec(
    key: str, chart: dict[str, Any], params: dict[str, Any], dataset: str, size: dict[str, int]
) -> ChartSpec:
    """The spec whose params reproduce `params`; whatever the kit would not produce goes to options."""
    viz = chart["viz_type"]
    metrics = [_metric(m) for m in (params.get("metrics") or ([params["metric"]] if params.get("metric") else []))]
    raw_table = viz == "table" and params.get("query_mode", "aggregate") == "raw"
    order_by = []
    for item in params.get("order_by_cols") or []:
        try:
            column, ascending = json.loads(item)
            order_by.append(column if ascending else f"-{column}")
        except (ValueError, TypeError):
            continue
    wheres = [w for w in (_where(a) for a in params.get("adhoc_filters") or []) if w is not None]
    base: dict[str, Any] = {
        "key": key,
        "title": chart.get("slice_name") or key,
        "viz": viz,
        "description": chart.get("description") or "",
        "dataset": dataset,
        "columns": list(params.get("all_columns") or []) if raw_table else [],
        "groupby": list(params.get("groupbyRows") or params.get("groupby") or []),
        "pivot_columns": list(params.get("groupbyColumns") or []),
        "x_axis": params.get("x_axis") if isinstance(params.get("x_axis"), str) else None,
        "time_grain": params.get("time_grain_sqla"),
        "metrics": [] if raw_table else metrics,
        "where": wheres,
        "order_by": order_by if raw_table else [],
        "row_limit": int(params.get("row_limit") or 1000),
        "width": size.get("width", 4),
        "height": size.get("height", 50),
    }
    try:
        spec = ChartSpec.model_validate(base)
    except ValidationError as exc:
        raise PfillError(f"chart {base['title']!r}: cannot be written as a spec: {_first_problem(exc)}") from None
    produced = chart_params(spec, 0)
    options = {
        k: v for k, v in params.items()
        if k not in IGNORED_PARAMS and k != "datasource" and (k not in produced or produced[k] != v)
    }
    return spec.model_copy(update={"options": options})


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "(spec)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {' '.join(error['msg'].split())}{more}"


def _layout(position: dict[str, Any]) -> list[list[tuple[str, dict[str, Any]]]]:
    """Rows of (component id, component) in reading order; charts or markdown outside rows get a row each."""
    rows: list[list[tuple[str, dict[str, Any]]]] = []

    def leaves(node_id: str) -> list[tuple[str, dict[str, Any]]]:
        node = position.get(node_id) or {}
        if node.get("type") in ("CHART", "MARKDOWN"):
            return [(node_id, node)]
        found = []
        for child in node.get("children", []):
            found += leaves(child)
        return found

    def walk(node_id: str) -> None:
        node = position.get(node_id) or {}
        if node.get("type") == "ROW":
            row = leaves(node_id)
            if row:
                rows.append(row)
        elif node.get("type") in ("CHART", "MARKDOWN"):
            rows.append([(node_id, node)])
        else:
            for child in node.get("children", []):
                walk(child)

    walk("ROOT_ID")
    return rows


def export_dashboard(client: SupersetClient, ref: str) -> Exported:
    """One dashboard (id or slug), its charts and the datasets they read, as this kit's specs.

    Everything read from Superset is data: names become safe keys, and an answer of the wrong
    shape is one error naming the dashboard."""
    try:
        return _export_dashboard(client, ref)
    except ValidationError as exc:
        raise PfillError(f"dashboard {ref}: cannot be written as a spec: {_first_problem(exc)}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise PfillError(f"dashboard {ref}: unexpected answer from Superset ({type(exc).__name__}: {exc})") from None


def _export_dashboard(client: SupersetClient, ref: str) -> Exported:
    found = client.get(f"/api/v1/dashboard/{ref}")["result"]  # Superset resolves an id or a slug
    marker = parse_marker(found.get("certification_details"))
    tenant = marker.tenant if marker else None
    own_slug = found.get("slug") or f"dashboard-{found['id']}"
    slug = _slug(marker.key if marker else own_slug)
    title = found["dashboard_title"]
    if tenant and title.endswith(f" ({tenant})"):
        title = title[: -len(f" ({tenant})")]
    reader = _DashboardReader(client, tenant, found["id"])
    charts, markdown, layout = reader.components(json.loads(found.get("position_json") or "{}"))
    if not charts:
        raise UsageError(f"dashboard {ref} has no charts to export")
    default = Counter(c.dataset for c in charts).most_common(1)[0][0]
    charts = [c.model_copy(update={"dataset": None}) if c.dataset == default else c for c in charts]
    filters = reader.filters(json.loads(found.get("json_metadata") or "{}"), default)
    spec = DashboardSpec(slug=slug, title=title, description="", dataset=default, charts=charts,
                         markdown=markdown, filters=filters, layout=layout)
    return Exported(spec, {reader.dataset_of(i): d for i, d in reader.datasets.items()})


class _DashboardReader:
    """Reads one dashboard's components from Superset, each dataset fetched once."""

    def __init__(self, client: SupersetClient, tenant: str | None, dashboard_id: int) -> None:
        self.client, self.tenant = client, tenant
        self.charts = {c["id"]: c for c in client.get(f"/api/v1/dashboard/{dashboard_id}/charts")["result"]}
        self.datasets: dict[int, dict[str, Any]] = {}

    def dataset_of(self, dataset_id: int) -> str:
        """The query name behind a dataset: its key when the kit made it, else its table name."""
        if dataset_id not in self.datasets:
            self.datasets[dataset_id] = self.client.get(f"/api/v1/dataset/{dataset_id}")["result"]
        detail = self.datasets[dataset_id]
        marker = dataset_marker(detail.get("extra"))
        return _key(marker.key if marker else detail["table_name"], "query")

    def components(self, position: dict[str, Any]) -> tuple[list[ChartSpec], list[MarkdownSpec], list[list[str]]]:
        """Charts, markdown blocks and the layout (rows of keys, unique), in reading order."""
        charts: list[ChartSpec] = []
        markdown: list[MarkdownSpec] = []
        layout: list[list[str]] = []
        used_keys: set[str] = set()
        for row in _layout(position):
            keys = []
            for component_id, node in row:
                meta = node.get("meta", {})
                size = {"width": int(meta.get("width") or 4), "height": int(meta.get("height") or 50)}
                if node["type"] == "MARKDOWN":
                    block = self.markdown(component_id, meta, size)
                    markdown.append(block)
                    key = block.key
                else:
                    chart = self.chart(meta, size)
                    if chart is None:
                        continue
                    charts.append(chart)
                    key = chart.key
                while key in used_keys:
                    key += "_2"
                used_keys.add(key)
                keys.append(key)
            if keys:
                layout.append(keys)
        return charts, markdown, layout

    def markdown(self, component_id: str, meta: dict[str, Any], size: dict[str, int]) -> MarkdownSpec:
        text = meta.get("code") or " "
        if self.tenant:  # links to the tenant's own dashboards go back to {slug:...}
            text = re.sub(rf"/superset/dashboard/{re.escape(deployed_slug(self.tenant, ''))}([a-z0-9-]+)/",
                          r"{slug:\1}", text)
        return MarkdownSpec(key=_key(component_id.removeprefix("MARKDOWN-"), "markdown"), text=text, **size)

    def chart(self, meta: dict[str, Any], size: dict[str, int]) -> ChartSpec | None:
        chart = self.charts.get(meta.get("chartId"))
        if chart is None:
            return None
        detail = self.client.get(f"/api/v1/chart/{chart['id']}")["result"]
        marker = parse_marker(detail.get("certification_details"))
        key = _key(marker.key.split("/", 1)[-1] if marker else chart["slice_name"], "chart")
        params = json.loads(detail.get("params") or "{}")
        dataset_id = int(str(params.get("datasource", "0__table")).split("__")[0])
        return chart_spec(key, detail, params, self.dataset_of(dataset_id), size)

    def filters(self, metadata: dict[str, Any], default: str) -> list[FilterSpec]:
        """The select filters among the native filters (other kinds have no spec form)."""
        filters = []
        for native in metadata.get("native_filter_configuration") or []:
            if native.get("filterType") != "filter_select" or not native.get("targets"):
                continue
            target = native["targets"][0]
            dataset = self.dataset_of(int(target["datasetId"]))
            filters.append(FilterSpec(
                key=_key(str(native.get("id", "")).removeprefix("NATIVE_FILTER-"), "filter"),
                title=native.get("name") or "Filter",
                column=target["column"]["name"],
                dataset=None if dataset == default else dataset,
                multi=bool((native.get("controlValues") or {}).get("multiSelect")),
                description=native.get("description") or "",
            ))
        return filters


def _column_type(column: dict[str, Any]) -> str:
    kind = (column.get("type") or "").upper()
    if column.get("is_dttm"):
        return "datetime"
    if "BOOL" in kind:
        return "boolean"
    if "INT" in kind:
        return "integer"
    if any(t in kind for t in ("NUM", "DEC", "FLOAT", "DOUBLE", "REAL")):
        return "float"
    return "string"


def _spec_dict(spec: DashboardSpec) -> dict[str, Any]:
    data = spec.model_dump(exclude_defaults=True)
    data["charts"] = [c.model_dump(exclude_defaults=True) for c in spec.charts]
    return {k: data[k] for k in ("slug", "title", "description", "dataset", "filters", "charts", "markdown", "layout")
            if k in data}


def write_export(exported: Exported, out: Path, *, force: bool = False) -> list[Path]:
    """Write dashboards/<slug>.yaml and queries/<dataset>.sql.j2 + .yaml under `out` (see write_exports)."""
    return write_exports([exported], out, force=force)


def write_exports(exports: Sequence[Exported], out: Path, *, force: bool = False) -> list[Path]:
    """Write each export's dashboards/<slug>.yaml and queries/<dataset>.sql.j2 + .yaml under `out`.

    Every name is made a safe file stem (the spec's references renamed with it, and two different
    datasets or dashboards sharing a name told apart by a suffix); every path must resolve inside
    `out` (else PfillError, exit 1); and files already there are replaced only with `force` (else
    UsageError, exit 2: the flag is missing). Nothing is written unless all of it can be, and each
    file is replaced whole (written beside it, then renamed over it)."""
    files = _export_files(exports, out)
    root = out.resolve()
    for path in files:
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            raise PfillError(f"{path}: resolves outside {out} (to {resolved}); nothing written")
    existing = [path for path in files if path.exists() or path.is_symlink()]
    if existing and not force:
        names = [str(p.relative_to(out)) for p in existing]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise UsageError(
            f"{out}: export would overwrite {len(names)} existing file(s): {shown}",
            hint="pass --force to replace them, or choose a new --out folder",
        )
    for path, text in files.items():
        _replace(path, text)
    return list(files)


def _export_files(exports: Sequence[Exported], out: Path) -> dict[Path, str]:
    """Path -> text of every file the exports make, names made safe and unique, references kept."""
    files: dict[Path, str] = {}
    queries: dict[str, str] = {}  # stem -> its files' text, to tell a shared dataset from a namesake
    slugs: set[str] = set()
    for exported in exports:
        renames: dict[str, str] = {}
        for name, dataset in exported.datasets.items():
            base = stem = _key(name, "query")
            for n in range(2, 1000):
                template, meta = _query_texts(stem, dataset)
                if queries.setdefault(stem, template + meta) == template + meta:
                    break
                stem = f"{base[:56]}_{n}"
            renames[name] = stem
            files[out / "queries" / f"{stem}{TEMPLATE_SUFFIX}"] = template
            files[out / "queries" / f"{stem}.yaml"] = meta
        slug = base = _slug(exported.spec.slug)
        for n in range(2, 1000):
            if slug not in slugs:
                break
            slug = f"{base[:56]}-{n}"
        slugs.add(slug)
        spec = _renamed(exported.spec, slug, renames)
        text = yaml.safe_dump(_spec_dict(spec), sort_keys=False, allow_unicode=True, width=110)
        files[out / "dashboards" / f"{slug}.yaml"] = text
    return dict(sorted(files.items(), key=lambda item: (item[0].parent.name != "dashboards", str(item[0]))))


def _renamed(spec: DashboardSpec, slug: str, renames: dict[str, str]) -> DashboardSpec:
    """The spec with its slug and every dataset reference (dashboard, charts, filters) renamed."""

    def name(dataset: str | None) -> str | None:
        return None if dataset is None else renames.get(dataset) or _key(dataset, "query")

    return spec.model_copy(update={
        "slug": slug,
        "dataset": name(spec.dataset),
        "charts": [c.model_copy(update={"dataset": name(c.dataset)}) for c in spec.charts],
        "filters": [f.model_copy(update={"dataset": name(f.dataset)}) for f in spec.filters],
    })


def _query_texts(name: str, dataset: dict[str, Any]) -> tuple[str, str]:
    """The template and the metadata YAML of one exported dataset."""
    sql = dataset.get("sql") or f"SELECT * FROM {name}"
    marker = dataset_marker(dataset.get("extra"))
    meta = {
        "title": name.replace("_", " ").capitalize(),
        "description": dataset.get("description") or f"Exported from Superset dataset {name}",
        "parameters": [],
        "columns": [
            {"name": c["column_name"], "type": _column_type(c), "description": c.get("description") or ""}
            for c in dataset.get("columns", [])
        ],
    }
    if marker is None:
        meta["description"] = meta["description"].strip()
    template = sql if sql.endswith("\n") else sql + "\n"
    return template, yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)


def _replace(path: Path, text: str) -> None:
    """Write `path` whole: a sibling temporary file renamed over it (a symlink there is replaced,
    never written through)."""
    temporary = path.with_name(f".{path.name}.pfill-export")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise PfillError(f"{path}: cannot write: {exc.strerror or exc}") from None
