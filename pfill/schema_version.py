"""Where an engine database's schema stands, for every command that reads it: one check, one message.

The engine versions its schema with Alembic (pfill.engine.db, revisions in engine/migrations/versions)
and records the revision in `pfill_alembic_version`. Commands that only read the engine's tables
(`pfill runs list`, `pfill preview --execute`, `pfill verify`) never change the schema: when it is not at
this pfill's head they refuse with one line saying where it is and a hint naming the command that
fixes it (`pfill db upgrade`, or `pfill db init`). pfill.queries and pfill.deploy may not import the
engine (the layering), so the check lives here and knows the revisions as a constant, REVISIONS;
tests/engine/test_schema_version.py holds it equal to Alembic's revisions of engine/migrations. The
engine classifies with the same function, passing Alembic's revisions (pfill.engine.db.schema_state).

    state = schema_state(engine)     # status: current, behind, ahead, unversioned, absent
    require_current(engine)          # a SchemaError (one line + hint) unless the schema is at head
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .database import DatabaseError, display_url

VERSION_TABLE = "pfill_alembic_version"
# (revision, label) from the baseline to head, as engine/migrations/versions has them (the label is
# the revision's docstring up to its first colon); a new revision is added here too (a test says so)
REVISIONS: tuple[tuple[str, str], ...] = (
    ("0001", "baseline"),
    ("0002", "output_removed_at"),
    ("0003", "candidate options"),
    ("0004", "quality comments"),
    ("0005", "chosen pair"),
)
HEAD = REVISIONS[-1][0]
ENGINE_TABLES = frozenset({"pfill_run_history", "loan"})  # an unversioned engine schema has both

_HINTS = {"absent": "not initialised; run `pfill db init` (then `pfill demo-data` for demo inputs)",
          "ahead": "upgrade pfill-kit to the version that wrote this schema",
          "behind": "run `pfill db upgrade` (`pfill db upgrade --sql` shows the SQL first)",
          "unversioned": "run `pfill db upgrade` (`pfill db upgrade --sql` shows the SQL first)"}


class SchemaError(DatabaseError):
    """The engine schema is absent, unversioned, behind or ahead of this pfill: one line and the command
    that fixes it."""


@dataclass(frozen=True)
class SchemaState:
    """The engine schema of one database, compared with this pfill's head revision.

    status: `current` (at head), `behind` (an older revision: `pfill db upgrade`), `ahead` (a revision
    this pfill does not know: a newer pfill upgraded it), `unversioned` (engine tables from before
    versioning: `pfill db upgrade`), `absent` (no engine schema: `pfill db init`)."""

    database: str  # URL, password masked
    status: str
    current: str | None  # the database's revision (None: unversioned or absent)
    head: str
    pending: list[str] = field(default_factory=list)  # revisions `pfill db upgrade` would apply
    tables: int = 0  # tables in the database (engine's or not)
    labels: dict[str, str] = field(default_factory=dict, repr=False, compare=False)  # revision -> label

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        del found["labels"]
        return found

    def label(self, revision: str | None) -> str:
        if revision is None:
            return "none"
        return f"{revision} ({self.labels[revision]})" if self.labels.get(revision) else revision

    def describe(self) -> str:
        """One line: where the schema is and what to do about it."""
        where = f"database {self.database}"
        if self.status == "current":
            return f"{where}: schema at {self.label(self.current)}, the head"
        if self.status == "behind":
            return (f"{where}: schema is at {self.label(self.current)}, this pfill needs {self.label(self.head)} "
                    f"({len(self.pending)} revision(s) to apply)")
        if self.status == "ahead":
            return f"{where}: schema is at {self.current}, newer than this pfill knows (head {self.label(self.head)})"
        if self.status == "unversioned":
            return f"{where}: schema is at an unversioned engine schema (from before migrations), not {self.head}"
        found = f" (it has {self.tables} other table(s))" if self.tables else " (it is empty)"
        return f"database {self.database} is not initialised for the engine{found}"

    def error(self) -> SchemaError:
        return SchemaError(self.describe(), hint=_HINTS.get(self.status))


def read_revision(conn: sa.Connection, tables: set[str]) -> str | None:
    """The revision recorded in the version table (None: no table, or no row)."""
    if VERSION_TABLE not in tables:
        return None
    return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def state_of(conn: sa.Connection, url: str, revisions: Sequence[tuple[str, str]] = REVISIONS) -> SchemaState:
    """Where the schema of the database behind `conn` stands against `revisions` (baseline to head; the
    engine passes Alembic's). Reads only."""
    known = [r for r, _ in revisions]
    labels = dict(revisions)
    tables = set(sa.inspect(conn).get_table_names())
    current, target = read_revision(conn, tables), known[-1]

    def state(status: str, pending: list[str]) -> SchemaState:
        return SchemaState(url, status, current, target, pending, len(tables), labels)

    if not (VERSION_TABLE in tables or tables >= ENGINE_TABLES):
        return state("absent", known)
    if current is None:
        return state("unversioned", known)
    if current == target:
        return state("current", [])
    if current not in known:
        return state("ahead", [])
    return state("behind", known[known.index(current) + 1:])


def schema_state(engine: Engine, revisions: Sequence[tuple[str, str]] = REVISIONS) -> SchemaState:
    """Where the engine schema of this database stands. Reads only."""
    with engine.connect() as conn:
        return state_of(conn, display_url(engine), revisions)


def require_current(engine: Engine, revisions: Sequence[tuple[str, str]] = REVISIONS) -> SchemaState:
    """The state when the schema is at head, else a SchemaError saying where it is and which command
    fixes it (`pfill db init`, `pfill db upgrade`). Reads only."""
    state = schema_state(engine, revisions)
    if state.status != "current":
        raise state.error()
    return state
