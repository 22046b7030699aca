"""Alembic's environment for the engine schema, run by pfill.engine.db (never by an alembic.ini).

Online, pfill hands over its open connection (`config.attributes["connection"]`), so the migrations
run inside pfill's transaction, through its one database policy (pfill.database). Offline
(`pfill db upgrade --sql`) it renders the SQL for `config.attributes["url"]` or, without a database,
for `config.attributes["dialect_name"]` (e.g. mssql), with literal values and no connection (for SQL
Server: a 2012 or later server, comments set on schema dbo, as a connection would report them).
"""

from __future__ import annotations

from alembic import context

from pfill.engine.db import VERSION_TABLE
from pfill.engine.schema import metadata

SQL_SERVER_VERSION = (16, 0)  # rendering offline: SQL Server 2022 (anything from 2012 renders the same DDL)


def run_migrations_offline() -> None:
    url = context.config.attributes.get("url")
    context.configure(url=url, dialect_name=None if url else context.config.attributes.get("dialect_name"),
                      target_metadata=metadata, version_table=VERSION_TABLE, literal_binds=True,
                      transaction_per_migration=True)
    dialect = context.get_context().dialect
    if dialect.name == "mssql":  # what a connection would report; SQLAlchemy assumes the oldest server without one
        dialect.server_version_info = dialect.server_version_info or SQL_SERVER_VERSION  # DATE, not DATETIME
        dialect.deprecate_large_types = True  # VARCHAR(max), not the deprecated TEXT
        dialect.default_schema_name = dialect.default_schema_name or "dbo"  # comments name the table's schema
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _running_in_alembic() -> bool:
    """False when the module is merely imported (an import check), not run by Alembic's command."""
    try:
        context.get_context()
    except NameError:  # Alembic's proxy has no EnvironmentContext: nobody is migrating
        return False
    except Exception:  # an EnvironmentContext not configured yet: what Alembic's run_env gives us
        return True
    return True


if _running_in_alembic():
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()
