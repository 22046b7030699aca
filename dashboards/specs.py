"""Dashboard specs: typed models for dashboards/*.yaml, their JSON Schema, and validation that names
the file and line of every mistake (against the schema and against each query's declared columns).

One YAML file per dashboard:

    slug: allocation-guide          # made unique per tenant at deploy time
    title: Allocation guide
    dataset: allocation_guide       # default query for charts and filters
    filters:
      - {key: run, title: Run, column: run_id, dataset: run_overview}
    charts:
      - {key: by_trade, title: UPB by trade, viz: echarts_timeseries_bar, x_axis: trade_id,
         metrics: ["SUM(upb)"], width: 6}
    layout:                         # rows of chart (or markdown) keys, left to right
      - [by_trade, ...]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pfill.errors import ConfigError
from pfill.queries.catalog import Query
from pfill.yamlfile import LocatedYaml, load_located

KEY = r"^[a-z][a-z0-9_]{0,62}$"
SLUG = r"^[a-z][a-z0-9-]{0,62}$"
GRID_COLUMNS = 12
VizType = Literal[
    "table", "big_number_total", "pie", "echarts_timeseries_bar", "echarts_timeseries_line", "pivot_table_v2"
]
# form-data keys `options` may not override: what the chart is and what it reads
RESERVED_OPTIONS = frozenset({"viz_type", "datasource", "slice_id"})
AGGREGATES = ("COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX")
_SIMPLE_METRIC = re.compile(r"^(?P<agg>[A-Z_]+)\((?P<col>\*|[a-z_][a-z0-9_]*)\)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SqlMetric(Strict):
    """A metric written as SQL over the dataset's columns, with the label charts show."""

    sql: str = Field(min_length=1)
    label: str = Field(min_length=1)


Metric = Annotated[
    str | SqlMetric,
    Field(description="AGG(column) with AGG one of COUNT, COUNT_DISTINCT, SUM, AVG, MIN, MAX; COUNT(*); "
          "or {sql, label}"),
]


WhereOp = Literal["==", "!=", "IN", "NOT IN", "IS TRUE", "IS FALSE", "IS NULL", "IS NOT NULL", ">", ">=", "<", "<="]
UNARY_OPS = ("IS TRUE", "IS FALSE", "IS NULL", "IS NOT NULL")


class WhereSpec(Strict):
    """A fixed condition on the chart's rows (a Superset adhoc filter)."""

    column: str
    op: WhereOp
    value: str | int | float | list[str | int | float] | None = None


class ChartSpec(Strict):
    key: str = Field(pattern=KEY, description="Stable key inside the dashboard: the chart's identity")
    title: str = Field(min_length=1)
    viz: VizType
    description: str = ""
    dataset: str | None = Field(None, description="Query name; default: the dashboard's dataset")
    columns: list[str] = Field(default_factory=list, description="Raw columns (table charts without metrics)")
    groupby: list[str] = Field(default_factory=list, description="Group by (rows for a pivot table)")
    pivot_columns: list[str] = Field(default_factory=list, description="Pivot table column headers")
    x_axis: str | None = Field(None, description="X axis column (bar and line charts)")
    time_grain: str | None = Field(None, description="Time grain of a temporal x axis, e.g. P1D")
    metrics: list[Metric] = Field(default_factory=list)
    where: list[WhereSpec] = Field(default_factory=list, description="Fixed conditions on the rows")
    order_by: list[str] = Field(default_factory=list, description="Columns or metric labels; prefix - for descending")
    row_limit: int = Field(1000, ge=1, le=100000)
    width: int = Field(4, ge=1, le=GRID_COLUMNS)
    height: int = Field(50, ge=8, le=200)
    options: dict[str, Any] = Field(default_factory=dict, description="Extra Superset form-data keys, as they are")

    @field_validator("options")
    @classmethod
    def _options_do_not_retarget(cls, options: dict[str, Any]) -> dict[str, Any]:
        taken = sorted(RESERVED_OPTIONS & options.keys())
        if taken:
            raise ValueError(f"options may not set {', '.join(taken)}; use the chart's viz or dataset")
        return options

    @field_validator("metrics")
    @classmethod
    def _metrics_are_simple_or_sql(cls, metrics: list[str | SqlMetric]) -> list[str | SqlMetric]:
        for metric in metrics:
            if isinstance(metric, str):
                match = _SIMPLE_METRIC.match(metric)
                if not match or match["agg"] not in AGGREGATES or (match["col"] == "*" and match["agg"] != "COUNT"):
                    raise ValueError(f"metric {metric!r} is not AGG(column) or COUNT(*); use {{sql, label}}")
        return metrics


class FilterSpec(Strict):
    key: str = Field(pattern=KEY)
    title: str = Field(min_length=1)
    column: str
    dataset: str | None = Field(None, description="Query whose values the filter offers; default: the dashboard's")
    multi: bool = False
    description: str = ""


