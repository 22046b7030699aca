"""Prove the deployed dashboards work: every chart through Superset's chart-data API, its row count
compared with the same question asked of the database directly; every dashboard with all its charts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from pfill.dashboards.specs import WhereSpec

from .charts import QueryShape, query_shape
from .client import SupersetClient, SupersetError
from .desired import DesiredState

SQLGLOT_DIALECT = {"sqlite": "sqlite", "postgresql": "postgres", "mssql": "tsql"}


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
    """SQL counting the rows a chart of this shape gets from the dataset SQL. A WITH clause is
    hoisted to the top (SQL Server allows no CTE inside a derived table), as Superset does."""
    read = SQLGLOT_DIALECT[dialect]
    inner = sqlglot.parse_one(sql, read=read)
    with_clause = inner.args.get("with")
    inner.set("with", None)
    source: exp.Expression = inner.subquery("virtual_table")
    if shape.where:
        source = exp.select(exp.Star()).from_(source).where(*(_condition(w) for w in shape.where)).subquery("filtered")
    if shape.aggregated and not shape.columns:
        outer = exp.select(exp.Literal.number(1).as_("row_count"))
    elif shape.aggregated:
        groups = [exp.column(c, quoted=True) for c in shape.columns]
        grouped = exp.select(*groups).from_(source).group_by(*groups).subquery("grouped")
        outer = exp.select(exp.Count(this=exp.Star()).as_("row_count")).from_(grouped)
    else:
        outer = exp.select(exp.Count(this=exp.Star()).as_("row_count")).from_(source)
    if with_clause is not None:
        outer.set("with", with_clause)
    return outer.sql(dialect=read)


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
    checks: list[Check] = []
    tenant = state.tenant
    engine = sa.create_engine(tenant.database_url)
    # each dataset's SQL as run directly (Superset Jinja at its defaults), rendered once
    direct_sql = {
        o.name: o.query.render(tenant.dialect, tenant=tenant.name, schema=tenant.schema)
        for o in state.by_kind("dataset") if o.query is not None
    }
    try:
        with engine.connect() as conn:
            for obj in state.by_kind("chart"):
                assert obj.chart is not None
                start = time.monotonic()
                chart_id = ids.get(obj.uuid)
                if chart_id is None:
                    checks.append(Check("chart", obj.name, None, None, False, 0, "not deployed (run apply)"))
                    continue
                context = json.loads(obj.payload(ids)["query_context"])
                superset_rows: int | None = None
                try:
                    result = client.post("/api/v1/chart/data", json=context)["result"][0]
                    superset_rows = int(result["rowcount"])
                    error = result.get("error")
                except SupersetError as exc:
                    error = str(exc)
                shape = query_shape(obj.chart)
                sql = count_sql(direct_sql[obj.dataset_name or ""], shape, tenant.dialect)
                direct = int(conn.execute(sa.text(sql)).scalar_one())
                direct = min(direct, shape.row_limit)
                ok = error is None and superset_rows == direct
                message = error or ("" if ok else f"Superset returned {superset_rows} rows, the database {direct}")
                checks.append(Check("chart", obj.name, superset_rows, direct, ok, (time.monotonic() - start) * 1000,
                                    message))
                progress(f"  chart {obj.name}: {'ok' if ok else 'FAILED'}")
    finally:
        engine.dispose()
    for obj in state.by_kind("dashboard"):
        start = time.monotonic()
        dashboard_id = ids.get(obj.uuid)
        expected = {ids.get(c.uuid) for c in state.by_kind("chart") if c.name.startswith(f"{obj.key.key}/")}
        if dashboard_id is None:
            checks.append(Check("dashboard", obj.name, None, None, False, 0, "not deployed (run apply)"))
            continue
        try:
            charts = client.get(f"/api/v1/dashboard/{dashboard_id}/charts")["result"]
            client.get(f"/api/v1/dashboard/{dashboard_id}/datasets")
            found = {c["id"] for c in charts}
            missing = expected - found
            ok = not missing
            message = "" if ok else f"{len(missing)} chart(s) not on the dashboard"
        except SupersetError as exc:
            found, ok, message = set(), False, str(exc)
        checks.append(Check("dashboard", obj.name, len(found), len(expected), ok,
                            (time.monotonic() - start) * 1000, message))
    return checks

