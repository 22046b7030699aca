"""`pfill superset ...` (the local stack) and `pfill env ...` (configured Superset environments)."""

from __future__ import annotations

import dataclasses
import subprocess
import time

import click

from pfill.config import Settings
from pfill.options import env_option, json_option, pass_settings
from pfill.output import emit_json, info, print_table
from pfill.secrets import mask_url

from .local_superset import LocalSuperset
from .project import connect


def _stack(settings: Settings, port: int | None = None) -> LocalSuperset:
    return LocalSuperset(settings.home, port=port)


@click.group("superset")
def superset_group() -> None:
    """Run a local Superset 6.1 for the demo and for development."""


@superset_group.command("up")
@click.option("--port", type=int, help="Port on 127.0.0.1 [env PFILL_SUPERSET_PORT; last used; 8088].")
@click.option("--timeout", type=float, default=180.0, show_default=True, help="Seconds to wait for /health.")
@pass_settings
def superset_up(settings: Settings, port: int | None, timeout: float) -> None:
    """Install (first time), configure, initialise and start the local Superset.

    Superset goes into its own virtual environment under PFILL_HOME from the pinned constraints
    shipped with pfill-kit. Running `up` again while it runs starts nothing new.
    """
    stack = _stack(settings, port)
    start = time.monotonic()
    new_password = stack.up(info, timeout=timeout)
    info(f"Superset {stack.status().version} is up at {stack.url} ({time.monotonic() - start:.0f}s)")
    info(f"user: admin   password file: {stack.password_file}")
    if new_password:
        info(f"generated admin password (shown once; kept 0600 in the file above): {new_password}")


@superset_group.command("down")
@pass_settings
def superset_down(settings: Settings) -> None:
    """Stop the local Superset started by `up` (its own process group only)."""
    stack = _stack(settings)
    pid = stack.pid()
    if stack.stop():
        info(f"stopped Superset (pid {pid})")
    else:
        info("Superset is not running")


@superset_group.command("status")
@json_option()
@pass_settings
def superset_status(settings: Settings, as_json: bool) -> None:
    """Show url, pid, version and health of the local Superset. Exit 1 when it is not running."""
    status = _stack(settings).status()
    if as_json:
        emit_json(dataclasses.asdict(status))
    else:
        state = "running" if status.running else "stopped"
        if status.running and not status.healthy:
            state = "running, not answering /health"
        print_table(
            [
                ("state", state), ("url", status.url), ("pid", status.pid or "-"),
                ("version", status.version), ("installed", "yes" if status.installed else "no"),
                ("home", status.home), ("venv", status.venv),
            ],
            ("field", "value"),
        )
    if not status.running:
        raise SystemExit(1)


@superset_group.command("logs")
@click.option("-n", "--lines", type=click.IntRange(1), default=50, show_default=True, help="How many lines to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C to stop).")
@pass_settings
def superset_logs(settings: Settings, lines: int, follow: bool) -> None:
    """Show the local Superset's server log."""
    log = _stack(settings).log_file
    if not log.exists():
        info(f"no log yet at {log}")
        return
    if follow:
        subprocess.call(["tail", "-n", str(lines), "-F", str(log)])
    else:
        click.echo("\n".join(log.read_text(errors="replace").splitlines()[-lines:]))


@click.group("env")
def env_group() -> None:
    """Superset environments: the built-in `local` and those in pfill.yaml."""


@env_group.command("list")
@json_option()
@pass_settings
def env_list(settings: Settings, as_json: bool) -> None:
    """List environments with their Superset URL and tenants (passwords masked)."""
    rows = []
    for env in settings.environments().values():
        for tenant in env.tenants.values() or [None]:
            url = dialect = "-"
            if tenant is not None:
                try:
                    url, dialect = mask_url(tenant.database_url), tenant.dialect
                except Exception as exc:  # an unset variable: show why instead of failing the list
                    url = f"({exc})"
            rows.append(
                {
                    "environment": env.name,
                    "superset": mask_url(env.superset_url),
                    "user": env.username,
                    "tenant": tenant.name if tenant else "-",
                    "dialect": dialect,
                    "database": url,
                }
            )
    if as_json:
        emit_json(rows)
    else:
        print_table([list(r.values()) for r in rows], list(rows[0].keys()) if rows else [])


@env_group.command("check")
@env_option("Environment name [env PFILL_ENV; local].")
@json_option()
@pass_settings
def env_check(settings: Settings, env_name: str | None, as_json: bool) -> None:
    """Log into the environment's Superset and count the databases it shows. Exit 1 if login fails."""
    env = settings.environment(env_name)
    with connect(env) as client:
        databases = sum(1 for _ in client.iter_list("database"))
    result = {"environment": env.name, "superset": mask_url(env.superset_url), "user": env.username,
              "login": "ok", "databases": databases}
    if as_json:
        emit_json(result)
    else:
        info(f"logged into {mask_url(env.superset_url)} as {env.username!r}; {databases} database(s) visible")


COMMANDS = [superset_group, env_group]
