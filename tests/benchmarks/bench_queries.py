"""Benchmark: each report query over a 100k-loan engine run, on SQLite and PostgreSQL.

A script, not a timed test (timings depend on the machine):

    .venv/bin/python tests/benchmarks/bench_queries.py [--loans 100000] [--trades 1000] [--repeat 5]
                                                       [--pg URL | --no-pg | --no-sqlite]
                                                       [--dashboards pool-candidates|all|none]

For each backend it builds a throw-away database (a temp SQLite file; a temp PostgreSQL database),
runs `pfill db init`, `pfill demo-data` and `pfill run`, then times every query: execute and fetch
all rows, best and median of --repeat runs. Each backend also times a baseline measured in the same
run (a plain scan of the run's pool guide), and prints each query as a ratio of it, so a reader can
tell a slow query from a slow machine. Target: <= 500 ms per query on PostgreSQL.

A query whose whole result is larger than FULL_ROWS_MAX rows (pool_candidates: every eligible loan x
trade pair, ~16 million at 100k loans / 1,000 trades) is not fetched whole: nobody reads it that way
(a dashboard shows a row limit of it, the HTTP API pages it). Its figures are the dashboard's: every
chart of the --dashboards, as Superset runs it (the dataset SQL as a derived table; the chart's
columns, or its groups and metrics; its fixed conditions; the row limit), with no filter (the latest
Complete run), with the Run filter set, and with the Run and Trade filters set (the trade with the
most candidate options, so the row limit is what stops the query). Target: <= 500 ms on PostgreSQL;
a statement still running after --timeout seconds is cancelled and printed as such.
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

import jinja2
import sqlalchemy as sa
from click.testing import CliRunner
from sqlglot import exp

from pfill.cli import cli
from pfill.dashboards.specs import ChartSpec, LoadedSpec, load_specs
from pfill.deploy.charts import query_shape, superset_metric
from pfill.deploy.verify import _condition as fixed_condition  # a chart's `where` as Superset applies it
from pfill.dialects import count_rows_sql, sqlglot_name, wrap
from pfill.output import format_table
from pfill.queries.catalog import Query, load_queries

AS_OF = "2026-01-05"
TARGET_MS = 500.0
FULL_ROWS_MAX = 2_000_000  # larger results are timed through the dashboards' charts only
BASELINE_SQL = "SELECT pg.loan_id, pg.pool_action, pg.upb FROM pfill_pool_guide pg WHERE pg.run_id = '{run_id}'"


def pfill(home: Path, url: str, *argv: str) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home), "--db", url, *argv])
    if result.exit_code != 0:
        sys.exit(f"pfill {' '.join(argv)} failed: {result.output}")
    return result.stdout


def build(home: Path, url: str, loans: int, trades: int) -> str:
    """Schema, demo data and one run; returns the run id."""
    start = time.perf_counter()
    pfill(home, url, "db", "init")
    pfill(home, url, "demo-data", "--loans", str(loans), "--trades", str(trades), "--as-of", AS_OF)
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
    under '(baseline)'. The gap between the two is transfer and row building in the driver. A query
    with more than FULL_ROWS_MAX rows: (rows, NaN, NaN), timed by its dashboards (bench_charts)."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        run_id = conn.execute(sa.text("SELECT run_id FROM pfill_run_history WHERE status = 'Complete'")).scalar_one()
        if dialect == "postgresql":
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
    results: dict[str, tuple[int, float, float]] = {}
    baseline = BASELINE_SQL.format(run_id=run_id)
    for name, sql in [("(baseline)", baseline), *((n, q.render(dialect)) for n, q in load_queries().items())]:
        with engine.connect() as conn:
            total = int(conn.execute(sa.text(count_rows_sql(sql, dialect).replace(":", "\\:"))).scalar_one())
        if total > FULL_ROWS_MAX:
            results[name] = (total, float("nan"), float("nan"))
            print(f"  {label} {name}: {total} rows, not fetched whole (see the dashboard charts)", file=sys.stderr)
            continue
        rows, times = timed(engine, sql, repeat)
        in_db = in_database_ms(engine, sql, dialect, repeat)
        results[name] = (rows, statistics.median(times), in_db)
        print(f"  {label} {name}: {rows} rows, median {statistics.median(times):.0f} ms", file=sys.stderr)
    engine.dispose()
    return results


# -- the dashboards' charts, as Superset runs them -----------------------------------------------------------

def superset_jinja(sql: str, run_id: str | None) -> str:
    """The dataset SQL as Superset evaluates it when a chart runs: the Run filter set to `run_id`, or empty."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["where_in"] = lambda values, mark="'": "(" + ", ".join(f"'{v}'" for v in values) + ")"
    env.globals.update(
        filter_values=lambda column, default=None, remove_filter=False: [run_id] if run_id and column == "run_id"
        else [], url_param=lambda param, default=None, add_to_cache_keys=True, escape_result=True: default,
        get_filters=lambda column, remove_filter=False: [],
        current_username=lambda add_to_cache_keys=True: None, current_user_id=lambda add_to_cache_keys=True: None,
        current_user_email=lambda add_to_cache_keys=True: None)
    return env.from_string(sql).render()


