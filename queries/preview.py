"""Run report SQL directly against the engine database: pretty-printing, row counts, timing.

The row count wraps the query the way Superset wraps a dataset (`SELECT COUNT(*) FROM (<sql>) AS q`),
with the query's WITH clause hoisted above the wrapper: SQL Server does not allow a CTE inside a
derived table (Superset 6 hoists it for mssql too). The rewrite is done on sqlglot's tree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlalchemy.engine import Engine, make_url
from sqlglot import exp

from pfill.errors import PfillError
from pfill.secrets import mask_url

from .template import SQLGLOT_DIALECT

_WITH = "with_" if "with_" in exp.Select.arg_types else "with"  # the arg's name moved in sqlglot 26


def pretty(sql: str, dialect: str) -> str:
    """The SQL pretty-printed by sqlglot in its own dialect."""
    return sqlglot.transpile(sql, read=SQLGLOT_DIALECT[dialect], write=SQLGLOT_DIALECT[dialect], pretty=True)[0]


def count_sql(sql: str, dialect: str) -> str:
    """`SELECT COUNT(*) AS row_count FROM (<sql>) AS counted`, the query's CTEs hoisted to the top."""
    name = SQLGLOT_DIALECT[dialect]
    query = sqlglot.parse_one(sql, read=name)
    ctes = query.args.get(_WITH)
    if ctes is not None:
        query.set(_WITH, None)
    wrapper = exp.select(exp.Count(this=exp.Star()).as_("row_count")).from_(query.subquery("counted"))
    if ctes is not None:
        wrapper.set(_WITH, ctes)
    return wrapper.sql(dialect=name)


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    row_count: int
    elapsed_ms: float  # executing the query and fetching all its rows


def connect(url: str) -> Engine:
    """An engine for the database, failing with a one-line message (password masked) when it is not
    there: a SQLite file that does not exist is not created."""
    parsed = make_url(url)
    is_file = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if is_file and not Path(str(parsed.database)).exists():
        raise PfillError(
            f"database not found: {mask_url(url)}",
            hint="create it with `pfill db init` and `pfill demo-data`, or pass --db URL",
        )
    connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
    engine = sa.create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        raise PfillError(f"cannot connect to {mask_url(url)}: {_first_line(exc)}") from None
    return engine


def check_run(engine: Engine, tenant: str, run_id: str | None) -> str | None:
    """The status of the run to show (None: no Complete run yet). An unknown run id is an error.

    Values are bound, never pasted."""
    with engine.connect() as conn:
        if run_id is None:
            return conn.execute(
                sa.text("SELECT status FROM pfill_run_history WHERE tenant_id = :tenant AND status = 'Complete'"),
                {"tenant": tenant},
            ).scalar()
        status = conn.execute(
            sa.text("SELECT status FROM pfill_run_history WHERE tenant_id = :tenant AND run_id = :run_id"),
            {"tenant": tenant, "run_id": run_id},
        ).scalar()
    if status is None:
        raise PfillError(
            f"run {run_id} not found for tenant {tenant!r}",
            hint="list the runs with `pfill preview run_overview --execute`",
        )
    return str(status)


def execute(engine: Engine, sql: str, dialect: str, label: str) -> Result:
    """Run the SQL (all rows fetched, timed) and its COUNT(*) probe."""
    try:
        with engine.connect() as conn:
            start = time.perf_counter()
            cursor = conn.execute(sa.text(_escape_colons(sql)))
            rows = [tuple(row) for row in cursor.fetchall()]
            elapsed_ms = (time.perf_counter() - start) * 1000
            columns = list(cursor.keys())
            row_count = int(conn.execute(sa.text(_escape_colons(count_sql(sql, dialect)))).scalar_one())
    except sa.exc.DBAPIError as exc:
        raise PfillError(
            f"{label} failed on {mask_url(engine.url.render_as_string(hide_password=False))}: {_first_line(exc)}",
            hint="does the database have the PowerFill schema? (`pfill db init`)",
        ) from None
    return Result(columns=columns, rows=rows, row_count=row_count, elapsed_ms=elapsed_ms)


def _escape_colons(sql: str) -> str:
    # sa.text() reads ":name" as a bind parameter; rendered SQL binds nothing (values are literals),
    # so every colon is literal text. Escaping is textual but does not parse SQL.
    return sql.replace(":", "\\:")


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    return (str(original).strip().splitlines() or [type(original).__name__])[0]
