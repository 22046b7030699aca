"""The `pfill` command line: one group, with subcommands contributed by each package."""

from __future__ import annotations

import os
import traceback

import click

from . import __version__
from .config import Settings
from .errors import EXIT_ERROR, PfillError
from .secrets import mask_text


class PfillGroup(click.Group):
    """Turns expected errors into one clear line and an exit code; --debug shows tracebacks."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except PfillError as exc:
            click.echo(f"error: {mask_text(str(exc))}", err=True)
            if exc.hint:
                click.echo(f"hint: {mask_text(exc.hint)}", err=True)
            if _debug(ctx):
                traceback.print_exc()
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if _debug(ctx):
                raise
            message = mask_text(f"{type(exc).__name__}: {exc}")
            click.echo(f"error: unexpected {message} (run with --debug for the traceback)", err=True)
            ctx.exit(EXIT_ERROR)


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool((root.params or {}).get("debug")) or os.environ.get("PFILL_DEBUG") == "1"



@click.group(cls=PfillGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pfill")
@click.option("--home", type=click.Path(file_okay=False), help="Local state folder [env PFILL_HOME; ./.pfill].")
@click.option("--db", "db", metavar="URL", help="Engine database URL [env PFILL_DB_URL; SQLite in home].")
@click.option("--config", type=click.Path(dir_okay=False), help="Environments file [env PFILL_CONFIG; ./pfill.yaml].")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, home: str | None, db: str | None, config: str | None, debug: bool) -> None:
    """pfill-kit: PowerFill reports as Superset dashboards kept in git, and the engine behind them.

    Exit codes: 0 ok, 1 error, 2 usage (or changes pending for `plan`), 3 conflict.
    """
    ctx.obj = Settings.resolve(home=home, db=db, config=config)


def _register() -> None:
    from .demo import demo_cmd
    from .deploy.cli import COMMANDS as deploy_commands
    from .deploy.stack_cli import COMMANDS as stack_commands
    from .engine.cli import COMMANDS as engine_commands
    from .queries.cli import COMMANDS as query_commands

    for command in [*stack_commands, *engine_commands, *query_commands, *deploy_commands, demo_cmd]:
        cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="pfill")
