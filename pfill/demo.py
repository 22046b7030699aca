"""`pfill demo`: from nothing to eight populated dashboards on a local Superset, each stage shown.

A second run reuses what is there (the installed Superset, the demo data, the last Complete run)
and only re-checks the dashboards, so it is quick."""

from __future__ import annotations

import time

import click
import sqlalchemy as sa

from pfill.config import LOCAL_ENV, Settings
from pfill.errors import PfillError
from pfill.output import info

STAGES = 6


def _stage(number: int, text: str) -> float:
    info(f"[{number}/{STAGES}] {text}")
    return time.monotonic()


def _has_rows(settings: Settings, sql: str) -> bool:
    engine = sa.create_engine(settings.db_url)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(sql), {"tenant": settings.tenant}).scalar())
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()


@click.command("demo")
@click.option("--fresh", is_flag=True, help="Regenerate the demo data and run the engine again.")
@click.option("--port", type=int, help="Port for the local Superset [last used; 8088].")
@click.pass_context
def demo_cmd(ctx: click.Context, fresh: bool, port: int | None) -> None:
    """Local Superset + demo data + an engine run + the eight dashboards, applied and verified.

    Uses the embedded SQLite database unless --db / PFILL_DB_URL names another (e.g. PostgreSQL).
    Prints the URL, user and password at the end. Stop the server with `pfill superset down`.
    """
    from pfill.deploy.apply import apply_plan
    from pfill.deploy.cli import connect, desired_states
    from pfill.deploy.live import read_live
    from pfill.deploy.local_superset import LocalSuperset
    from pfill.deploy.plan import make_plan
    from pfill.deploy.verify import verify
    from pfill.engine.cli import db_init, demo_data_command, run_command

    settings: Settings = ctx.obj
    start = time.monotonic()
    _stage(1, "local Superset")
    stack = LocalSuperset(settings.home, port=port)
    new_password = stack.up(lambda line: info(f"      {line}"), timeout=240)

    _stage(2, "engine schema")
    ctx.invoke(db_init)
    if fresh or not _has_rows(settings, "SELECT COUNT(*) FROM loan WHERE tenant_id = :tenant"):
        _stage(3, f"demo data for tenant {settings.tenant}")
        ctx.invoke(demo_data_command, loans=2000, trades=40, seed=42, tenant=None, as_of=None, as_json=False)
    else:
        _stage(3, f"demo data for tenant {settings.tenant}: present, reused (--fresh to regenerate)")
    latest = "SELECT COUNT(*) FROM pfill_run_history WHERE tenant_id = :tenant AND status = 'Complete'"
    if fresh or not _has_rows(settings, latest):
        # two runs, so the hub has a history: the staged greedy as a baseline, then the optimiser
        for strategy in ("greedy", "optimal"):
            _stage(4, f"engine run ({strategy})")
            ctx.invoke(run_command, tenant=None, scoring="price", strategy=strategy, keep=None, as_of=None,
                       as_json=False)
    else:
        _stage(4, "engine run: a Complete run exists, reused (--fresh to run again)")

    _stage(5, "dashboards: plan and apply")
    env, states = desired_states(settings, LOCAL_ENV, (), None, None)
    with connect(env) as client:
        for state in states:
            plan = make_plan(state, read_live(client, state))
            result = apply_plan(client, plan, lambda _line: None)
            info(f"      {len(result.done)} change(s) applied, {len(state.objects) - len(result.done)} unchanged")
        _stage(6, "verify: every chart against the database")
        failed = []
        for state in states:
            checks = verify(client, state, read_live(client, state).ids, lambda _line: None)
            failed += [c for c in checks if not c.ok]
            info(f"      {sum(c.ok for c in checks)}/{len(checks)} checks passed")
    if failed:
        details = "; ".join(f"{c.kind} {c.name}: {c.message}" for c in failed[:5])
        raise PfillError(f"{len(failed)} verify check(s) failed: {details}")

    hub = f"{stack.url}/superset/dashboard/pfill-{settings.tenant}-hub/"
    info(f"\nDashboards ready in {time.monotonic() - start:.0f}s: {hub}")
    # the local demo's own admin, generated for this machine: the one place its password is shown
    info(f"  user: admin   password: {new_password or stack.admin_password()}   (file: {stack.password_file})")
    info("  stop the server with `pfill superset down` (or `make demo-down`)")
