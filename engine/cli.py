"""`pfill db init|upgrade|current`, `pfill demo-data`, `pfill run` and
`pfill runs list|show|latest|cancel|reconcile|purge`.

Each command is option plumbing over the engine's API: db.open_engine / create_schema / upgrade_schema /
schema_state / upgrade_sql, demo_data.generate / replace_tenant_inputs, pipeline.execute_run and runs.*.
Only `pfill db init` and `pfill db upgrade` change the schema; every other command needs it at head and
says which of the two to run when it is not (reads never write). `runs show` and `runs cancel` see only
the tenant's runs (--tenant, else the settings' tenant): another tenant's run is "no run X for tenant T"."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import sys
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import click
import sqlalchemy as sa

from pfill.config import Settings
from pfill.database import open_database
from pfill.errors import UsageError
from pfill.options import json_option, pass_settings, tenant_option
from pfill.output import emit_json, info, print_table, step
from pfill.urls import check_url

from . import db, demo_data, runs
from .market import check_business_date
from .pipeline import RunOptions, execute_run
from .solver import DEFAULT_STRATEGY, STRATEGIES


def _engine(settings: Settings) -> sa.Engine:
    """The engine database of these settings with its schema at head, else a one-line error naming
    `pfill db init` or `pfill db upgrade`; nothing is created or changed."""
    return db.open_engine(settings.db_url, create=False)


def _as_of(value: datetime | None) -> date | None:
    return value.date() if value else None


def _check_as_of(_ctx: click.Context, param: click.Parameter, value: datetime | None) -> datetime | None:
    if value is not None:
        check_business_date(value.date(), "--as-of")
    return value


_AS_OF = click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), callback=_check_as_of,
                      help="Business date, 2000-01-01 to a year from today [today].")
MAX_LOANS = 1_000_000
MAX_TRADES = 20_000


@click.group("db")
def db_group() -> None:
    """The engine database and its schema revision."""


def _report(changes: list[str], state: db.SchemaState) -> None:
    for change in changes:
        info(change)
    info(state.describe() if changes else f"{state.describe()}: already up to date")


@db_group.command("init")
@pass_settings
def db_init(settings: Settings) -> None:
    """Create the engine schema at head, or bring an existing one there (idempotent; drops nothing)."""
    engine = open_database(settings.db_url)
    changes = db.create_schema(engine)
    _report(changes, db.schema_state(engine))


@db_group.command("upgrade")
@click.option("--sql", "as_sql", is_flag=True,
              help="Print the SQL instead of running it (no connection), for a DBA to review.")
@click.option("--dialect", type=click.Choice(db.DIALECTS),
              help="With --sql: render for this database [the dialect of --db / PFILL_DB_URL].")
@click.option("--from", "start", metavar="REVISION",
              help="With --sql: the revision the database is at (`pfill db current`) [an empty database].")
@pass_settings
def db_upgrade(settings: Settings, as_sql: bool, dialect: str | None, start: str | None) -> None:
    """Upgrade the engine schema to this pfill's head revision (a schema from before versioning is
    recognised, completed and stamped first)."""
    if not as_sql:
        if dialect or start:
            raise UsageError("--dialect and --from go with --sql", hint="see `pfill db upgrade --help`")
        engine = open_database(settings.db_url, must_exist=True)
        changes = db.upgrade_schema(engine)
        _report(changes, db.schema_state(engine))
        return
    url = None if dialect else settings.db_url
    if url is not None:
        check_url(url, "--db")
    known = [r for r, _ in db.revisions()]
    if start is not None and start not in known:
        raise UsageError(f"--from {start}: not a revision of this pfill ({', '.join(known)})",
                         hint="give the revision `pfill db current` shows, or leave --from out for an empty database")
    sql = db.upgrade_sql(url=url, dialect=dialect, start=start)
    click.echo(sql if sql.strip() else f"-- nothing to apply: {start} is the head revision")


@db_group.command("current")
@json_option()
@pass_settings
def db_current(settings: Settings, as_json: bool) -> None:
    """The database's schema revision, this pfill's head, and what `pfill db upgrade` would apply."""
    state = db.schema_state(open_database(settings.db_url, must_exist=True))
    if as_json:
        emit_json(state.as_dict())
        return
    print_table([(state.current or "-", state.head, state.status, " ".join(state.pending) or "-")],
                ["revision", "head", "status", "pending"])
    info(state.describe())


@click.command("demo-data")
@click.option("--loans", type=click.IntRange(1, MAX_LOANS), default=demo_data.DEFAULT_LOANS, show_default=True)
@click.option("--trades", type=click.IntRange(1, MAX_TRADES), default=demo_data.DEFAULT_TRADES, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=demo_data.DEFAULT_SEED, show_default=True)
@tenant_option()
@_AS_OF
@json_option(help="Print the row counts as JSON.")
@pass_settings
def demo_data_command(settings: Settings, loans: int, trades: int, seed: int, tenant: str | None,
                      as_of: datetime | None, as_json: bool) -> None:
    """Replace a tenant's inputs with a demo lender's pipeline and hedge book (deterministic for a seed and date)."""
    tenant = tenant or settings.tenant
    engine = _engine(settings)
    with step(f"generating {loans} loans and {trades} trades for tenant {tenant} (seed {seed})"):
        data = demo_data.generate(loans, trades, seed, _as_of(as_of))
        counts = demo_data.replace_tenant_inputs(engine, tenant, data)
    if as_json:
        emit_json(counts)
    else:
        print_table(sorted(counts.items()), ["table", "rows"])


@click.command("run")
@tenant_option()
@click.option("--scoring", type=click.Choice(["price", "price_carry"]), default="price", show_default=True,
              help="Rank placements by price + pay-up, or also by carry to settlement.")
@click.option("--strategy", type=click.Choice(sorted(STRATEGIES)), default=DEFAULT_STRATEGY, show_default=True,
              help="optimal: HiGHS LP + rounding + repair, with a proven bound; greedy: the staged greedy.")
@click.option("--keep", type=click.IntRange(1),
              help="Runs per tenant whose report rows retention keeps (older runs keep their history and log) "
                   "[env PFILL_KEEP_RUNS; 10].")
@_AS_OF
@json_option(help="Print the finished run as JSON.")
@pass_settings
def run_command(settings: Settings, tenant: str | None, scoring: str, strategy: str, keep: int | None,
                as_of: datetime | None, as_json: bool) -> None:
    """Run PowerFill for a tenant: the six steps, with progress per step.

    Exit code 3 when the tenant already has an active run (BR-8).
    """
    keep = keep or runs.default_keep_runs()
    engine = _engine(settings)
    options = RunOptions(tenant=tenant or settings.tenant, scoring=scoring, strategy=strategy, keep_runs=keep,
                         as_of=_as_of(as_of))
    with _stdout_to_stderr() if as_json else contextlib.nullcontext():
        result = execute_run(engine, options, progress=info)
    if as_json:
        emit_json(runs.run_document(result))
    else:
        info(f"run {result['run_id']} Complete in {result['duration_seconds']:.2f}s: "
             f"{result['allocated_loan_count']} loans allocated, {result['cash_loan_count']} to cash, "
             f"{result['kickout_count']} kicked out; {result['trades_filled_in_tolerance']}/"
             f"{result['trade_count']} trades within tolerance")
        if result.get("gap_pct") is not None:
            info(f"{result['strategy']}: objective {result['objective_value']:,.2f}, LP bound "
                 f"{result['lp_bound']:,.2f}, gap {result['gap_pct']:.4f}% (solver {result['solver_seconds']:.2f}s)")


def _flush_c_stdio() -> None:
    """Flush the C library's stdio buffers (a native library's printf), so nothing buffered before a
    switch of file descriptor 1 comes out after it."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """While the run works, everything written to stdout goes to stderr: Python's prints and, at the
    file-descriptor level, native libraries' output (a solver's banner). `--json` keeps stdout for the
    one JSON document."""
    sys.stdout.flush()
    _flush_c_stdio()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1: nothing native can write there either
        saved = None
    try:
        if saved is not None:
            os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _flush_c_stdio()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


@click.group("runs")
def runs_group() -> None:
    """Engine runs: list, show, cancel, reconcile, purge."""


@runs_group.command("list")
@tenant_option()
@click.option("--all-tenants", is_flag=True, help="Every tenant's runs.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@json_option()
@pass_settings
def runs_list(settings: Settings, tenant: str | None, all_tenants: bool, limit: int, as_json: bool) -> None:
    """Runs, newest first, with their summary counters."""
    engine = _engine(settings)
    rows = runs.list_runs(engine, None if all_tenants else (tenant or settings.tenant), limit)
    if as_json:
        emit_json([runs.run_document(r) for r in rows])
        return
    print_table([(r["run_id"], r["tenant_id"], r["status"], r["created_at"].isoformat(sep=" ", timespec="seconds"),
                  None if r["duration_seconds"] is None else f"{r['duration_seconds']:.2f}",
                  r["allocated_loan_count"], r["kickout_count"], r["failure_step"]) for r in rows],
                ["run_id", "tenant", "status", "created_at", "seconds", "allocated", "kickouts", "failed_step"])


@runs_group.command("show")
@click.argument("run_id")
@tenant_option()
@json_option()
@pass_settings
def runs_show(settings: Settings, run_id: str, tenant: str | None, as_json: bool) -> None:
    """One run of the tenant (RUN_ID, or `latest` for the tenant's newest run)."""
    engine = _engine(settings)
    tenant = tenant or settings.tenant
    if run_id == "latest":
        found = runs.latest_run(engine, tenant)
        if found is None:
            raise runs.RunNotFound(f"tenant {tenant} has no runs yet")
    else:
        found = _tenant_run(engine, run_id, tenant)
    public = runs.run_document(found)
    if as_json:
        emit_json(public)
        return
    for key, value in public.items():
        click.echo(f"{key:<28} {json.dumps(value, default=str) if isinstance(value, dict) else value}")


@runs_group.command("latest")
@tenant_option()
@json_option()
@click.pass_context
def runs_latest(ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """The tenant's newest run (the same as `pfill runs show latest`)."""
    ctx.invoke(runs_show, run_id="latest", tenant=tenant, as_json=as_json)


@runs_group.command("cancel")
@click.argument("run_id")
@tenant_option()
@pass_settings
def runs_cancel(settings: Settings, run_id: str, tenant: str | None) -> None:
    """Ask an active run of the tenant to stop; it ends Cancelled at its next step boundary (or sooner)."""
    engine = _engine(settings)
    _tenant_run(engine, run_id, tenant or settings.tenant)
    run = runs.request_cancel(engine, run_id)
    info(f"cancel requested for run {run_id} (now {run['status']})")


def _tenant_run(engine: sa.Engine, run_id: str, tenant: str) -> dict[str, Any]:
    """The run when it belongs to the tenant; else RunNotFound, the same whether the run does not exist
    or is another tenant's (a tenant learns nothing of another's runs)."""
    try:
        run = runs.get_run(engine, run_id)
    except runs.RunNotFound:
        run = None
    if run is None or run["tenant_id"] != tenant:
        raise runs.RunNotFound(f"no run {run_id} for tenant {tenant}",
                               hint="`pfill runs list --tenant T` shows a tenant's runs")
    return run


@runs_group.command("reconcile")
@tenant_option()
@click.option("--all-tenants", is_flag=True)
@pass_settings
def runs_reconcile(settings: Settings, tenant: str | None, all_tenants: bool) -> None:
    """Mark active runs whose process died as Failed (a live run is never touched)."""
    engine = _engine(settings)
    if all_tenants and tenant:
        raise UsageError("give --tenant or --all-tenants, not both")
    done = runs.reconcile(engine, None if all_tenants else (tenant or settings.tenant))
    info(f"reconciled {len(done)} run(s) to Failed" + (f": {', '.join(done)}" if done else ""))


@runs_group.command("purge")
@click.option("--keep", type=click.IntRange(1), required=True,
              help="Terminal runs to keep per tenant (the newest Complete run is always kept).")
@tenant_option()
@click.option("--all-tenants", is_flag=True, help="Every tenant's runs (--keep per tenant).")
@json_option(help="Print the purged runs as JSON.")
@pass_settings
def runs_purge(settings: Settings, keep: int, tenant: str | None, all_tenants: bool, as_json: bool) -> None:
    """Delete old terminal runs entirely (history, output, synthetic and log rows), keeping the newest N."""
    if all_tenants and tenant:
        raise UsageError("give --tenant or --all-tenants, not both")
    engine = _engine(settings)
    which = None if all_tenants else (tenant or settings.tenant)
    purged = runs.purge_runs(engine, which, keep)
    if as_json:
        emit_json({"tenant": which, "keep": keep, "purged": len(purged), "run_ids": purged})
        return
    where = "every tenant" if which is None else f"tenant {which}"
    info(f"purged {len(purged)} run(s) of {where}, keeping the newest {keep} per tenant")


COMMANDS = [db_group, demo_data_command, run_command, runs_group]
