"""Errors every command can raise, each with the exit code CI sees.

The CLI prints one of these as `error: <message>` (plus `hint: <hint>`), never a traceback; the
message names the file and line (or the field, or the option) at fault. Exit codes: 1 for any error
in the input or the world (a malformed file, a server's answer, a database), 2 for usage only (an
option missing or wrong, such as `export` into files that exist without --force); anything not a
PfillError reaching the CLI is a bug (it prints as "unexpected").
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # click's own code for bad usage; `plan` also uses it for "changes pending"
EXIT_CONFLICT = 3  # a run is already active for the tenant (BR-8)


class PfillError(Exception):
    """An expected failure: printed as one line (no traceback) and mapped to an exit code."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(PfillError):
    """Bad configuration: a missing variable, an unknown environment, a malformed file."""


class UsageError(PfillError):
    exit_code = EXIT_USAGE


class ConflictError(PfillError):
    exit_code = EXIT_CONFLICT
