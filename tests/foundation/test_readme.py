"""The README's CLI reference is generated from the commands themselves; this test keeps it in sync.

Regenerate after changing a command: `.venv/bin/python tests/foundation/test_readme.py`."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pfill.cli import cli  # noqa: E402

START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def _rows(group: click.Group, prefix: str) -> list[str]:
    rows = []
    context = click.Context(group)
    for name in sorted(group.list_commands(context)):  # loads the lazy root group's commands
        command = group.get_command(context, name)
        assert command is not None
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            rows += _rows(command, path)
            continue
        options = [p.opts[0] for p in command.params if isinstance(p, click.Option) and p.opts[0] != "--help"]
        arguments = [p.human_readable_name for p in command.params if isinstance(p, click.Argument)]
        usage = " ".join([path, *arguments])
        summary = command.get_short_help_str(limit=200).replace("|", "\\|")
        rows.append(f"| `{usage}` | {summary} | {' '.join(f'`{o}`' for o in options)} |")
    return rows


def cli_reference() -> str:
    lines = ["| command | what it does | options |", "|---|---|---|", *_rows(cli, "pfill")]
    return "\n".join([START, *lines, END])


def _readme_block(text: str) -> str:
    match = re.search(re.escape(START) + r".*?" + re.escape(END), text, re.S)
    assert match, "README.md has no CLI reference block"
    return match.group(0)


def test_readme_cli_reference_matches_the_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert _readme_block(readme) == cli_reference(), "run `.venv/bin/python tests/foundation/test_readme.py`"


def test_readme_names_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "\n    bash .ci/run" not in readme  # CI runs exactly `make test`
    assert (REPO / ".ci" / "run").read_text().strip().endswith("exec make test")


if __name__ == "__main__":
    path = REPO / "README.md"
    text = path.read_text()
    path.write_text(text.replace(_readme_block(text), cli_reference()))
    print("README.md CLI reference updated")
