"""The command line itself: help everywhere, version, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from pfill import __version__
from pfill.cli import COMMANDS, cli, load_command


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            found += _all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", _all_commands(cli), ids=lambda p: " ".join(p) or "pfill")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    # a real description, not just the usage line
    assert len(result.output.strip().splitlines()) >= 4


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2


def test_bad_database_url_is_one_line_exit_1(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "--db", "mysql://x@y/z", "env", "list"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: unsupported database 'mysql'")
    assert "Traceback" not in result.output


def test_unknown_environment_names_the_known_ones(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "env", "check", "--env", "nope"])
    assert result.exit_code == 1
    assert "unknown environment 'nope'; known: local" in result.output


def test_local_environment_without_superset_gives_a_hint(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("PFILL_SUPERSET_PASSWORD", raising=False)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "env", "check"])
    assert result.exit_code == 1
    assert "no admin password yet" in result.output
    assert "pfill superset up" in result.output


def test_status_of_a_stack_that_never_ran_exits_1(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "superset", "status", "--json"])
    assert result.exit_code == 1
    assert '"running": false' in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_lazy_summary_is_the_commands_own_first_sentence(name: str) -> None:
    """`pfill --help` lists commands without importing them, from summaries that must not drift."""
    assert load_command(name).get_short_help_str(limit=1000) == COMMANDS[name][1]


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_version_and_help_import_no_command_module(args: list[str]) -> None:
    """Start-up stays cheap: the root's --version and --help load no engine, deploy or query code
    (and none of the heavy libraries those bring: SQLAlchemy, numpy, sqlglot, pydantic, requests)."""
    probe = (
        "import sys\n"
        "from pfill.cli import cli\n"
        f"try:\n    cli({args!r}, prog_name='pfill')\nexcept SystemExit:\n    pass\n"
        "heavy = ('pfill.engine', 'pfill.deploy', 'pfill.queries', 'pfill.dashboards', 'sqlalchemy', 'numpy',\n"
        "         'sqlglot', 'pydantic', 'requests', 'highspy', 'jinja2')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stderr.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(("args", "message", "help_of"), [
    (["no-such-command"], "No such command 'no-such-command'.", "pfill"),
    (["--bogus"], "No such option '--bogus'.", "pfill"),
    (["run", "--keep", "0"], "Invalid value for '--keep'", "pfill run"),
    (["plan", "--env"], "Option '--env' requires an argument.", "pfill plan"),
    (["runs", "show"], "Missing argument 'RUN_ID'.", "pfill runs show"),
])
def test_usage_errors_are_one_line_with_a_hint(args: list[str], message: str, help_of: str) -> None:
    """The kit's own shape for click's usage errors too: `error:` and `hint:`, exit 2, no usage block."""
    result = CliRunner().invoke(cli, args, prog_name="pfill")
    assert result.exit_code == 2
    error, hint = result.stderr.strip().splitlines()
    assert error.startswith("error: ") and message in error
    assert hint == f"hint: see `{help_of} --help`"


def test_root_options_work_after_the_subcommand_too(tmp_path) -> None:
    """`pfill env list --db URL` is `pfill --db URL env list` (preview keeps its own --db, same meaning)."""
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    before = CliRunner().invoke(cli, ["--home", str(tmp_path), "--db", url, "env", "list", "--json"])
    after = CliRunner().invoke(cli, ["env", "list", "--json", "--db", url, f"--home={tmp_path}"])
    assert before.exit_code == after.exit_code == 0, after.output
    assert after.stdout == before.stdout and url in after.stdout
    late_debug = CliRunner().invoke(cli, ["env", "check", "--env", "nope", "--debug"])
    assert late_debug.exit_code == 1 and "unknown environment 'nope'" in late_debug.output
