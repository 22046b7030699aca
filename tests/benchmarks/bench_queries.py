"""Benchmark: each report query over a 100k-loan engine run, on SQLite and PostgreSQL.

A script, not a timed test (timings depend on the machine):

    .venv/bin/python tests/benchmarks/bench_queries.py [--loans 100000] [--repeat 5] [--pg URL | --no-pg]

For each backend it builds a throw-away database (a temp SQLite file; a temp PostgreSQL database),
runs `pfill db init`, `pfill demo-data` and `pfill run`, then times every query: execute and fetch
all rows, best and median of --repeat runs. Each backend also times a baseline measured in the same
run (a plain scan of the run's pool guide), and prints each query as a ratio of it, so a reader can
tell a slow query from a slow machine. Target: <= 500 ms per query on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from pfill.cli import cli
from pfill.dialects import count_rows_sql
from pfill.output import format_table
from pfill.queries.catalog import load_queries

AS_OF = "2026-01-05"
TARGET_MS = 500.0
BASELINE_SQL = "SELECT pg.loan_id, pg.pool_action, pg.upb FROM pfill_pool_guide pg WHERE pg.run_id = '{run_id}'"


def pfill(home: Path, url: str, *argv: str) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home), "--db", url, *argv])
    if result.exit_code != 0:
        sys.exit(f"pfill {' '.join(argv)} failed: {result.output}")
    return result.stdout


def build(home: Path, url: str, loans: int) -> str:
    """Schema, demo data and one run; returns the run id."""
    start = time.perf_counter()
    pfill(home, url, "db", "init")
    pfill(home, url, "demo-data", "--loans", str(loans), "--trades", str(max(40, loans // 250)), "--as-of", AS_OF)
    run = json.loads(pfill(home, url, "run", "--as-of", AS_OF, "--json"))
    print(f"  built {loans} loans + run {run['run_id']} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return str(run["run_id"])


def timed(engine: sa.Engine, sql: str, repeat: int) -> tuple[int, list[float]]:
    times, rows = [], 0
    text = sa.text(sql.replace(":", "\\:"))
    for _ in range(repeat):
        with engine.connect() as conn:
            start = time.perf_counter()
            rows = len(conn.execute(text).fetchall())
            times.append((time.perf_counter() - start) * 1000)
    return rows, times


def in_database_ms(engine: sa.Engine, sql: str, dialect: str, repeat: int) -> float:
    """Median ms of running the query in the database without moving rows to Python.

    PostgreSQL: EXPLAIN ANALYZE's execution time (a COUNT(*) wrapper would let the planner drop
    LEFT JOINs it does not need, timing less than the real query). SQLite: the COUNT(*) probe."""
    if dialect != "postgresql":
        return statistics.median(timed(engine, count_rows_sql(sql, dialect), repeat)[1])
    explain = sa.text("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql.replace(":", "\\:"))
    times = []
    for _ in range(repeat):
        with engine.connect() as conn:
            times.append(float(conn.execute(explain).scalar_one()[0]["Execution Time"]))
    return statistics.median(times)


def bench(label: str, url: str, dialect: str, repeat: int) -> dict[str, tuple[int, float, float]]:
    """{query: (rows, median ms fetching all rows, median ms in the database)} plus the baseline
    under '(baseline)'. The gap between the two is transfer and row building in the driver."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        run_id = conn.execute(sa.text("SELECT run_id FROM pfill_run_history WHERE status = 'Complete'")).scalar_one()
        if dialect == "postgresql":
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
    results: dict[str, tuple[int, float, float]] = {}
    baseline = BASELINE_SQL.format(run_id=run_id)
    for name, sql in [("(baseline)", baseline), *((n, q.render(dialect)) for n, q in load_queries().items())]:
        rows, times = timed(engine, sql, repeat)
        in_db = in_database_ms(engine, sql, dialect, repeat)
        results[name] = (rows, statistics.median(times), in_db)
        print(f"  {label} {name}: {rows} rows, median {statistics.median(times):.0f} ms", file=sys.stderr)
    engine.dispose()
    return results


def with_postgres(admin_url: str, body: Callable[[str], None]) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"pfill_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        body(sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="PostgreSQL admin URL")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()

    columns: dict[str, dict[str, tuple[int, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        print("SQLite:", file=sys.stderr)
        url = f"sqlite:///{home / 'bench.db'}"
        build(home / "sqlite", url, args.loans)
        columns["sqlite"] = bench("sqlite", url, "sqlite", args.repeat)
        if not args.no_pg:
            print("PostgreSQL:", file=sys.stderr)

            def on_postgres(pg_url: str) -> None:
                build(home / "pg", pg_url, args.loans)
                columns["postgresql"] = bench("postgresql", pg_url, "postgresql", args.repeat)

            with_postgres(args.pg, on_postgres)

    short = {"sqlite": "sqlite", "postgresql": "pg"}
    headers = ["query", "rows"]
    for backend in columns:
        headers += [f"{short[backend]} fetch ms", f"{short[backend]} x base", f"{short[backend]} in-db ms"]
    if "postgresql" in columns:
        headers.append(f"pg <= {TARGET_MS:.0f} ms")
    table = []
    for name in columns["sqlite"]:
        row: list[object] = [name, columns["sqlite"][name][0]]
        for results in columns.values():
            _, fetch, probe = results[name]
            base = results["(baseline)"][1]
            row += [f"{fetch:.1f}", f"{fetch / base:.2f}" if base else "-", f"{probe:.1f}"]
        if "postgresql" in columns and name != "(baseline)":
            fetch, probe = columns["postgresql"][name][1:]
            row.append("ok" if fetch <= TARGET_MS else ("ok in db" if probe <= TARGET_MS else "SLOW"))
        table.append(row)
    print(f"{args.loans} loans; medians of {args.repeat}; fetch = execute and fetch every row in Python; "
          "in-db = run in the database without transferring rows (pg: EXPLAIN ANALYZE; sqlite: COUNT(*) probe)")
    print(format_table(table, headers))


if __name__ == "__main__":
    main()
