"""The API and the dashboards read the same queries, so they cannot disagree (#12): for every chart
the kit deploys, Superset's chart-data API over the chart (row limit lifted) against the rows
`pfill serve` answers for the same run and report, on the SQLite and PostgreSQL tenants.

- a table of raw rows: the same rows, value for value, over the chart's columns;
- a grouped chart: as many rows as the API's rows have groups, and each group's metrics
  (SUM, COUNT, COUNT_DISTINCT, MAX) computed from the API's rows equal Superset's;
- a big number: the metric over the API's rows equals Superset's.

The chart's `where:` filters are applied to the API's rows here. Both sides show the tenant's latest
Complete run: the datasets' default (no Run filter) and `/runs/latest/...`."""

from __future__ import annotations

import copy
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import Any

import pytest

from pfill.config import Settings
from pfill.dashboards.specs import WhereSpec, metric_columns, metric_label
from pfill.deploy.charts import query_shape
from pfill.deploy.project import Project
from pfill.engine.service import reports
from tests.deploy.conftest import PASSWORD_VAR
from tests.engine.service.server import Server

pytestmark = [pytest.mark.superset, pytest.mark.postgres]

ENV = "it"  # the environment test_deploy_live deploys (apply is a no-op when it is there already)
PATHS = {r.query: r.path for r in reports.REPORTS}
QUERIES = reports.queries()
ROW_LIMIT = 1_000_000  # every row: the comparison is of the whole report, not the chart's first page


@pytest.fixture(scope="module", params=["lite", "pg"])
def tenant(request: pytest.FixtureRequest, deploy_target) -> str:
    deploy_target.write_env(ENV, ["lite", "pg"])
    applied = deploy_target.pfill("apply", "--env", ENV, "--yes")
    assert applied.exit_code == 0, applied.output
    return request.param


@pytest.fixture(scope="module")
def api_rows(tenant: str, deploy_target) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Every row of every report of the tenant's latest run, as `pfill serve` answers them."""
    server = Server(deploy_target.tenants[tenant], deploy_target.work / f"serve-{tenant}", tenants=(tenant,)).start()
    try:
        with server.client(tenant) as api:
            yield {name: _walk(api, "/runs/overview" if name == "run_overview" else f"/runs/latest/{PATHS[name]}")
                   for name in ["run_overview", *PATHS]}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def charts(tenant: str, deploy_target) -> list[tuple[Any, dict[str, Any]]]:
    """(chart object, Superset's chart-data result over every row) for each deployed chart."""
    found = []
    with pytest.MonkeyPatch.context() as env:
        env.setenv(PASSWORD_VAR, deploy_target.password)
        settings = Settings.resolve(home=deploy_target.home, config=deploy_target.config)
        with Project.load(settings, ENV, (tenant,)) as project:
            (state,), (live,) = project.states, project.live()
            for obj in state.by_kind("chart"):
                context = copy.deepcopy(json.loads(obj.payload(live.ids)["query_context"]))
                for query in context["queries"]:
                    query["row_limit"] = ROW_LIMIT
                context["form_data"]["row_limit"] = ROW_LIMIT
                result = project.client.post("/api/v1/chart/data", json=context)["result"][0]
                assert not result.get("error"), (obj.name, result["error"])
                found.append((obj, result))
    assert len(found) == 32
    return found


def _walk(api: Any, path: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 10_000}
    while True:
        page = api.get(path, params=params)
        assert page.status_code == 200, (path, page.text)
        body = page.json()
        rows += body["rows"]
        if not body["next"]:
            return rows
        params = {"limit": 10_000, "cursor": body["next"]}


# -- one value as both sides give it ----------------------------------------------------------------

def _value(column_type: str, value: Any) -> Any:
    """A comparable form of a cell: the API's JSON and Superset's differ in how they spell booleans
    (SQLite gives 0/1), dates and instants (Superset gives epoch milliseconds)."""
    if value is None:
        return None
    if column_type == "boolean":
        return bool(int(value))
    if column_type in ("date", "datetime"):
        if isinstance(value, (int, float)):
            instant = datetime.fromtimestamp(value / 1000, tz=timezone.utc)
        else:
            text = str(value).replace("Z", "+00:00").replace(" ", "T")
            instant = (datetime.fromisoformat(text) if "T" in text
                       else datetime.combine(date.fromisoformat(text), datetime.min.time()))
            instant = instant.replace(tzinfo=instant.tzinfo or timezone.utc)
        return instant.date().isoformat() if column_type == "date" else int(instant.timestamp())
    if column_type in ("float", "decimal"):
        return float(value)
    if column_type == "integer":
        return int(value)
    return str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return a == b


