"""`pfill lint` and `pfill preview`: check the report queries and run them against the engine database."""

from __future__ import annotations

import csv
import io
from typing import Any

import click

from pfill.config import Settings
from pfill.dialects import DIALECTS, dialect_of, pretty
from pfill.errors import EXIT_ERROR, UsageError
from pfill.options import json_option, pass_settings, tenant_option
from pfill.output import emit_json, format_table, info, print_table
from pfill.schema_version import require_current

from . import preview as runner
from .catalog import Query, get_query, load_queries
from .lint import lint_queries

_queries_option = click.option(
    "--queries", "queries_dir", type=click.Path(file_okay=False),
    help="Folder of *.sql.j2 + *.yaml queries [the packaged queries].",
)


@click.command("lint")
@_queries_option
@json_option("Print the findings as JSON.")
def lint(queries_dir: str | None, as_json: bool) -> None:
    """Render every query for every dialect, parse it with sqlglot and check it.

    Flags: templates that do not render or parse; ORDER BY without TOP/LIMIT/OFFSET (Superset wraps
    dataset SQL in a derived table, SQL Server rejects it); SELECT *; selected columns that differ
    from the declared ones. Each finding names file and line. Exit 1 when there are findings.
    """
    queries = load_queries(queries_dir)
    findings = lint_queries(queries)
    if as_json:
        emit_json([f.as_dict() for f in findings])
    else:
        for finding in findings:
            click.echo(str(finding))
        checked = f"{len(queries)} queries x {len(DIALECTS)} dialects"
        info(f"{checked}: {len(findings)} finding(s)" if findings else f"{checked}: no findings")
    if findings:
        raise SystemExit(EXIT_ERROR)


def _parse_params(values: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for value in values:
        name, sep, raw = value.partition("=")
        if not sep or not name:
            raise UsageError(f"--param {value!r}: expected NAME=VALUE")
        params[name.strip()] = raw
    return params


@click.command("preview")
@click.argument("name", required=False)
@_queries_option
@click.option("--all", "all_queries", is_flag=True, help="Every query (with --execute: name, rows, ms).")
@click.option("--dialect", type=click.Choice(DIALECTS), help="SQL dialect [the database's].")
@tenant_option()
@click.option("--run-id", help="Run to show [the latest Complete run of the tenant].")
@click.option("--schema", help="Schema holding the tables [the connection's default].")
@click.option("-p", "--param", "param_values", multiple=True, metavar="NAME=VALUE",
              help="A query parameter declared in its .yaml (repeatable).")
@click.option("--superset", is_flag=True,
              help="Show the SQL a Superset dataset holds (query-time Jinja kept); not with --execute.")
@click.option("--execute", is_flag=True, help="Run it against the engine database and print rows.")
@click.option("--db", "db_url", metavar="URL", help="Database to run against [pfill --db; env PFILL_DB_URL].")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Rows to print.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@pass_settings
def preview(
    settings: Settings, name: str | None, queries_dir: str | None, all_queries: bool, dialect: str | None,
    tenant: str | None, run_id: str | None, schema: str | None, param_values: tuple[str, ...],
    superset: bool, execute: bool, db_url: str | None, limit: int, fmt: str,
) -> None:
    """Print a report query's SQL (pretty-printed), or run it with --execute.

    With --execute: rows (first --limit), row count and elapsed ms. `--all --execute` runs all
    queries and prints name, rows, ms (`--format json`: a list of objects with name, rows, ms).
    """
    queries = load_queries(queries_dir)
    if all_queries == bool(name):
        raise UsageError("give a query NAME or --all" if not name else "give either a query NAME or --all, not both")
    if superset and execute:
        raise UsageError("--superset shows the dataset SQL; it cannot be executed directly (drop one of them)")
    selected = list(queries.values()) if all_queries else [get_query(queries, name or "")]
    db_url = db_url or settings.db_url
    db_dialect = dialect_of(db_url)
    if execute and dialect and dialect != db_dialect:
        raise UsageError(f"--dialect {dialect} does not match the database ({db_dialect})")
    dialect = dialect or db_dialect
    tenant = tenant or settings.tenant
    params = _parse_params(param_values)
    _check_param_names(selected, params)
    rendered = {q.name: q.render(dialect, tenant, run_id if q.takes("run_id") else None, schema, superset,
                                 {k: v for k, v in params.items() if q.takes(k)})
                for q in selected}
    if not execute:
        for query in selected:
            if all_queries:
                click.echo(f"-- {query.name}: {query.title}")
            click.echo(rendered[query.name] if superset else pretty(rendered[query.name], dialect))
            if all_queries:
                click.echo(";\n")
        return
    engine = runner.connect(db_url)
    try:
        require_current(engine)  # a read: an old schema is refused with `pfill db upgrade`, never changed
        status = runner.check_run(engine, tenant, run_id)
        if run_id is None and status is None:
            info(f"note: tenant {tenant!r} has no Complete run yet: the run reports are empty")
        elif run_id is not None and status != "Complete":
            info(f"note: run {run_id} is {status}: its report rows may have been removed")
        results = {q.name: runner.execute(engine, rendered[q.name], dialect, f"query {q.name}") for q in selected}
    finally:
        engine.dispose()
    if all_queries:
        _print_probe(results, fmt)
    else:
        _print_result(selected[0], results[selected[0].name], limit, fmt)


def _check_param_names(selected: list[Query], params: dict[str, str]) -> None:
    for param in params:
        if not any(q.takes(param) for q in selected):
            if len(selected) == 1:
                selected[0].render("sqlite", params={param: ""})  # raises the query's own message
            raise UsageError(f"no query has a parameter {param!r}")


def _print_probe(results: dict[str, runner.Result], fmt: str) -> None:
    rows = [{"name": name, "rows": r.row_count, "ms": round(r.elapsed_ms, 1)} for name, r in results.items()]
    if fmt == "json":
        emit_json(rows)
    elif fmt == "csv":
        click.echo(_csv(["name", "rows", "ms"], [list(r.values()) for r in rows]), nl=False)
    else:
        print_table([list(r.values()) for r in rows], ["name", "rows", "ms"])


def _print_result(query: Query, result: runner.Result, limit: int, fmt: str) -> None:
    shown = result.rows[:limit]
    if fmt == "json":
        emit_json({
            "name": query.name, "row_count": result.row_count, "elapsed_ms": round(result.elapsed_ms, 1),
            "columns": result.columns, "rows": [dict(zip(result.columns, row, strict=True)) for row in shown],
        })
        return
    more = f", first {len(shown)} shown" if len(shown) < result.row_count else ""
    summary = f"{result.row_count} rows in {result.elapsed_ms:.1f} ms{more}"
    if fmt == "csv":
        click.echo(_csv(result.columns, shown), nl=False)
        info(summary)  # stdout stays plain CSV
    else:
        click.echo(format_table(shown, result.columns))
        click.echo(summary)


def _csv(headers: list[str], rows: list[Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


COMMANDS = [lint, preview]
