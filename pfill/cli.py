"""The `pfill` command line: one group, with subcommands contributed by each package.

A command's module is imported only when that command runs (or shows its own help), so
`pfill --version` and `pfill --help` load no engine, deploy or query code: the group lists commands
from the table below, whose summaries a test keeps equal to each command's own first sentence.
"""

from __future__ import annotations

import importlib
import os
import traceback

import click

from .errors import EXIT_ERROR, PfillError

# name -> ("module:attribute", summary: the first sentence of the command's own help)
COMMANDS: dict[str, tuple[str, str]] = {
    "superset": ("pfill.deploy.stack_cli:superset_group", "Run a local Superset 6.1 for the demo and for development."),
    "env": ("pfill.deploy.stack_cli:env_group", "Superset environments: the built-in `local` and those in pfill.yaml."),
    "db": ("pfill.engine.cli:db_group", "The engine database and its schema revision."),
    "demo-data": ("pfill.engine.cli:demo_data_command", "Replace a tenant's inputs with a demo lender's pipeline and "
                  "hedge book (deterministic for a seed and date)."),
    "run": ("pfill.engine.cli:run_command", "Run PowerFill for a tenant: the six steps, with progress per step."),
    "runs": ("pfill.engine.cli:runs_group", "Engine runs: list, show, cancel, reconcile, purge."),
    "serve": ("pfill.engine.service.cli:serve", "Serve the run API (submit, watch and cancel runs) under "
              "/api/powerfill, until stopped."),
    "worker": ("pfill.engine.service.cli:worker", "Execute queued runs for `pfill serve --executor celery` (a Celery "
               "worker on the broker)."),
    "service": ("pfill.engine.service.cli:service_group",
                "The run service in the background: up, down, status (as `pfill demo` runs it)."),
    "lint": ("pfill.queries.cli:lint", "Render every query for every dialect, parse it with sqlglot and check it."),
    "preview": ("pfill.queries.cli:preview", "Print a report query's SQL (pretty-printed), or run it with --execute."),
    "validate": ("pfill.deploy.cli:validate_cmd",
                 "Check the dashboard specs against their schema and the queries' declared columns."),
    "schema": ("pfill.deploy.cli:schema_cmd", "Print the JSON Schema of dashboard specs (for editor validation)."),
    "plan": ("pfill.deploy.cli:plan_cmd", "Show what apply would change in Superset, field by field."),
    "apply": ("pfill.deploy.cli:apply_cmd",
              "Make Superset match the specs: create, update (and with --prune delete) exactly what plan shows."),
    "verify": ("pfill.deploy.cli:verify_cmd",
               "Run every chart through Superset's chart-data API and compare its rows with the database."),
    "export": ("pfill.deploy.cli:export_cmd",
               "Write existing Superset dashboards, their charts and datasets as specs in this kit's format."),
    "demo": ("pfill.demo:demo_cmd",
             "Local Superset + demo data + an engine run + the eight dashboards, applied and verified."),
}


def load_command(name: str) -> click.Command:
    module, attribute = COMMANDS[name][0].split(":")
    return getattr(importlib.import_module(module), attribute)


class UsageError(click.UsageError):
    """A usage error said the kit's way: one `error:` line and a `hint:` naming the help to read
    (instead of click's usage block), still exit code 2."""

    def show(self, file: object = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)
        where = self.ctx.command_path if self.ctx else "pfill"
        click.echo(f"hint: see `{where} --help`", err=True)


def _one_line(exc: click.UsageError, ctx: click.Context) -> UsageError:
    if exc.ctx is None and ctx.invoked_subcommand:  # raised while parsing the subcommand's own options
        sub = ctx.command.get_command(ctx, ctx.invoked_subcommand)  # type: ignore[attr-defined]
        return UsageError(exc.format_message(), click.Context(sub, info_name=ctx.invoked_subcommand, parent=ctx))
    return UsageError(exc.format_message(), exc.ctx or ctx)


# The root's own options, also accepted after the subcommand (`pfill run --db URL`); True: takes a value.
ROOT_OPTIONS = {"--home": True, "--db": True, "--config": True, "--debug": False}


def _option_names(command: click.Command) -> set[str]:
    """Every option name a command (and, for a group, any command under it) defines."""
    names = {name for param in command.params for name in getattr(param, "opts", [])}
    for sub in getattr(command, "commands", {}).values():
        names |= _option_names(sub)
    return names


class PfillGroup(click.Group):
    """Loads commands on first use; takes the root's options before or after the subcommand; turns
    expected errors into one clear line and an exit code (--debug shows tracebacks)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._hoist(ctx, args))

    def _hoist(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Move root options found after the subcommand to the front, unless that command has its own."""
        index = 0
        while index < len(args) and args[index].startswith("-"):  # the root's own options come first
            name = args[index].split("=", 1)[0]
            index += 2 if ROOT_OPTIONS.get(name) and "=" not in args[index] else 1
        if index >= len(args) or args[index] not in COMMANDS:
            return args
        own = _option_names(self.get_command(ctx, args[index]) or click.Command(args[index]))
        front, rest, position = args[:index], [args[index]], index + 1
        while position < len(args):
            token = args[position]
            name = token.split("=", 1)[0]
            if token == "--":
                rest += args[position:]
                break
            if name in ROOT_OPTIONS and name not in own:
                takes = ROOT_OPTIONS[name] and "=" not in token
                front += args[position:position + (2 if takes else 1)]
                position += 2 if takes else 1
                continue
            rest.append(token)
            position += 1
        return front + rest

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(load_command(cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the summaries, without importing any command."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [
            (name, self.commands[name].get_short_help_str(limit) if name in self.commands
             else click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit))
            for name in names
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: object) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)  # type: ignore[arg-type]
        except UsageError:
            raise
        except click.UsageError as exc:  # the root's own options
            raise _one_line(exc, exc.ctx or click.Context(self, info_name=info_name)) from None

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except UsageError:
            raise
        except click.UsageError as exc:  # a subcommand's options or arguments, or an unknown command
            raise _one_line(exc, ctx) from None
        except PfillError as exc:
            from .secrets import mask_text

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
            from .secrets import mask_text

            message = mask_text(f"{type(exc).__name__}: {exc}")
            click.echo(f"error: unexpected {message} (run with --debug for the traceback)", err=True)
            ctx.exit(EXIT_ERROR)


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool((root.params or {}).get("debug")) or os.environ.get("PFILL_DEBUG") == "1"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from . import __version__

        click.echo(f"pfill, version {__version__}")
        ctx.exit()


@click.group(cls=PfillGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
@click.option("--home", type=click.Path(file_okay=False), help="Local state folder [env PFILL_HOME; ./.pfill].")
@click.option("--db", "db", metavar="URL", help="Engine database URL [env PFILL_DB_URL; SQLite in home].")
@click.option("--config", type=click.Path(dir_okay=False), help="Environments file [env PFILL_CONFIG; ./pfill.yaml].")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, home: str | None, db: str | None, config: str | None, debug: bool) -> None:
    """pfill-kit: PowerFill reports as Superset dashboards kept in git, and the engine behind them.

    Exit codes: 0 ok, 1 error, 2 usage (or changes pending for `plan`), 3 conflict.
    """
    from .config import Settings

    ctx.obj = Settings.resolve(home=home, db=db, config=config)


def main() -> None:
    cli(prog_name="pfill")