def _rows_alike(got: list[tuple], expected: list[tuple]) -> bool:
    """The same multiset of rows (floats within rounding): sorted with floats coarsened, then pairwise."""
    def order(row: tuple) -> tuple:
        return tuple((v is None, round(v, 2) if isinstance(v, float) else v) for v in row)

    return len(got) == len(expected) and all(
        all(_same(a, b) for a, b in zip(x, y, strict=True))
        for x, y in zip(sorted(got, key=order), sorted(expected, key=order), strict=True))


def _matches(where: WhereSpec, value: Any) -> bool:
    values = where.value if isinstance(where.value, list) else [where.value]
    return {
        "==": lambda: value == values[0], "!=": lambda: value != values[0],
        "IN": lambda: value in values, "NOT IN": lambda: value not in values,
        "IS TRUE": lambda: value is True, "IS FALSE": lambda: value is False,
        "IS NULL": lambda: value is None, "IS NOT NULL": lambda: value is not None,
    }[where.op]()


def _aggregate(metric: str, rows: list[dict[str, Any]]) -> Any:
    function = metric.split("(", 1)[0].upper()
    (column,) = metric_columns(metric) or [None]
    values = [r[column] for r in rows if r[column] is not None] if column else rows
    return {
        "COUNT": lambda: len(values),
        "COUNT_DISTINCT": lambda: len(set(values)),
        "SUM": lambda: float(sum(values)) if values else None,
        "MAX": lambda: max(values) if values else None,
    }[function]()


# -- the comparison ---------------------------------------------------------------------------------

def test_every_chart_equals_the_api_rows_of_its_report(tenant: str, charts, api_rows) -> None:
    mismatches = []
    for obj, result in charts:
        chart, query = obj.chart, QUERIES[obj.dataset_name]
        types = {c.name: c.type for c in query.columns}
        api = [{c: _value(types[c], v) for c, v in row.items()} for row in api_rows[query.name]]
        api = [r for r in api if all(_matches(w, r[w.column]) for w in chart.where)]
        superset = result["data"]
        shape = query_shape(chart)
        if not shape.aggregated:
            columns = list(shape.columns)
            ours = [tuple(r[c] for c in columns) for r in api]
            theirs = [tuple(_value(types[c], r[c]) for c in columns) for r in superset]
            ok = _rows_alike(ours, theirs)
        else:
            groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
            for row in api:
                groups[tuple(row[c] for c in shape.columns)].append(row)
            if not shape.columns:
                groups = {(): api}
            metrics = [m for m in chart.metrics if isinstance(m, str)]
            ours = [(*key, *(_normal(_aggregate(m, rows)) for m in metrics)) for key, rows in groups.items()]
            theirs = [(*(_value(types[c], r[c]) for c in shape.columns),
                       *(_normal(r[metric_label(m)]) for m in metrics)) for r in superset]
            ok = _rows_alike(ours, theirs)
        if not ok or result["rowcount"] != len(theirs):
            mismatches.append(f"{obj.name}: API {len(ours)} rows, Superset {result['rowcount']}; "
                              f"first API {sorted(ours, key=str)[:2]}, first Superset {sorted(theirs, key=str)[:2]}")
    assert not mismatches, "\n".join(mismatches)


def _normal(value: Any) -> Any:
    """Metrics: numbers as floats (SUM of integers is an integer on one side, a float on the other)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def test_the_reports_are_not_empty(tenant: str, api_rows) -> None:
    """The comparison above means something: every report has rows for the demo run."""
    assert {name: len(rows) for name, rows in api_rows.items() if not rows} == {}
    assert Counter(r["is_latest"] for r in api_rows["run_overview"])[True] == 1


def test_the_comparison_tells_a_difference() -> None:
    """Without Superset: the comparison above fails on a missing row or a changed value, and only
    looks past how the two sides spell the same value."""
    ours = [("T1", 1.0, True, "2025-11-02", 1_762_041_600), ("T2", 2.5, False, None, None)]
    theirs = [("T2", 2.5 + 1e-12, False, None, None), ("T1", 1.0, True, "2025-11-02", 1_762_041_600)]
    assert _rows_alike(ours, theirs)
    assert not _rows_alike(ours, theirs[:1])
    assert not _rows_alike(ours, [("T2", 2.51, False, None, None), theirs[1]])
    assert not _rows_alike(ours, [("T2", 2.5, True, None, None), theirs[1]])
    assert _value("boolean", 0) is False and _value("boolean", True) is True
    assert _value("date", 1_762_041_600_000) == _value("date", "2025-11-02") == "2025-11-02"
    assert _value("datetime", 1_762_041_600_000) == _value("datetime", "2025-11-02T00:00:00Z") \
        == _value("datetime", "2025-11-02 00:00:00.000000")
