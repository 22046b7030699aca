"""`pfill demo`: from nothing to eight populated dashboards on a local Superset and the run service
beside them, each stage shown.

A second run reuses what is there (the installed Superset, the demo data, the last Complete run)
and only re-checks the dashboards, so it is quick."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

import click
import sqlalchemy as sa

from pfill.config import LOCAL_ENV, Settings
from pfill.errors import PfillError
from pfill.output import info, step

if TYPE_CHECKING:
    from pfill.deploy.local_superset import LocalSuperset

STAGES = 7
DEMO_LOANS, DEMO_TRADES, DEMO_SEED = 2000, 40, 42
SECOND_TENANT = "acme"  # a second tenant, so that each viewer seeing only their own is there to see


def _stage(number: int, text: str) -> float:
    info(f"[{number}/{STAGES}] {text}")
    return time.monotonic()


def _has_rows(engine: sa.Engine, sql: str, tenant: str) -> bool:
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(sql), {"tenant": tenant}).scalar())
    except sa.exc.DBAPIError:
        return False


@click.command("demo")
@click.option("--fresh", is_flag=True, help="Regenerate the demo data and run the engine again.")
@click.option("--port", type=int, help="Port for the local Superset [last used; 8088].")
@click.option("--service-port", type=click.IntRange(1, 65535), default=8089, show_default=True,
              help="Port for the run service.")
@click.pass_context
def demo_cmd(ctx: click.Context, fresh: bool, port: int | None, service_port: int) -> None:
    """Local Superset + demo data + an engine run + the eight dashboards, applied and verified.

    Uses the embedded SQLite database unless --db / PFILL_DB_URL names another (e.g. PostgreSQL).
    Also starts the run service (`pfill serve`) on the same database. Prints the URLs, users and
    passwords, and where the service's token is, at the end. Stop both with `make demo-down`.
    """
    from pfill.deploy.access import ensure_viewer, role_name
    from pfill.deploy.local_superset import LocalSuperset
    from pfill.deploy.project import Project
    from pfill.engine.db import open_engine
    from pfill.engine.service.cli import start_background
    from pfill.engine.service.tokens import load_tokens

    settings: Settings = ctx.obj
    tenants = [settings.tenant, SECOND_TENANT if settings.tenant != SECOND_TENANT else "demo"]
    start = time.monotonic()
    _stage(1, "local Superset")
    stack = LocalSuperset(settings.home, port=port)
    new_password = stack.up(lambda line: info(f"      {line}"), timeout=240)

    _stage(2, "engine schema")
    engine = open_engine(settings.db_url)
    for number, tenant in enumerate(tenants):
        _demo_tenant(engine, tenant, DEMO_SEED + number, fresh)
    # the built-in environment deploys both (and `pfill apply --prune` keeps the second one's role)
    settings.local_tenants_file.write_text("\n".join(tenants[1:]) + "\n")
    settings = Settings.resolve(home=settings.home, db=settings.db_url, config=settings.config_path)

    _stage(5, f"dashboards for {' and '.join(tenants)}: plan and apply, one viewer each")
    viewers = {}
    with Project.load(settings, LOCAL_ENV) as project:
        for plan in project.plan():
            result = project.apply(plan)
            info(f"      {plan.state.tenant.name}: {len(result.done)} change(s) applied")
        for tenant in tenants:
            viewers[tenant] = _viewer_password(stack, tenant)
            ensure_viewer(project.client, f"viewer-{tenant}", role_name(LOCAL_ENV, tenant), viewers[tenant])
        _stage(6, "verify: every chart against the database")
        checks = project.verify()
    for state in project.states:
        mine = [check for s, check in checks if s is state]
        info(f"      {state.tenant.name}: {sum(c.ok for c in mine)}/{len(mine)} checks passed")
    failed = [check for _, check in checks if not check.ok]
    if failed:
        details = "; ".join(f"{c.kind} {c.name}: {c.message}" for c in failed[:5])
        raise PfillError(f"{len(failed)} verify check(s) failed: {details}")

    _stage(7, "run service")
    service = start_background(settings, service_port)
    token_files = {path.name.removeprefix("token-"): path for path in load_tokens(settings).files}

    tenant = tenants[0]
    hub = f"{stack.url}/superset/dashboard/pfill-{tenant}-hub/"
    info(f"\nDashboards ready in {time.monotonic() - start:.0f}s: {hub}")
    # the local demo's own admin, generated for this machine: the one place its password is shown
    info(f"  user: admin   password: {new_password or stack.admin_password()}   (file: {stack.password_file})")
    for name, password in viewers.items():
        info(f"  user: viewer-{name}   password: {password}   (sees only tenant {name}'s dashboards)")
    info(f"\nRun service: {service['url']} (OpenAPI docs: {service['url'].removesuffix('/api/powerfill')}/docs)")
    for name, path in token_files.items():
        info(f"  token of tenant {name}: in {path}")
    info(f"  try: curl -X POST -H \"Authorization: Bearer $(cat {token_files[tenant]})\" {service['url']}/run")
    info("  stop both with `make demo-down` (`pfill service down` and `pfill superset down`)")


def _demo_tenant(engine: sa.Engine, tenant: str, seed: int, fresh: bool) -> None:
    """Demo inputs and two runs for a tenant, unless there already are (then reused)."""
    from pfill.engine import demo_data
    from pfill.engine.pipeline import RunOptions, execute_run

    if fresh or not _has_rows(engine, "SELECT COUNT(*) FROM loan WHERE tenant_id = :tenant", tenant):
        _stage(3, f"demo data for tenant {tenant}")
        with step(f"generating {DEMO_LOANS} loans and {DEMO_TRADES} trades (seed {seed})"):
            demo_data.replace_tenant_inputs(engine, tenant, demo_data.generate(DEMO_LOANS, DEMO_TRADES, seed))
    else:
        _stage(3, f"demo data for tenant {tenant}: present, reused (--fresh to regenerate)")
    latest = "SELECT COUNT(*) FROM pfill_run_history WHERE tenant_id = :tenant AND status = 'Complete'"
    if fresh or not _has_rows(engine, latest, tenant):
        # two runs, so the hub has a history: the staged greedy as a baseline, then the optimiser
        for strategy in ("greedy", "optimal"):
            _stage(4, f"engine run for {tenant} ({strategy})")
            run = execute_run(engine, RunOptions(tenant=tenant, strategy=strategy), progress=info)
            info(f"      run {run['run_id']} Complete: {run['allocated_loan_count']} loans allocated, "
                 f"{run['cash_loan_count']} to cash, {run['kickout_count']} kicked out")
    else:
        _stage(4, f"engine run for {tenant}: a Complete run exists, reused (--fresh to run again)")


def _viewer_password(stack: LocalSuperset, tenant: str) -> str:
    """Generated once per viewer, kept 0600 beside the admin's."""
    from pfill.secrets import write_private

    path = stack.root / f"viewer-{tenant}_password"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(12))
    return path.read_text().strip()
