"""The command line itself: help everywhere, version, exit codes, one-line errors."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from pfill import __version__
from pfill.cli import cli


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
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