class MarkdownSpec(Strict):
    key: str = Field(pattern=KEY)
    text: str = Field(min_length=1, description="Markdown; {slug:NAME} becomes the URL of dashboard NAME")
    width: int = Field(4, ge=1, le=GRID_COLUMNS)
    height: int = Field(50, ge=8, le=200)


class DashboardSpec(Strict):
    slug: str = Field(pattern=SLUG)
    title: str = Field(min_length=1)
    description: str = ""
    dataset: str | None = None
    charts: list[ChartSpec] = Field(min_length=1)
    markdown: list[MarkdownSpec] = Field(default_factory=list)
    filters: list[FilterSpec] = Field(default_factory=list)
    layout: list[list[str]] = Field(min_length=1, description="Rows of chart or markdown keys")


@dataclass
class LoadedSpec:
    spec: DashboardSpec
    doc: LocatedYaml

    @property
    def path(self) -> Path:
        return self.doc.path

    def chart_dataset(self, chart: ChartSpec) -> str:
        return chart.dataset or self.spec.dataset or ""

    def filter_dataset(self, flt: FilterSpec) -> str:
        return flt.dataset or self.spec.dataset or ""


def json_schema() -> dict[str, Any]:
    schema = DashboardSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pfill-kit dashboard spec"
    return schema


def packaged_dashboards() -> Path:
    return Path(str(resources.files("pfill.dashboards")))


def spec_files(folder: Path) -> list[Path]:
    """The specs in a folder: every `*.yaml` not starting with `_`. A spec saved as `.yml` is an
    error rather than skipped, and so is a folder without specs (applied with --prune, an empty set
    of specs would delete every dashboard the kit made)."""
    if not folder.is_dir():
        raise ConfigError(f"dashboards folder not found: {folder}")
    for stray in sorted(folder.glob("*.yml")):
        raise ConfigError(f"{stray}: dashboard specs must end in .yaml (.yml files are not read)",
                          hint=f"rename it to {stray.stem}.yaml")
    files = sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("_"))
    if not files:
        raise ConfigError(f"{folder}: no dashboard specs (*.yaml) in this folder")
    return files


def _parse(doc: LocatedYaml) -> DashboardSpec:
    try:
        return DashboardSpec.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = [p for p in error["loc"] if not (isinstance(p, str) and p in ("str", "SqlMetric"))]
            field = ".".join(str(p) for p in location) or "(document)"
            message = " ".join(error["msg"].removeprefix("Value error, ").split())
            problems.append(f"{doc.where(*location)}: {field}: {message}")
        if len(problems) == 1:
            raise ConfigError(problems[0]) from None
        raise ConfigError(f"{doc.path}: {len(problems)} problems in the dashboard spec:\n  "
                          + "\n  ".join(problems)) from None


def load_specs(folder: Path | None = None) -> list[LoadedSpec]:
    """Parse every spec in the folder (default: the packaged dashboards), schema errors first."""
    docs = [load_located(path) for path in spec_files(folder or packaged_dashboards())]
    return [LoadedSpec(_parse(doc), doc) for doc in docs]


def metric_columns(metric: str | SqlMetric) -> list[str]:
    if isinstance(metric, SqlMetric):
        return []
    column = _SIMPLE_METRIC.match(metric)["col"]  # type: ignore[index]
    return [] if column == "*" else [column]


def metric_label(metric: str | SqlMetric) -> str:
    return metric.label if isinstance(metric, SqlMetric) else metric


def _chart_problems(loaded: LoadedSpec, index: int, chart: ChartSpec, queries: dict[str, Query]) -> Iterable[str]:
    doc = loaded.doc
    at = ("charts", index)
    dataset = loaded.chart_dataset(chart)
    if dataset not in queries:
        yield f"{doc.where(*at, 'dataset')}: chart {chart.key}: unknown dataset {dataset!r} (queries: " \
              f"{', '.join(sorted(queries))})"
        return
    known = set(queries[dataset].column_names)
    fields: list[tuple[str, int | None, str]] = []
    for name in ("columns", "groupby", "pivot_columns"):
        fields += [(name, i, c) for i, c in enumerate(getattr(chart, name))]
    if chart.x_axis:
        fields.append(("x_axis", None, chart.x_axis))
    for i, metric in enumerate(chart.metrics):
        fields += [("metrics", i, c) for c in metric_columns(metric)]
    fields += [("where", i, w.column) for i, w in enumerate(chart.where)]
    labels = {metric_label(m) for m in chart.metrics}
    for i, order in enumerate(chart.order_by):
        if order.lstrip("-") not in labels:
            fields.append(("order_by", i, order.lstrip("-")))
    for name, i, column in fields:
        if column not in known:
            where = doc.where(*at, name, i) if i is not None else doc.where(*at, name)
            yield f"{where}: chart {chart.key}: column {column!r} is not returned by query {dataset}"
    needs_metric = chart.viz != "table"
    if needs_metric and not chart.metrics:
        yield f"{doc.where(*at)}: chart {chart.key}: a {chart.viz} chart needs at least one metric"
    if chart.viz == "table" and not (chart.columns or chart.metrics):
        yield f"{doc.where(*at)}: chart {chart.key}: a table needs columns (raw) or metrics (aggregated)"
    if chart.viz.startswith("echarts_timeseries") and not chart.x_axis:
        yield f"{doc.where(*at)}: chart {chart.key}: a {chart.viz} chart needs x_axis"


