"""A chart spec as Superset wants it: form data (`params`) and a saved `query_context`, plus the
shape of its query so `verify` can count the rows the chart should return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pfill.dashboards.specs import UNARY_OPS, ChartSpec, SqlMetric, WhereSpec, metric_columns, metric_label


def superset_metric(metric: str | SqlMetric) -> dict[str, Any]:
    """Superset's adhoc metric: SIMPLE for AGG(column), SQL for COUNT(*) and {sql, label}."""
    if isinstance(metric, SqlMetric):
        return {"expressionType": "SQL", "sqlExpression": metric.sql, "label": metric.label}
    columns = metric_columns(metric)
    if not columns:
        return {"expressionType": "SQL", "sqlExpression": "COUNT(*)", "label": metric}
    aggregate = metric.split("(", 1)[0]
    return {
        "expressionType": "SIMPLE",
        "column": {"column_name": columns[0]},
        "aggregate": aggregate,
        "label": metric,
    }


@dataclass(frozen=True)
class QueryShape:
    """What the chart asks of its dataset: grouped by `columns` (with metrics) or raw rows."""

    columns: tuple[str, ...]
    aggregated: bool
    row_limit: int
    where: tuple[WhereSpec, ...] = ()


def query_shape(chart: ChartSpec) -> QueryShape:
    if chart.viz == "table" and not chart.metrics:
        return QueryShape(tuple(chart.columns), False, chart.row_limit, tuple(chart.where))
    columns: list[str] = []
    if chart.x_axis:
        columns.append(chart.x_axis)
    columns += [c for c in (*chart.groupby, *chart.pivot_columns) if c not in columns]
    if chart.viz == "big_number_total":
        columns = []
    return QueryShape(tuple(columns), True, chart.row_limit, tuple(chart.where))


def adhoc_filter(where: WhereSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"expressionType": "SIMPLE", "subject": where.column, "operator": where.op,
                             "clause": "WHERE"}
    if where.op not in UNARY_OPS:
        entry["comparator"] = where.value
    return entry


def query_filter(where: WhereSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"col": where.column, "op": where.op}
    if where.op not in UNARY_OPS:
        entry["val"] = where.value
    return entry


def _order(chart: ChartSpec) -> list[list[Any]]:
    by_label = {metric_label(m): superset_metric(m) for m in chart.metrics}
    order = []
    for item in chart.order_by:
        name = item.lstrip("-")
        order.append([by_label.get(name, name), not item.startswith("-")])
    if not order and chart.metrics and chart.viz in ("pie", "table", "echarts_timeseries_bar") and not chart.x_axis:
        order.append([superset_metric(chart.metrics[0]), False])
    return order


def _raw_order(chart: ChartSpec) -> list[list[Any]]:
    return [[c.lstrip("-"), not c.startswith("-")] for c in chart.order_by]


def chart_params(chart: ChartSpec, dataset_id: int) -> dict[str, Any]:
    """Superset form data for the chart (stored as the chart's `params`)."""
    metrics = [superset_metric(m) for m in chart.metrics]
    params: dict[str, Any] = {
        "datasource": f"{dataset_id}__table",
        "viz_type": chart.viz,
        "adhoc_filters": [adhoc_filter(w) for w in chart.where],
        "annotation_layers": [],  # the importer adds it; set it so plans compare equal
        "row_limit": chart.row_limit,
    }
    if chart.viz == "table":
        if chart.metrics:
            params.update(query_mode="aggregate", groupby=chart.groupby, metrics=metrics, all_columns=[])
        else:
            params.update(query_mode="raw", all_columns=chart.columns, groupby=[], metrics=[])
        params.update(
            order_by_cols=[f'["{o.lstrip("-")}", {str(not o.startswith("-")).lower()}]' for o in chart.order_by
                           if not chart.metrics],
            server_pagination=False, include_search=True, show_cell_bars=True, table_timestamp_format="smart_date",
        )
    elif chart.viz == "big_number_total":
        params.update(metric=metrics[0], subheader="", y_axis_format="SMART_NUMBER", header_font_size=0.4)
    elif chart.viz == "pie":
        params.update(
            metric=metrics[0], groupby=chart.groupby, show_legend=True, show_labels=True,
            label_type="key_percent", sort_by_metric=True, donut=True,
        )
    elif chart.viz.startswith("echarts_timeseries"):
        params.update(
            x_axis=chart.x_axis, time_grain_sqla=chart.time_grain, metrics=metrics, groupby=chart.groupby,
            show_legend=True, rich_tooltip=True, x_axis_sort_asc=True, truncateXAxis=True,
        )
        if chart.viz == "echarts_timeseries_bar":
            params.update(orientation="vertical", stack=None)
        else:
            params.update(markerEnabled=True, seriesType="line")
    elif chart.viz == "pivot_table_v2":
        params.update(
            groupbyRows=chart.groupby, groupbyColumns=chart.pivot_columns, metrics=metrics,
            aggregateFunction="Sum", metricsLayout="COLUMNS", valueFormat="SMART_NUMBER",
            rowTotals=True, colTotals=True,
        )
    params.update(chart.options)
    return params


def query_context(chart: ChartSpec, dataset_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """The saved query context: what `GET /api/v1/chart/<id>/data` and `verify` run."""
    shape = query_shape(chart)
    columns: list[Any] = list(shape.columns)
    if chart.x_axis and chart.time_grain:
        columns[0] = {
            "columnType": "BASE_AXIS", "expressionType": "SQL", "sqlExpression": chart.x_axis,
            "label": chart.x_axis, "timeGrain": chart.time_grain,
        }
    query: dict[str, Any] = {
        "columns": columns,
        "metrics": [superset_metric(m) for m in chart.metrics] if shape.aggregated else [],
        "orderby": _order(chart) if shape.aggregated else _raw_order(chart),
        "row_limit": shape.row_limit,
        "filters": [query_filter(w) for w in chart.where],
        "extras": {"having": "", "where": ""},
        "annotation_layers": [],
        "url_params": {},
        "custom_params": {},
        "custom_form_data": {},
    }
    return {
        "datasource": {"id": dataset_id, "type": "table"},
        "force": False,
        "queries": [query],
        "form_data": params,
        "result_format": "json",
        "result_type": "full",
    }
