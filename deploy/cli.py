"""`pfill validate | schema | plan | apply | verify`: dashboards as code against a Superset environment."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click

from pfill.config import Settings
from pfill.dashboards.specs import json_schema
from pfill.errors import EXIT_USAGE, PfillError, UsageError
from pfill.options import env_option, json_option, pass_settings
from pfill.output import emit_json, info, print_table
from pfill.secrets import mask_url

from . import preflight
from .export import export_dashboard, write_exports
from .plan import render_plan
from .project import Project, Sources, connect


class VerifyFailed(PfillError):
    pass


def source_options(command: click.Command) -> click.Command:
    command = click.option("--queries", "queries_dir", type=click.Path(file_okay=False, path_type=Path),
                           help="Queries folder [the packaged queries].")(command)
    return click.option("--dashboards", "dashboards_dir", type=click.Path(file_okay=False, path_type=Path),
                        help="Dashboard specs folder [the packaged dashboards].")(command)


def target_options(command: click.Command) -> click.Command:
    command = click.option("--tenant", "tenants", multiple=True, help="Tenant(s) to deploy [all of the environment].")(
        command
    )
    return env_option()(command)


@click.command("validate")
@source_options
@json_option()
def validate_cmd(queries_dir: Path | None, dashboards_dir: Path | None, as_json: bool) -> None:
    """Check the dashboard specs against their schema and the queries' declared columns.

    Every problem names its file and line. Exit 1 when there is any.
    """
    sources = Sources.load(queries_dir, dashboards_dir)
    specs = sources.specs
    summary = {
        "dashboards": len(specs),
        "charts": sum(len(s.spec.charts) for s in specs),
        "datasets": len({s.chart_dataset(c) for s in specs for c in s.spec.charts}),
        "queries": len(sources.queries),
    }
    if as_json:
        emit_json({"valid": True, **summary})
    else:
        info(f"valid: {summary['dashboards']} dashboards, {summary['charts']} charts over "
             f"{summary['datasets']} datasets")


@click.command("schema")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
def schema_cmd(out: Path | None) -> None:
    """Print the JSON Schema of dashboard specs (for editor validation)."""
    text = json.dumps(json_schema(), indent=2) + "\n"
    if out:
        out.write_text(text)
        info(f"wrote {out}")
    else:
        click.echo(text, nl=False)


@click.command("plan")
@target_options
@source_options
@click.option("--prune", is_flag=True, help="Count deletions of managed objects that left the specs as changes.")
@json_option()
@pass_settings
def plan_cmd(settings: Settings, env_name: str | None, tenants: tuple[str, ...], queries_dir: Path | None,
             dashboards_dir: Path | None, prune: bool, as_json: bool) -> None:
    """Show what apply would change in Superset, field by field.

    Exit 0 when nothing would change, 2 when changes are pending, 1 on error.
    """
    with Project.load(settings, env_name, tenants, queries_dir, dashboards_dir) as project:
        plans = project.plan(prune)
    if as_json:
        emit_json([p.as_dict() for p in plans])
    else:
        click.echo("\n\n".join(render_plan(p) for p in plans))
    if any(p.conflicts for p in plans):
        raise SystemExit(1)
    if any(p.pending for p in plans):
        raise SystemExit(EXIT_USAGE)


@click.command("apply")
@target_options
@source_options
@click.option("--prune", is_flag=True, help="Also delete managed objects that left the specs.")
@click.option("--prune-all", is_flag=True, help="Allow a prune that deletes every dashboard a tenant has.")
@click.option("--no-sql-check", "sql_check", is_flag=True, flag_value=False, default=True,
              help="Do not run new dataset SQL on the database before writing.")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
@json_option("Print a JSON summary.")
@pass_settings
def apply_cmd(settings: Settings, env_name: str | None, tenants: tuple[str, ...], queries_dir: Path | None,
              dashboards_dir: Path | None, prune: bool, prune_all: bool, sql_check: bool, yes: bool,
              as_json: bool) -> None:
    """Make Superset match the specs: create, update (and with --prune delete) exactly what plan shows.

    Every tenant's plan is checked before the first write (conflicts, a prune that empties a tenant,
    dataset SQL the database refuses): either all pass and apply writes, or nothing is written.
    Writes nothing when nothing changed. Re-running after an interruption finishes the job.
    """
    with Project.load(settings, env_name, tenants, queries_dir, dashboards_dir) as project:
        plans = project.plan(prune)
        for plan in plans:
            info(render_plan(plan))
        preflight.check(plans, prune_all=prune_all, sql=sql_check)
        pending = [plan for plan in plans if plan.pending]
        if pending and not yes:
            if not sys.stdin.isatty():
                raise UsageError("apply needs --yes when not run from a terminal")
            click.confirm("Apply these changes?", abort=True, err=True)
        summary = [{"tenant": plan.state.tenant.name, "applied": 0, "writes": 0} for plan in plans]
        for number, (plan, row) in enumerate(zip(plans, summary, strict=True)):
            if not plan.pending:
                continue
            start = time.monotonic()
            try:
                result = project.apply(plan, info)
            except PfillError as exc:
                exc.args = (f"{_written(summary[:number])}{exc}",)  # same error, with what came before it
                raise
            row.update(applied=len(result.done), writes=result.writes)
            info(f"applied {len(result.done)} change(s) to {plan.state.env.name}/{plan.state.tenant.name} with "
                 f"{result.writes} write request(s) in {time.monotonic() - start:.1f}s")
    if as_json:
        emit_json(summary)


def _written(earlier: list[dict]) -> str:
    """What earlier tenants of this apply already received, said before the error of a later one."""
    applied = [f"{row['tenant']} ({row['applied']} changes)" for row in earlier if row["applied"]]
    return f"applied to {', '.join(applied)}; then " if applied else ""


def _require_current_schemas(project: Project) -> None:
    """verify reads the tenants' engine databases: one whose schema is not at this pfill's head is refused
    (`pfill db upgrade`) before any chart is run, and never changed. A SQLite file that is not there has
    no schema to be behind: verify reports it as before, after what Superset says."""
    from pfill.database import open_database, sqlite_file  # SQLAlchemy, only in the commands that query
    from pfill.schema_version import require_current

    for url in dict.fromkeys(state.tenant.database_url for state in project.states):
        path = sqlite_file(url)
        if path is None or path.exists():
            require_current(open_database(url, must_exist=True))


@click.command("verify")
@target_options
@source_options
@json_option()
@pass_settings
def verify_cmd(settings: Settings, env_name: str | None, tenants: tuple[str, ...], queries_dir: Path | None,
               dashboards_dir: Path | None, as_json: bool) -> None:
    """Run every chart through Superset's chart-data API and compare its rows with the database.

    Also checks that every dashboard holds all its charts. Exit 1 on any mismatch or error.
    """
    with Project.load(settings, env_name, tenants, queries_dir, dashboards_dir) as project:
        _require_current_schemas(project)
        info(f"verifying {', '.join(f'{project.env.name}/{s.tenant.name}' for s in project.states)} "
             f"on {mask_url(project.env.superset_url)}")
        rows = [{"tenant": state.tenant.name, **asdict(check)} for state, check in project.verify()]
    if as_json:
        emit_json(rows)
    else:
        print_table(
            [(r["tenant"], r["kind"], r["name"], r["superset_rows"], r["direct_rows"], "ok" if r["ok"] else "FAIL",
              f"{r['ms']:.0f}", r["message"]) for r in rows],
            ("tenant", "kind", "name", "superset", "direct", "status", "ms", "message"),
        )
    failed = [r for r in rows if not r["ok"]]
    if failed:
        raise VerifyFailed(f"{len(failed)} of {len(rows)} checks failed")
    info(f"all {len(rows)} checks passed")


@click.command("export")
@click.option("--dashboard", "refs", multiple=True, required=True, metavar="SLUG|ID",
              help="Dashboard to export (repeat for more).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("exported"),
              show_default=True, help="Folder for dashboards/ and queries/.")
@click.option("--force", is_flag=True, help="Replace files already in --out (without it, export refuses).")
@env_option()
@json_option("Print the written files as JSON.")
@pass_settings
def export_cmd(settings: Settings, refs: tuple[str, ...], out: Path, force: bool, env_name: str | None,
               as_json: bool) -> None:
    """Write existing Superset dashboards, their charts and datasets as specs in this kit's format.

    The result validates with `pfill validate --dashboards OUT/dashboards --queries OUT/queries`.
    Files are written only inside OUT, and nothing is written if a file there would be replaced,
    unless --force.
    """
    env = settings.environment(env_name)
    exports = []
    with connect(env) as client:
        for ref in refs:
            exported = export_dashboard(client, ref)
            exports.append(exported)
            info(f"read {ref}: {len(exported.spec.charts)} charts, {len(exported.datasets)} datasets")
    written = write_exports(exports, out, force=force)
    if as_json:
        emit_json([str(p) for p in written])
    else:
        for path in written:
            click.echo(str(path))


COMMANDS = [validate_cmd, schema_cmd, plan_cmd, apply_cmd, verify_cmd, export_cmd]
