"""Database URLs without SQLAlchemy: parsed, checked and written back with SQLAlchemy's own grammar
(`make_url` and `URL.render_as_string`, which tests/foundation/test_urls.py holds them to), because
importing SQLAlchemy costs a tenth of a second and deploy commands need no more than the URL.

`check_url` is the one check of a URL from the user: something that is not a URL, a port that is not
a number or is out of range, is one line naming the URL (password masked) and where it came from."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, quote, quote_plus, unquote

from .errors import ConfigError
from .secrets import mask_url

_URL = re.compile(  # sqlalchemy.engine.url._parse_url's pattern
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)
_PORT = re.compile(r"^[^:/]+://(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/?]*):(?P<port>[^/?]*)")
_URL_EXAMPLE = "a database URL looks like sqlite:///path/pfill.db or postgresql://user:${PASSWORD}@host:5432/db"
_PORT_HINT = "use a port from 1 to 65535, e.g. postgresql://user@host:5432/db"


@dataclass(frozen=True)
class DbUrl:
    drivername: str
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: tuple[tuple[str, str], ...] = ()

    @property
    def backend(self) -> str:
        """SQLAlchemy's backend name: `postgresql` for `postgresql+psycopg2`."""
        return self.drivername.split("+", 1)[0]

    def with_password(self, password: str | None) -> DbUrl:
        return replace(self, password=password)

    def render(self) -> str:
        """The URL as SQLAlchemy writes it (`render_as_string(hide_password=False)`)."""
        text = self.drivername + "://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            if self.password is not None:
                text += ":" + quote(self.password, safe=" +")
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            text += f":{self.port}"
        if self.database is not None:
            text += "/" + self.database
        if self.query:
            pairs = sorted(self.query, key=lambda pair: pair[0])  # by key; a key's values keep their order
            text += "?" + "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs)
        return text


def parse_url(url: str) -> DbUrl:
    """The URL's parts; ValueError when it is not a URL or its port is not a number."""
    match = _URL.match(url)
    if match is None:
        raise ValueError("not a database URL")
    parts = match.groupdict()
    port = parts["port"]
    return DbUrl(
        drivername=parts["name"],
        username=unquote(parts["username"]) if parts["username"] is not None else None,
        password=unquote(parts["password"]) if parts["password"] is not None else None,
        host=parts["ipv4host"] or parts["ipv6host"],
        port=int(port) if port else None,
        database=parts["database"],
        query=tuple(parse_qsl(parts["query"])) if parts["query"] is not None else (),
    )


def check_url(url: str, where: str | None = None) -> DbUrl:
    """The parsed URL, or a ConfigError naming it (password masked), `where` it came from, and what is
    wrong: not a URL, a port that is not a number or is outside 1-65535."""
    label = f"database URL {mask_url(url)}" + (f" ({where})" if where else "")
    match = _PORT.match(url)
    try:
        parsed = parse_url(url)
    except ValueError:
        if match and not match["port"].isdigit() and match["port"]:
            raise ConfigError(f"{label}: port {match['port']!r} is not a number", hint=_PORT_HINT) from None
        raise ConfigError(f"{label}: not a database URL", hint=_URL_EXAMPLE) from None
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise ConfigError(f"{label}: port {parsed.port} is out of range (1-65535)", hint=_PORT_HINT)
    return parsed
