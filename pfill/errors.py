"""Errors every command can raise, each with the exit code CI sees."""

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
