"""Opening a database: one policy for the engine, preview, verify and the demo.

- one SQLAlchemy engine per URL per process;
- the URL is checked before use (`urls.check_url`): something that is not a URL, a port that is not a
  number or is out of range, is one line naming the URL;
- SQLite files get WAL and a busy timeout, so `runs list` / `runs cancel` can read and write while a
  run holds a write transaction; their folder is created, unless the file must already exist; a
  directory given as the file, or a folder that cannot be created or written, is refused up front;
- PostgreSQL gives up connecting after a few seconds instead of hanging;
- the database itself failing (cannot connect, no such database, refused, not a SQLite file, read
  only, locked) is translated where it happens, for every caller, by one `handle_error` hook on the
  engine (`explain`): a DatabaseError naming the URL (password masked), the cause and a hint.
  Errors in a statement (a missing table, a constraint) are left to the caller.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from .errors import ConfigError, PfillError
from .secrets import mask_text, mask_url
from .urls import check_url

CONNECT_TIMEOUT_SECONDS = 5
_engines: dict[str, Engine] = {}


class DatabaseError(PfillError):
    """A database that cannot be opened or used: one line naming it (password masked) and the cause."""


# 64 MiB of page cache, not 2: a run's index inserts land all over its tables' indexes (a quarter less
# time writing 100k loans' output); pages are only held as they are used
SQLITE_CACHE_KIB = 65_536


def _sqlite_pragmas(dbapi_conn, _record, cache_kib: int) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    cursor.close()


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = check_url(url)
    if parsed.backend != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def _check_sqlite_path(url: str, path: Path, must_exist: bool) -> None:
    """Refuse, before SQLite is asked, a path it cannot use; create the folder of a new file."""
    where = f"database {mask_url(url)}"
    if path.is_dir():
        raise DatabaseError(f"{where}: the path is a directory, not a database file",
                            hint=f"name a file, e.g. sqlite:///{path / 'pfill.db'}")
    if not path.exists():
        if must_exist:
            raise DatabaseError(f"database not found: {mask_url(url)}",
                                hint="create it with `pfill db init` and `pfill demo-data`, or pass --db URL")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"{where}: cannot create its folder ({exc.strerror or exc})",
                                hint="choose a folder you can write (--db or PFILL_DB_URL, --home)") from None
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise DatabaseError(f"{where}: its folder is not writable",
                                hint="choose a folder you can write (--db or PFILL_DB_URL, --home)")


def open_database(url: str, *, must_exist: bool = False, fresh: bool = False,
                  sqlite_cache_kib: int = SQLITE_CACHE_KIB) -> Engine:
    """The process's engine for `url`. With `must_exist`, a missing SQLite file is an error (reads
    must not create an empty database); otherwise its folder is created. With `fresh`, a new engine of
    its own, not the process's (a forked process must not use its parent's connections).
    `sqlite_cache_kib`: the page cache of each SQLite connection of an engine made by this call."""
    path = sqlite_file(url)  # checks the URL
    if path is not None:
        _check_sqlite_path(url, path, must_exist)
    if url not in _engines or fresh:
        try:
            backend = make_url(url).get_backend_name()
            connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS} if backend == "postgresql" else {}
            # the run service's threads keep up to 10 connections open instead of SQLAlchemy's 5 (past those,
            # each request opened and closed one), and use at most 20: a PostgreSQL shared by several replicas
            # and workers allows 100 in all by default. Connections open on demand: a command opens one or two.
            pool = {"pool_size": 10, "max_overflow": 10} if backend != "sqlite" else {}
            engine = sa.create_engine(url, connect_args=connect_args, **pool)
        except Exception as exc:
            raise ConfigError(f"cannot use database URL {mask_url(url)}: {mask_text(first_line(exc))}") from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", functools.partial(_sqlite_pragmas, cache_kib=sqlite_cache_kib))
        sa.event.listen(engine, "handle_error", _translate)
        if fresh:
            return engine
        _engines[url] = engine
    return _engines[url]


def _translate(context: sa.engine.ExceptionContext) -> None:
    """The engine's handle_error hook: a failure of the database itself becomes a DatabaseError."""
    if context.engine is None:
        return
    error = explain(context.original_exception, display_url(context.engine),
                    connecting=context.connection is None)
    if error is not None:
        raise error from context.original_exception