def validate_specs(specs: list[LoadedSpec], queries: dict[str, Query]) -> list[str]:
    """Every problem across all specs, each naming file and line. Empty means valid."""
    problems: list[str] = []
    slugs: dict[str, str] = {}
    for loaded in specs:
        problems += _identity_problems(loaded, slugs, queries)
        for i, chart in enumerate(loaded.spec.charts):
            problems += _chart_problems(loaded, i, chart, queries)
        problems += _filter_problems(loaded, queries)
        problems += _layout_problems(loaded)
    problems += _link_problems(specs, set(slugs))
    return problems


def _items(spec: DashboardSpec) -> list[tuple[str, str, int, ChartSpec | MarkdownSpec]]:
    """(kind, section, index, item) for every chart and markdown block, the things a layout places."""
    return [("chart", "charts", i, c) for i, c in enumerate(spec.charts)] + [
        ("markdown", "markdown", i, m) for i, m in enumerate(spec.markdown)
    ]


def _item_kinds(spec: DashboardSpec) -> dict[str, str]:
    """Key -> kind (chart or markdown) of every item the layout may name."""
    return {item.key: kind for kind, _, _, item in _items(spec)}


def _identity_problems(loaded: LoadedSpec, slugs: dict[str, str], queries: dict[str, Query]) -> Iterable[str]:
    """A slug used twice (recording this one in `slugs`), an unknown dashboard dataset, duplicate keys."""
    spec, doc = loaded.spec, loaded.doc
    if spec.slug in slugs:
        yield f"{doc.where('slug')}: slug {spec.slug!r} is also used by {slugs[spec.slug]}"
    slugs[spec.slug] = str(doc.path)
    if spec.dataset and spec.dataset not in queries:
        yield f"{doc.where('dataset')}: unknown dataset {spec.dataset!r}"
    seen: set[str] = set()
    for _, section, i, item in _items(spec):
        if item.key in seen:
            yield f"{doc.where(section, i, 'key')}: duplicate key {item.key!r}"
        seen.add(item.key)


def _filter_problems(loaded: LoadedSpec, queries: dict[str, Query]) -> Iterable[str]:
    doc = loaded.doc
    for i, flt in enumerate(loaded.spec.filters):
        dataset = loaded.filter_dataset(flt)
        if dataset not in queries:
            yield f"{doc.where('filters', i)}: filter {flt.key}: unknown dataset {dataset!r}"
        elif flt.column not in queries[dataset].column_names:
            yield (
                f"{doc.where('filters', i, 'column')}: filter {flt.key}: column {flt.column!r} is not "
                f"returned by query {dataset}"
            )


def _layout_problems(loaded: LoadedSpec) -> Iterable[str]:
    """Unknown keys and rows wider than the grid, then items not placed exactly once."""
    spec, doc = loaded.spec, loaded.doc
    kinds = _item_kinds(spec)
    placed: dict[str, int] = {}
    widths = {c.key: c.width for c in spec.charts} | {m.key: m.width for m in spec.markdown}
    for r, row in enumerate(spec.layout):
        for c, key in enumerate(row):
            if key not in kinds:
                yield f"{doc.where('layout', r, c)}: layout names unknown chart {key!r}"
            placed[key] = placed.get(key, 0) + 1
        width = sum(widths.get(k, 0) for k in row)
        if width > GRID_COLUMNS:
            yield f"{doc.where('layout', r)}: row {r + 1} is {width} columns wide (at most 12)"
    for key, kind in kinds.items():
        if placed.get(key, 0) != 1:
            how = "not placed in the layout" if key not in placed else f"placed {placed[key]} times"
            yield f"{doc.path}: {kind} {key!r} is {how}"


def _link_problems(specs: list[LoadedSpec], slugs: set[str]) -> Iterable[str]:
    """`{slug:NAME}` links in markdown to dashboards that no spec defines."""
    for loaded in specs:
        for i, block in enumerate(loaded.spec.markdown):
            for target in re.findall(r"\{slug:([a-z0-9-]+)\}", block.text):
                if target not in slugs:
                    yield f"{loaded.doc.where('markdown', i, 'text')}: link to unknown dashboard {target!r}"
