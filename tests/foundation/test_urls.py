"""pfill/urls.py parses and writes database URLs as SQLAlchemy does (make_url, render_as_string),
without importing it: the same parts, the same text back, the same URLs refused; and the commands
that only deploy never import SQLAlchemy."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from pfill.errors import ConfigError
from pfill.urls import check_url, parse_url

URLS = [
    "sqlite://",
    "sqlite:///relative/pfill.db",
    "sqlite:////abs/path/pfill.db",
    "sqlite:///:memory:",
    "postgresql://postgres@127.0.0.1:5432/pfill",
    "postgresql+psycopg2://user:p%40ss%3Aw%2Fd@db.example.com/pfill?sslmode=require&application_name=pfill",
    "postgresql://u:pw@h/db?options=-csearch_path%3Dm_abc&connect_timeout=5",
    "postgresql://u@[::1]:5433/db",
    "mssql+pyodbc://sa:S3cret!@sqlhost:1433/PowerFill?driver=ODBC+Driver+18+for+SQL+Server&TrustServerCertificate=yes",
    "mssql+pyodbc://@dsn_name",
    "postgresql://user name:pa ss+word@host/db",
    "postgresql://u:@host/db",
    "postgresql://h/db?b=2&a=1&b=1",
]


def _theirs(url: str) -> tuple:
    parsed = make_url(url)
    query = sorted((k, v) for k, values in parsed.query.items() for v in ([values] if isinstance(values, str)
                                                                           else values))
    return (parsed.drivername, parsed.get_backend_name(), parsed.username, parsed.password, parsed.host,
            parsed.port, parsed.database, query)


def _ours(url: str) -> tuple:
    parsed = parse_url(url)
    return (parsed.drivername, parsed.backend, parsed.username, parsed.password, parsed.host, parsed.port,
            parsed.database, sorted(parsed.query))


@pytest.mark.parametrize("url", URLS)
def test_parts_and_text_are_sqlalchemys(url: str) -> None:
    assert _ours(url) == _theirs(url)
    assert parse_url(url).render() == make_url(url).render_as_string(hide_password=False)
    masked = make_url(url).set(password="XXXXXXXXXX") if make_url(url).password else make_url(url)
    ours = parse_url(url).with_password("XXXXXXXXXX") if parse_url(url).password else parse_url(url)
    assert ours.render() == masked.render_as_string(hide_password=False)


_TEXT = st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=12)


@given(user=_TEXT, password=_TEXT, host=st.from_regex(r"[a-z0-9.\-]{1,10}", fullmatch=True),
       port=st.one_of(st.none(), st.integers(1, 65535)), database=_TEXT, key=_TEXT, value=_TEXT)
def test_any_url_parses_and_renders_as_sqlalchemy_does(user: str, password: str, host: str, port: int | None,
                                                     database: str, key: str, value: str) -> None:
    url = (f"postgresql+psycopg2://{user}:{password}@{host}" + (f":{port}" if port else "")
           + f"/{database}?{key}={value}")
    try:
        theirs = _theirs(url)
    except Exception:
        with pytest.raises(ValueError):
            parse_url(url)
        return
    assert _ours(url) == theirs
    assert parse_url(url).render() == make_url(url).render_as_string(hide_password=False)


@pytest.mark.parametrize(("url", "message"), [
    ("nonsense", "not a database URL"),
    ("postgresql://u@host:abc/db", "port 'abc' is not a number"),
    ("postgresql://u@host:70000/db", "port 70000 is out of range (1-65535)"),
    ("postgresql://u@host:0/db", "port 0 is out of range"),
])
def test_bad_urls_are_one_line_naming_the_url_and_where(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_url(url, "--db")
    assert message in str(caught.value) and "(--db)" in str(caught.value) and caught.value.hint


def test_a_bad_url_never_shows_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        check_url("postgresql://u:hunter2@host:x1/db")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("args", [["plan", "--help"], ["validate"], ["--version"]])
def test_deploy_commands_do_not_import_sqlalchemy(args: list[str], tmp_path) -> None:
    code = (f"import sys; sys.argv = ['pfill', *{args!r}]\nfrom pfill.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('SQLALCHEMY' if 'sqlalchemy' in sys.modules else 'CLEAN')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PFILL_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip().splitlines()[-1] == "CLEAN", done.stdout + done.stderr