# (pattern in the driver's message, cause, hint); the first match wins. {host}/{port}/{db}/{user} are
# filled from the URL.
_CAUSES: list[tuple[str, str, str]] = [
    (r"file is not a database|file is encrypted|disk image is malformed",
     "the file is not a SQLite database (corrupt, or another kind of file)",
     "move it aside and run `pfill db init`, or pass --db URL"),
    (r"unable to open database file",
     "SQLite cannot open the file (a directory, a missing or unwritable folder)",
     "check the path and its permissions, or pass --db URL"),
    (r"readonly database|read-only",
     "the database file or its folder is read-only",
     "make it writable, or choose another file with --db"),
    (r"database is locked",
     "the database stayed locked by another process",
     "wait for the other `pfill` process, or check `pfill runs list`"),
    (r'database "[^"]*" does not exist',
     "database {db} does not exist on {host}:{port}",
     "create it (`createdb {db}`), or fix the database name in the URL"),
    (r'role "[^"]*" does not exist',
     "user {user} does not exist on {host}:{port}",
     "fix the user name in the URL"),
    (r"password authentication failed|no password supplied|authentication failed",
     "authentication failed for user {user}",
     "check the password variable and the user name"),
    (r"connection refused",
     "the server at {host}:{port} refused the connection",
     "is PostgreSQL running there? check the host and port in the URL"),
    (r"timeout expired|timed out",
     "no answer from {host}:{port} within {timeout} s",
     "check the host, the port and the network"),
    (r"could not translate host name|name or service not known|nodename nor servname",
     "unknown host {host}",
     "check the host name in the URL"),
    (r"invalid port|invalid integer value",
     "the port is not valid",
     "use a port from 1 to 65535"),
    (r"permission denied",
     "permission denied: {line}",
     "grant the user access, or use another user"),
]


def explain(exc: BaseException, url: str, *, connecting: bool = False) -> DatabaseError | None:
    """A DatabaseError naming `url` (masked) for a failure of the database itself, else None.

    Known causes get their own message and hint; any other failure while connecting is reported with
    the driver's first line; other statement errors are not ours to explain (None)."""
    line = mask_text(first_line(exc))
    try:
        parsed = make_url(url)
    except Exception:
        parsed = None
    fields = {
        "host": getattr(parsed, "host", None) or "localhost", "port": getattr(parsed, "port", None) or "default",
        "db": getattr(parsed, "database", None) or "?", "user": getattr(parsed, "username", None) or "?",
        "timeout": CONNECT_TIMEOUT_SECONDS, "line": line,
    }
    sqlite = url.startswith("sqlite")
    what = ("cannot open" if sqlite else "cannot connect to") if connecting else "database"
    for pattern, cause, hint in _CAUSES:
        if re.search(pattern, line, re.I):
            return DatabaseError(f"{what} {mask_url(url)}: {cause.format(**fields)}", hint=hint.format(**fields))
    if connecting:
        up = "" if sqlite else " and that the server is up"
        return DatabaseError(f"{what} {mask_url(url)}: {line}", hint=f"check the URL (--db or PFILL_DB_URL){up}")
    return None


def ping(engine: Engine) -> None:
    """Connect once, or fail with one line naming the database (password masked)."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(f"cannot connect to {display_url(engine)}: {first_line(exc)}") from None


def display_url(engine: Engine) -> str:
    return mask_url(engine.url.render_as_string(hide_password=False))


def first_line(exc: BaseException) -> str:
    """The first line of a driver error (SQLAlchemy appends its SQL and a link after it); a driver
    message that starts with a generic line ("connection to server ... failed:") keeps its cause."""
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).strip().splitlines() if line.strip()]
    if not lines:
        return type(original).__name__
    line = lines[0]
    if line.endswith("failed:") and len(lines) > 1:  # libpq puts the cause on the next line
        line = f"{line} {lines[1]}"
    return re.sub(r"\s+", " ", line)
