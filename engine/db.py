"""The engine database: opening it (through the one policy in pfill.database) and its versioned schema.

The schema is versioned with Alembic: the revisions live in engine/migrations/versions (package data,
found through this package, so it works from any folder and from a wheel; no alembic.ini), and the
database records its revision in the table `pfill_alembic_version` (its own name, so a tenant
database that other applications also migrate with Alembic keeps their `alembic_version` apart).

    engine = open_engine(url)                 # `pfill db init`, `pfill demo`: create at head, or upgrade
    engine = open_engine(url, create=False)   # every other command: the schema must be at head already;
                                              # nothing is created or changed (reads never write)
    state = schema_state(engine)              # where the database stands: absent, unversioned, behind...
    upgrade_schema(engine)                    # `pfill db upgrade`: an initialised database to head
    print(upgrade_sql(dialect="mssql"))       # `pfill db upgrade --sql`: the SQL, for a DBA to review

A database created by `pfill db init` before versioning has the engine's tables and no version table:
it is recognised as *unversioned*; `pfill db upgrade` (or `db init`) adds what that older init had not
created yet (tables, nullable columns, indexes of the baseline revision), stamps it with the baseline
revision and upgrades it to head.

A database that cannot be reached, is not a database, or is read-only fails at the first connection,
with pfill.database's one-line DatabaseError (URL masked, cause, hint).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.schema import SetColumnComment

from pfill.database import display_url, open_database
from pfill.schema_version import VERSION_TABLE as VERSION_TABLE  # the engine's names, kept
from pfill.schema_version import SchemaError as SchemaError
from pfill.schema_version import SchemaState, read_revision, state_of
from pfill.schema_version import require_current as versioned_require_current

BASELINE = "0001"  # the schema `pfill db init` created before versioning
DIALECTS = ("mssql", "postgresql", "sqlite")  # what `pfill db upgrade --sql --dialect` renders


# -- the migrations ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def _migrations() -> Iterator[Path]:
    """The migrations folder, located through the package (a real folder even from a zipped install)."""
    with resources.as_file(resources.files(__package__ or "pfill.engine") / "migrations") as path:
        yield Path(path)


def alembic_config(connection: sa.Connection | None = None, *, url: str | None = None, dialect: str | None = None,
                   output: io.StringIO | None = None) -> Config:
    """An Alembic Config without an ini file: the packaged migrations, and what env.py needs (an open
    connection online; a URL or a dialect name offline). Usable with alembic.command for maintenance,
    e.g. `command.revision(alembic_config(), "add x", rev_id="0002")` from the repository."""
    config = Config(output_buffer=output, stdout=output or io.StringIO())
    with _migrations() as path:
        config.set_main_option("script_location", str(path).replace("%", "%%"))
    config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")  # importable module names (r0002_...)
    config.attributes.update(connection=connection, url=url, dialect_name=dialect)
    return config


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The revision this pfill's schema is at."""
    found = _script().get_current_head()
    assert found, "no migrations"
    return found


def revisions() -> list[tuple[str, str]]:
    """(revision, message) from the baseline to head."""
    return [(s.revision, (s.doc or "").splitlines()[0]) for s in reversed(list(_script().walk_revisions()))]


def _label(revision: str | None) -> str:
    if revision is None:
        return "none"
    try:
        found = _script().get_revision(revision)
    except Exception:  # a revision this pfill does not know (a newer pfill upgraded the database)
        found = None
    return f"{revision} ({found.doc.split(':')[0].strip()})" if found and found.doc else revision


# -- where a database stands ------------------------------------------------------------------------------
# One classification and one message for every command (pfill.schema_version): this module passes the
# revisions Alembic finds in the migrations folder, the read-only commands outside the engine the
# constant that mirrors them.

def _known() -> list[tuple[str, str]]:
    """(revision, label) from the baseline to head, as Alembic has them (the label: the docstring up to
    its first colon)."""
    return [(s.revision, (s.doc or "").split(":")[0].strip()) for s in reversed(list(_script().walk_revisions()))]


def _state(conn: sa.Connection, url: str) -> SchemaState:
    return state_of(conn, url, _known())


def schema_state(engine: Engine) -> SchemaState:
    """Where the engine schema of this database stands. Reads only."""
    with engine.connect() as conn:
        return _state(conn, display_url(engine))


def require_current(engine: Engine) -> SchemaState:
    """The state when the schema is at head, else a SchemaError saying where it is and which command
    fixes it (`pfill db init`, `pfill db upgrade`). Reads only."""
    return versioned_require_current(engine, _known())


def require_schema(engine: Engine) -> None:
    """A SchemaError unless the database holds the engine schema at this pfill's head."""
    require_current(engine)


