"""Connecting to the engine database and creating or upgrading its schema."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pfill.errors import ConfigError

from .schema import metadata

_engines: dict[str, Engine] = {}


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_conn.cursor()
    # WAL lets `runs list` / `runs cancel` read and write while a run holds a write transaction.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def get_engine(url: str) -> Engine:
    """One engine per URL per process (SQLite files get WAL and a busy timeout)."""
    if url not in _engines:
        try:
            engine = sa.create_engine(url, future=True)
        except Exception as exc:
            raise ConfigError(f"cannot use database URL: {exc}") from exc
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        _engines[url] = engine
    return _engines[url]


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
