"""The engine database: opening it (through the one policy in pfill.database) and creating or
upgrading its schema.

    engine = open_engine(url)                 # open_database(url) + init_schema(engine)
    engine = open_engine(url, create=False)   # an initialised database only (what `pfill run` needs)

A database that cannot be reached, is not a database, or is read-only fails here, at the first
connection, with pfill.database's one-line DatabaseError (URL masked, cause, hint).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pfill.database import DatabaseError, display_url, open_database

from . import schema
from .schema import metadata


def open_engine(url: str, *, create: bool = True) -> Engine:
    """The process's engine for `url` with the schema created or upgraded (a SQLite file's folder is
    created; errors are one line with the password masked).

    With `create=False` the database must already hold the engine schema (`pfill db init`): a missing
    SQLite file or a database without the engine's tables is an error, never silently created; an
    older schema is still upgraded in place."""
    engine = open_database(url, must_exist=not create)
    if not create:
        require_schema(engine)
    init_schema(engine)
    return engine


def require_schema(engine: Engine) -> None:
    """A DatabaseError unless the database holds the engine schema (at least its run history)."""
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    if schema.pfill_run_history.name not in tables or schema.loan.name not in tables:
        found = f" (it has {len(tables)} other table(s))" if tables else " (it is empty)"
        raise DatabaseError(f"database {display_url(engine)} is not initialised for the engine{found}",
                            hint="create the schema with `pfill db init`, then load inputs with `pfill demo-data`")


def init_schema(engine: Engine) -> list[str]:
    """Create missing tables, columns and indexes; never drop anything. Returns what changed.

    Idempotent: a second call changes nothing. New nullable columns added to the model later are
    added with ALTER TABLE ... ADD, so an older database is upgraded in place.
    """
    changes: list[str] = []
    with engine.begin() as conn:
        inspector = sa.inspect(conn)  # inspect through the same connection that changes the schema
        existing = set(inspector.get_table_names())
        for table in metadata.sorted_tables:
            if table.name not in existing:
                table.create(conn)  # creates its indexes too
                changes.append(f"created table {table.name}")
                continue
            have_columns = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in have_columns:
                    type_sql = column.type.compile(dialect=engine.dialect)
                    conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD {column.name} {type_sql}')
                    changes.append(f"added column {table.name}.{column.name}")
            have_indexes = {i["name"] for i in inspector.get_indexes(table.name)}
            for index in table.indexes:
                if index.name not in have_indexes:
                    index.create(conn)
                    changes.append(f"created index {index.name}")
    return changes