def chart_sql(query: Query, chart: ChartSpec, dialect: str, filters: dict[str, str]) -> str:
    """What Superset sends for the chart: the dataset SQL (Superset Jinja evaluated) as `virtual_table`;
    the chart's raw columns, or its groups and metrics; its fixed conditions and the dashboard filters
    whose column the dataset has (`filters`: column -> value, the Run filter also in the Jinja); its
    row limit."""
    inner = superset_jinja(query.render(dialect, superset=True), filters.get("run_id"))
    shape = query_shape(chart)

    def outer(source: exp.Subquery) -> exp.Select:
        if shape.aggregated:
            groups = [exp.column(c, quoted=True) for c in shape.columns]
            metrics = []
            for metric in chart.metrics:
                m = superset_metric(metric)
                text = m.get("sqlExpression") or f"{m['aggregate']}({m['column']['column_name']})"
                metrics.append(exp.maybe_parse(text, dialect=sqlglot_name(dialect)).as_(m["label"], quoted=True))
            select = exp.select(*groups, *metrics).from_(source)
            if groups:
                select = select.group_by(*groups)
            if metrics:
                select = select.order_by(exp.Ordered(this=metrics[0].this.copy(), desc=True))
        else:
            select = exp.select(*(exp.column(c, quoted=True) for c in shape.columns)).from_(source)
        for where in shape.where:
            select = select.where(fixed_condition(where))
        for column, value in filters.items():
            if column in query.column_names:
                select = select.where(exp.column(column, quoted=True).isin(exp.Literal.string(value)))
        return select.limit(shape.row_limit)

    return wrap(inner, dialect, outer, "virtual_table")


