"""How commands talk to people and machines: progress on stderr, data on stdout (text or --json)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import click


def _default(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.isoformat() + "Z"  # the kit's timestamps are naive UTC: say so (RFC 3339, as the run API)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    return str(value)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=_default, sort_keys=False)


def emit_json(data: Any) -> None:
    click.echo(to_json(data))


def info(message: str) -> None:
    """A progress or status line for people: stderr, so stdout stays clean for data."""
    click.echo(message, err=True)


@contextmanager
def step(message: str) -> Iterator[None]:
    """Print `message ...` then `done in N.Ns` (or `failed`) around a piece of long work."""
    start = time.monotonic()
    click.echo(f"{message} ...", err=True)
    try:
        yield
    except BaseException:
        click.echo(f"  failed after {time.monotonic() - start:.1f}s", err=True)
        raise
    click.echo(f"  done in {time.monotonic() - start:.1f}s", err=True)


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned text table (no borders: easy to read, grep and diff)."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip() for row in cells]
    return "\n".join(lines)


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    click.echo(format_table(rows, headers))


def is_tty() -> bool:
    return sys.stderr.isatty()