# -- changing the schema ----------------------------------------------------------------------------------

def open_engine(url: str, *, create: bool = True) -> Engine:
    """The process's engine for `url` (a SQLite file's folder is created; errors are one line with the
    password masked).

    create=True (`pfill db init`, `pfill demo`): the schema is created at head, or an older one upgraded.
    create=False (every other command): a missing SQLite file, a database without the engine schema or
    with a schema that is not at head is a SchemaError naming the command that fixes it; nothing is
    created or changed."""
    engine = open_database(url, must_exist=not create)
    if create:
        create_schema(engine)
    else:
        require_current(engine)
    return engine


def create_schema(engine: Engine) -> list[str]:
    """`pfill db init`: the schema at head, whatever the database holds: nothing (created), an
    unversioned engine schema (completed, stamped, upgraded) or an older revision (upgraded).
    Idempotent; drops nothing. Returns what changed (empty: already at head)."""
    return _migrate(engine, allow_create=True)


def upgrade_schema(engine: Engine) -> list[str]:
    """`pfill db upgrade`: an engine database (versioned or not) to head; a database without the engine
    schema is a SchemaError (`pfill db init` creates it). Returns what changed."""
    return _migrate(engine, allow_create=False)


def init_schema(engine: Engine) -> list[str]:
    """Create the schema at head or upgrade it (the same as create_schema; kept for callers of the
    pre-migrations API)."""
    return create_schema(engine)


def _migrate(engine: Engine, *, allow_create: bool) -> list[str]:
    url = display_url(engine)
    with engine.begin() as conn:
        state = _state(conn, url)
        if state.status == "current":
            return []
        if state.status == "ahead" or (state.status == "absent" and not allow_create):
            raise state.error()
        changes: list[str] = []
        config = alembic_config(conn)
        if state.status == "absent" and _has_baseline_tables(conn):
            state = SchemaState(url, "unversioned", None, state.head)  # some engine tables: complete them
        if state.status == "unversioned":
            changes += [f"unversioned schema: {c}" for c in complete_unversioned(conn)]
            command.stamp(config, BASELINE)
            changes.append(f"stamped {_label(BASELINE)}")
        before = read_revision(conn, set(sa.inspect(conn).get_table_names()))
        command.upgrade(config, "head")
        if before != state.head:
            changes.append(f"created at {_label(state.head)}" if before is None
                           else f"upgraded {before} -> {_label(state.head)}")
    return changes


@cache
def baseline_metadata() -> sa.MetaData:
    """The tables of the baseline revision (frozen in engine/migrations/versions/r0001_baseline.py)."""
    module = _script().get_revision(BASELINE).module
    return module.baseline()


def _has_baseline_tables(conn: sa.Connection) -> bool:
    return bool(set(sa.inspect(conn).get_table_names()) & set(baseline_metadata().tables))


def complete_unversioned(conn: sa.Connection) -> list[str]:
    """Bring an unversioned engine schema (an older `pfill db init`) up to the baseline revision: create
    the missing tables, add the missing columns (ALTER TABLE ... ADD: they were added nullable) and
    indexes. Never drops anything. Returns what changed."""
    changes: list[str] = []
    inspector = sa.inspect(conn)
    existing = set(inspector.get_table_names())
    for table in baseline_metadata().sorted_tables:
        if table.name not in existing:
            table.create(conn)  # with its indexes
            changes.append(f"created table {table.name}")
            continue
        have_columns = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have_columns:
                type_sql = column.type.compile(dialect=conn.dialect)
                quote = conn.dialect.identifier_preparer.quote
                conn.exec_driver_sql(f"ALTER TABLE {quote(table.name)} ADD {quote(column.name)} {type_sql}")
                if column.comment and conn.dialect.supports_comments and not conn.dialect.inline_comments:
                    conn.execute(SetColumnComment(column))
                changes.append(f"added column {table.name}.{column.name}")
        have_indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in have_indexes:
                index.create(conn)
                changes.append(f"created index {index.name}")
    return changes


def upgrade_sql(*, url: str | None = None, dialect: str | None = None, start: str | None = None) -> str:
    """The SQL `pfill db upgrade` runs, rendered without connecting (Alembic's offline mode), for a DBA
    to review: from `start` (a revision; None: an empty database) to head, for the dialect of `url` or
    for `dialect` (mssql, postgresql, sqlite). Includes the version table's statements."""
    if dialect is None and url is None:
        raise ValueError("give url or dialect")
    output = io.StringIO()
    config = alembic_config(url=None if dialect else url, dialect=dialect, output=output)
    command.upgrade(config, f"{start}:head" if start else "head", sql=True)
    return output.getvalue()