def bench_charts(label: str, url: str, dialect: str, repeat: int, dashboards: list[LoadedSpec],
                 timeout_s: float) -> dict[str, tuple[int, float, float]]:
    """{'<dashboard>/<chart> [<filters>]': (rows, median ms fetching, median ms in the database)}:
    every chart with no filter, the Run filter, and the Run and Trade filters (the trade with the
    most candidate options; another trade when there is no such table). NaN: cancelled at the timeout."""
    connect_args = {"options": f"-c statement_timeout={int(timeout_s * 1000)}"} if dialect == "postgresql" else {}
    engine = sa.create_engine(url, connect_args=connect_args)
    if dialect == "sqlite":  # no statement timeout: a progress handler interrupts past the deadline
        deadline = [0.0]

        @sa.event.listens_for(engine, "connect")
        def _watch(dbapi_conn: object, _record: object) -> None:
            dbapi_conn.set_progress_handler(  # type: ignore[attr-defined]
                lambda: 1 if time.perf_counter() > deadline[0] else 0, 100_000)

        @sa.event.listens_for(engine, "before_cursor_execute")
        def _arm(*_: object) -> None:
            deadline[0] = time.perf_counter() + timeout_s

    queries = load_queries()
    with engine.connect() as conn:
        run_id = conn.execute(sa.text("SELECT run_id FROM pfill_run_history WHERE status = 'Complete'")).scalar_one()
        trade = conn.execute(sa.text(
            "SELECT t.trade_id FROM pfill_trade_groups t JOIN pfill_candidate_options c ON c.run_id = t.run_id "
            "AND c.trade_group = t.trade_group WHERE t.run_id = :r GROUP BY t.trade_id "
            "ORDER BY COUNT(*) DESC, t.trade_id LIMIT 1"), {"r": run_id}).scalar_one()
    variants = {"latest": {}, "run": {"run_id": run_id}, "run+trade": {"run_id": run_id, "trade_id": trade}}
    print(f"  {label} charts: run {run_id}, trade filter {trade}", file=sys.stderr)
    results: dict[str, tuple[int, float, float]] = {}
    for loaded in dashboards:
        spec = loaded.spec
        for chart in spec.charts:
            query = queries[loaded.chart_dataset(chart)]
            for variant, filters in variants.items():
                if "trade_id" in filters and "trade_id" not in query.column_names:
                    continue  # the Trade filter does not reach this chart
                name = f"{spec.slug}/{chart.key} [{variant}]"
                sql = chart_sql(query, chart, dialect, filters)
                try:
                    rows, times = timed(engine, sql, repeat)
                    in_db = in_database_ms(engine, sql, dialect, repeat)
                    results[name] = (rows, statistics.median(times), in_db)
                except sa.exc.DBAPIError as exc:
                    if "cancel" not in str(exc).lower() and "interrupt" not in str(exc).lower():
                        raise
                    results[name] = (-1, float("nan"), float("nan"))
                print(f"  {label} {name}: {results[name][0]} rows, median {results[name][1]:.0f} ms", file=sys.stderr)
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
    parser.add_argument("--trades", type=int, default=None, help="open trades [loans / 100, at least 40]")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dashboards", default="pool-candidates",
                        help="dashboards whose charts to time: slugs (comma-separated), all or none")
    parser.add_argument("--timeout", type=float, default=60.0, help="cancel a chart's statement after this (s)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="PostgreSQL admin URL")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()
    trades = args.trades or max(40, args.loans // 100)
    specs = load_specs()
    wanted = {s.spec.slug for s in specs} if args.dashboards == "all" else set(args.dashboards.split(","))
    dashboards = [s for s in specs if s.spec.slug in wanted]

    columns: dict[str, dict[str, tuple[int, float, float]]] = {}
    charts: dict[str, dict[str, tuple[int, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if not args.no_sqlite:
            print("SQLite:", file=sys.stderr)
            url = f"sqlite:///{home / 'bench.db'}"
            build(home / "sqlite", url, args.loans, trades)
            columns["sqlite"] = bench("sqlite", url, "sqlite", args.repeat)
            charts["sqlite"] = bench_charts("sqlite", url, "sqlite", args.repeat, dashboards, args.timeout)
        if not args.no_pg:
            print("PostgreSQL:", file=sys.stderr)

            def on_postgres(pg_url: str) -> None:
                build(home / "pg", pg_url, args.loans, trades)
                columns["postgresql"] = bench("postgresql", pg_url, "postgresql", args.repeat)
                charts["postgresql"] = bench_charts("postgresql", pg_url, "postgresql", args.repeat, dashboards,
                                                    args.timeout)

            with_postgres(args.pg, on_postgres)

    print(f"{args.loans} loans, {trades} trades; medians of {args.repeat}; fetch = execute and fetch every row "
          "in Python; in-db = run in the database without transferring rows (pg: EXPLAIN ANALYZE; sqlite: COUNT(*) "
          f"probe); '-': more than {FULL_ROWS_MAX:,} rows, not fetched whole (its dashboard charts below)")
    print(format_table(*figures(columns, with_base=True)))
    if any(charts.values()):
        print()
        print(f"dashboard charts as Superset runs them (row limit, filters: latest = none, run = the Run filter, "
              f"run+trade = Run and Trade); rows -1 = cancelled after {args.timeout:.0f} s")
        print(format_table(*figures(charts, with_base=False)))


def figures(columns: dict[str, dict[str, tuple[int, float, float]]], with_base: bool) -> tuple[list, list[str]]:
    """(rows, headers) of the printed table: per backend the fetch ms (and its ratio to the baseline)
    and the in-database ms; the PostgreSQL verdict against TARGET_MS."""
    short = {"sqlite": "sqlite", "postgresql": "pg"}
    headers = ["query", "rows"]
    for backend in columns:
        headers += [f"{short[backend]} fetch ms", *([f"{short[backend]} x base"] if with_base else []),
                    f"{short[backend]} in-db ms"]
    if "postgresql" in columns:
        headers.append(f"pg <= {TARGET_MS:.0f} ms")
    table = []
    first = next(iter(columns.values()))
    for name in first:
        row: list[object] = [name, columns.get("postgresql", first).get(name, first[name])[0]]
        for results in columns.values():
            _, fetch, probe = results.get(name, (0, float("nan"), float("nan")))
            base = results["(baseline)"][1] if with_base else 0
            row += [_ms(fetch), *([f"{fetch / base:.2f}" if base and fetch == fetch else "-"] if with_base else []),
                    _ms(probe)]
        if "postgresql" in columns and name != "(baseline)":
            fetch, probe = columns["postgresql"].get(name, (0, float("nan"), float("nan")))[1:]
            row.append("-" if fetch != fetch and probe != probe and columns["postgresql"][name][0] >= 0 else
                       "ok" if fetch <= TARGET_MS else ("ok in db" if probe <= TARGET_MS else "SLOW"))
        table.append(row)
    return table, headers


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"


if __name__ == "__main__":
    main()
