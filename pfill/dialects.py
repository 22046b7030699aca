"""The SQL dialects the kit speaks, in one place: their names, sqlglot's names for them, and the
wrappers every layer puts around report SQL (Superset's, preview's and verify's row counts).

Report SQL is read by Superset as a derived table (`SELECT ... FROM (<sql>) AS virtual_table`); SQL
Server allows no CTE inside one, so every wrapper moves the query's WITH clause to the top, with
sqlglot's own transform rather than by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import ConfigError, UsageError
from .secrets import mask_url
from .urls import parse_url

if TYPE_CHECKING:  # sqlglot is imported on first use: a sixth of a deploy command's start-up
    from sqlglot import exp

# Report dialect (SQLAlchemy's backend name) -> sqlglot dialect name.
SQLGLOT_NAMES = {"sqlite": "sqlite", "postgresql": "postgres", "mssql": "tsql"}
DIALECTS = tuple(SQLGLOT_NAMES)


def check_dialect(dialect: str) -> str:
    if dialect not in SQLGLOT_NAMES:
        raise UsageError(f"unknown dialect {dialect!r}; expected one of {', '.join(DIALECTS)}")
    return dialect


def sqlglot_name(dialect: str) -> str:
    """sqlglot's name for a report dialect (`mssql` -> `tsql`)."""
    return SQLGLOT_NAMES[check_dialect(dialect)]


def dialect_of(url: str) -> str:
    """The report dialect (sqlite, postgresql, mssql) of a SQLAlchemy URL."""
    try:
        backend = parse_url(url).backend
    except ValueError:
        raise ConfigError(f"not a database URL: {mask_url(url)!r}") from None
    if backend not in SQLGLOT_NAMES:
        raise ConfigError(f"unsupported database {backend!r}; supported: {', '.join(DIALECTS)}")
    return backend


def parse(sql: str, dialect: str) -> exp.Expression:
    import sqlglot

    return sqlglot.parse_one(sql, read=sqlglot_name(dialect))


def pretty(sql: str, dialect: str) -> str:
    """The SQL pretty-printed by sqlglot in its own dialect."""
    import sqlglot

    name = sqlglot_name(dialect)
    return sqlglot.transpile(sql, read=name, write=name, pretty=True)[0]


def wrap(sql: str, dialect: str, outer: Callable[[exp.Subquery], exp.Expression], alias: str = "q") -> str:
    """`outer(( <sql> ) AS alias)` in the dialect, with the query's CTEs moved to the top level."""
    from sqlglot import transforms

    wrapped = outer(parse(sql, dialect).subquery(alias))
    return transforms.move_ctes_to_top_level(wrapped).sql(dialect=sqlglot_name(dialect))


def count_rows_sql(sql: str, dialect: str) -> str:
    """`SELECT COUNT(*) AS row_count FROM (<sql>) AS counted`, the query's CTEs hoisted to the top."""
    from sqlglot import exp

    return wrap(sql, dialect, lambda q: exp.select(exp.Count(this=exp.Star()).as_("row_count")).from_(q), "counted")
