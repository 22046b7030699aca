"""Prove the deployed dashboards work: every chart through Superset's chart-data API, its row count
compared with the same question asked of the database directly; every dashboard with all its charts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from pfill.dashboards.specs import WhereSpec
from pfill.dialects import wrap

from .charts import QueryShape, query_shape
from .client import SupersetClient, SupersetError
from .desired import DesiredObject, DesiredState

if TYPE_CHECKING:
    from sqlalchemy import Connection


@dataclass
class Check:
    kind: str  # chart or dashboard
    name: str
    superset_rows: int | None
    direct_rows: int | None
    ok: bool
    ms: float
    message: str = ""


def count_sql(sql: str, shape: QueryShape, dialect: str) -> str:
    """SQL counting the rows a chart of this shape gets from the dataset SQL, wrapped as Superset
    wraps it (a WITH clause moves to the top: SQL Server allows no CTE inside a derived table)."""

    def outer(source: exp.Expression) -> exp.Select:
        if shape.where:
            filtered = exp.select(exp.Star()).from_(source).where(*(_condition(w) for w in shape.where))
            source = filtered.subquery("filtered")
        if shape.aggregated and not shape.columns:
            return exp.select(exp.Literal.number(1).as_("row_count"))
        if shape.aggregated:
            groups = [exp.column(c, quoted=True) for c in shape.columns]
            source = exp.select(*groups).from_(source).group_by(*groups).subquery("grouped")
        return exp.select(exp.Count(this=exp.Star()).as_("row_count")).from_(source)

    return wrap(sql, dialect, outer, "virtual_table")


def _condition(where: WhereSpec) -> exp.Expression:
    column = exp.column(where.column, quoted=True)
    values = where.value if isinstance(where.value, list) else [where.value]
    literals = [exp.convert(v) for v in values]
    simple: dict[str, Any] = {
        "==": lambda: exp.EQ(this=column, expression=literals[0]),
        "!=": lambda: exp.NEQ(this=column, expression=literals[0]),
        ">": lambda: exp.GT(this=column, expression=literals[0]),
        ">=": lambda: exp.GTE(this=column, expression=literals[0]),
        "<": lambda: exp.LT(this=column, expression=literals[0]),
        "<=": lambda: exp.LTE(this=column, expression=literals[0]),
        "IN": lambda: column.isin(*literals),
        "NOT IN": lambda: exp.Not(this=column.isin(*literals)),
        "IS TRUE": lambda: exp.Is(this=column, expression=exp.true()),
        "IS FALSE": lambda: exp.Is(this=column, expression=exp.false()),
        "IS NULL": lambda: exp.Is(this=column, expression=exp.Null()),
        "IS NOT NULL": lambda: exp.Not(this=exp.Is(this=column, expression=exp.Null())),
    }
    return simple[where.op]()


def verify(
    client: SupersetClient, state: DesiredState, ids: dict[str, int], progress: Callable[[str], None]
) -> list[Check]:
    tenant = state.tenant
    # each dataset's SQL as run directly (Superset Jinja at its defaults), rendered once
    direct_sql = {
        o.name: o.query.render(tenant.dialect, tenant=tenant.name, schema=tenant.schema)
        for o in state.by_kind("dataset") if o.query is not None
    }
    from pfill.database import open_database  # SQLAlchemy, imported only by the commands that query

    checks: list[Check] = []
    with open_database(tenant.database_url).connect() as conn:
        for obj in state.by_kind("chart"):
            check = _check_chart(client, conn, obj, ids, direct_sql, tenant.dialect)
            checks.append(check)
            if obj.uuid in ids:
                progress(f"  chart {obj.name}: {'ok' if check.ok else 'FAILED'}")
    return checks + [_check_dashboard(client, state, obj, ids) for obj in state.by_kind("dashboard")]


def _check_chart(client: SupersetClient, conn: Connection, obj: DesiredObject, ids: dict[str, int],
                 direct_sql: dict[str, str], dialect: str) -> Check:
    """The chart's row count through the chart-data API against the same question asked directly."""
    assert obj.chart is not None
    start = time.monotonic()
    if obj.uuid not in ids:
        return Check("chart", obj.name, None, None, False, 0, "not deployed (run apply)")
    context = json.loads(obj.payload(ids)["query_context"])
    superset_rows: int | None = None
    try:
        result = client.post("/api/v1/chart/data", json=context)["result"][0]
        superset_rows = int(result["rowcount"])
        error = result.get("error")
    except SupersetError as exc:
        error = str(exc)
    shape = query_shape(obj.chart)
    from sqlalchemy import text

    direct = int(conn.execute(text(count_sql(direct_sql[obj.dataset_name or ""], shape, dialect))).scalar_one())
    direct = min(direct, shape.row_limit)
    ok = error is None and superset_rows == direct
    message = error or ("" if ok else f"Superset returned {superset_rows} rows, the database {direct}")
    return Check("chart", obj.name, superset_rows, direct, ok, (time.monotonic() - start) * 1000, message)


def _check_dashboard(client: SupersetClient, state: DesiredState, obj: DesiredObject, ids: dict[str, int]) -> Check:
    """The dashboard answers and holds every chart the spec puts on it."""
    start = time.monotonic()
    dashboard_id = ids.get(obj.uuid)
    expected = {ids.get(c.uuid) for c in state.by_kind("chart") if c.name.startswith(f"{obj.key.key}/")}
    if dashboard_id is None:
        return Check("dashboard", obj.name, None, None, False, 0, "not deployed (run apply)")
    try:
        charts = client.get(f"/api/v1/dashboard/{dashboard_id}/charts")["result"]
        client.get(f"/api/v1/dashboard/{dashboard_id}/datasets")
        found = {c["id"] for c in charts}
        missing = expected - found
        ok = not missing
        message = "" if ok else f"{len(missing)} chart(s) not on the dashboard"
    except SupersetError as exc:
        found, ok, message = set(), False, str(exc)
    return Check("dashboard", obj.name, len(found), len(expected), ok, (time.monotonic() - start) * 1000, message)
