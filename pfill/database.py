"""Opening a database: one policy for the engine, preview, verify and the demo.

- one SQLAlchemy engine per URL per process;
- SQLite files get WAL and a busy timeout, so `runs list` / `runs cancel` can read and write while a
  run holds a write transaction; their folder is created, unless the file must already exist;
- PostgreSQL gives up connecting after a few seconds instead of hanging;
- every failure is one line with the password masked.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from .errors import ConfigError, PfillError
from .secrets import mask_text, mask_url

CONNECT_TIMEOUT_SECONDS = 5
_engines: dict[str, Engine] = {}


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def open_database(url: str, *, must_exist: bool = False) -> Engine:
    """The process's engine for `url`. With `must_exist`, a missing SQLite file is an error (reads
    must not create an empty database); otherwise its folder is created."""
    try:
        path = sqlite_file(url)
    except Exception as exc:
        raise ConfigError(f"cannot use database URL: {exc}") from exc
    if path is not None:
        if must_exist and not path.exists():
            raise PfillError(
                f"database not found: {mask_url(url)}",
                hint="create it with `pfill db init` and `pfill demo-data`, or pass --db URL",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    if url not in _engines:
        try:
            backend = make_url(url).get_backend_name()
            connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS} if backend == "postgresql" else {}
            engine = sa.create_engine(url, connect_args=connect_args)
        except Exception as exc:
            raise ConfigError(f"cannot use database URL: {mask_text(str(exc))}") from exc
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        _engines[url] = engine
    return _engines[url]


def ping(engine: Engine) -> None:
    """Connect once, or fail with one line naming the database (password masked)."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        raise PfillError(f"cannot connect to {display_url(engine)}: {first_line(exc)}") from None


def display_url(engine: Engine) -> str:
    return mask_url(engine.url.render_as_string(hide_password=False))


def first_line(exc: BaseException) -> str:
    """The first line of a driver error (SQLAlchemy appends its SQL and a link after it)."""
    original = getattr(exc, "orig", None) or exc
    return (str(original).strip().splitlines() or [type(original).__name__])[0]
