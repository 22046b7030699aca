"""Run report SQL directly against the engine database: row counts and timing.

The row count wraps the query the way Superset wraps a dataset (`SELECT COUNT(*) FROM (<sql>) AS q`),
with the query's WITH clause hoisted above the wrapper (`pfill.dialects.count_rows_sql`): SQL Server
does not allow a CTE inside a derived table. The database is opened under the one policy of
`pfill.database` (a SQLite file that does not exist is an error, not created).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pfill.database import display_url, first_line, open_database, ping
from pfill.dialects import count_rows_sql
from pfill.errors import PfillError


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    row_count: int
    elapsed_ms: float  # executing the query and fetching all its rows


def connect(url: str) -> Engine:
    """An engine for the database, failing with a one-line message (password masked) when it is not
    there: a SQLite file that does not exist is not created."""
    engine = open_database(url, must_exist=True)
    ping(engine)
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
            row_count = int(conn.execute(sa.text(_escape_colons(count_rows_sql(sql, dialect)))).scalar_one())
    except sa.exc.DBAPIError as exc:
        raise PfillError(
            f"{label} failed on {display_url(engine)}: {first_line(exc)}",
            hint="does the database have the PowerFill schema? (`pfill db init`)",
        ) from None
    return Result(columns=columns, rows=rows, row_count=row_count, elapsed_ms=elapsed_ms)


def _escape_colons(sql: str) -> str:
    # sa.text() reads ":name" as a bind parameter; rendered SQL binds nothing (values are literals),
    # so every colon is literal text. Escaping is textual but does not parse SQL.
    return sql.replace(":", "\\:")

