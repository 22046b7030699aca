"""Options and plumbing that several commands share, each defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from .config import Settings
from .errors import UsageError
from .tenants import check_tenant

F = TypeVar("F", bound=Callable[..., object])

# Every command receives the resolved Settings that the root group put in ctx.obj.
pass_settings = click.make_pass_decorator(Settings)


def json_option(help: str = "Print JSON.") -> Callable[[F], F]:
    """`--json`: machine-readable output on stdout (progress stays on stderr)."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def _tenant(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--tenant checked against the one tenant grammar; given but empty is an error, not the default."""
    return None if value is None else check_tenant(value, f"--{param.name}", UsageError)


def tenant_option(help: str = "Tenant [env PFILL_TENANT; demo].") -> Callable[[F], F]:
    return click.option("--tenant", help=help, callback=_tenant)


def env_option(help: str = "Environment [env PFILL_ENV; local].") -> Callable[[F], F]:
    return click.option("--env", "env_name", help=help)
