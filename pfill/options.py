"""Options and plumbing that several commands share, each defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from .config import Settings

F = TypeVar("F", bound=Callable[..., object])

# Every command receives the resolved Settings that the root group put in ctx.obj.
pass_settings = click.make_pass_decorator(Settings)


def json_option(help: str = "Print JSON.") -> Callable[[F], F]:
    """`--json`: machine-readable output on stdout (progress stays on stderr)."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def tenant_option(help: str = "Tenant [env PFILL_TENANT; demo].") -> Callable[[F], F]:
    return click.option("--tenant", help=help)


def env_option(help: str = "Environment [env PFILL_ENV; local].") -> Callable[[F], F]:
    return click.option("--env", "env_name", help=help)
