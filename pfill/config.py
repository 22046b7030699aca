"""Configuration every command shares: local state folder, engine database, Superset environments.

Resolution order (first wins):
- home:      --home, PFILL_HOME, ./.pfill
- database:  --db, PFILL_DB_URL, sqlite:///<home>/pfill.db (the embedded default)
- envs file: --config, PFILL_CONFIG, ./pfill.yaml if it exists (none is needed: `local` is built in)
- Superset timeouts (seconds, per HTTP call): PFILL_SUPERSET_TIMEOUT / PFILL_SUPERSET_CONNECT_TIMEOUT,
  the environment's superset.timeout / superset.connect_timeout, 60 / 5

Values in the environments file may reference environment variables as ${NAME}; passwords and the
run service's tokens must.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .dialects import DIALECTS, dialect_of
from .errors import ConfigError
from .secrets import mask_url
from .tenants import check_tenant
from .urls import check_url, parse_url
from .yamlfile import LocatedYaml, check_keys, load_located

LOCAL_ENV = "local"
DEFAULT_TENANT = "demo"
DEFAULT_SUPERSET_PORT = 8088
DEFAULT_SUPERSET_USER = "admin"
# Seconds per HTTP call to Superset: to open the connection, and to wait for an answer (importing a
# large bundle takes tens of seconds; a read that times out is retried at most once, POSTs never).
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 60.0
MAX_TIMEOUT = 3600.0
TIMEOUT_VARIABLES = {"timeout": "PFILL_SUPERSET_TIMEOUT", "connect_timeout": "PFILL_SUPERSET_CONNECT_TIMEOUT"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class SecretRef:
    """A secret read from an environment variable when needed, never stored in specs or printed."""

    variable: str
    where: str

    def value(self) -> str:
        value = os.environ.get(self.variable)
        if not value:
            raise ConfigError(f"{self.where}: environment variable {self.variable} is not set")
        return value


@dataclass(frozen=True)
class Setting:
    """A value from the environments file, ${VAR} references expanded when it is used, so that an
    environment nobody asked for does not need its variables set."""

    raw: str
    where: str
    literal: bool = False  # built-in values are taken as they are

    def value(self) -> str:
        return self.raw if self.literal else _expand(self.raw, self.where)


@dataclass(frozen=True)
class Tenant:
    name: str
    url: Setting  # may hold a password: print through secrets.mask_url only
    dialect_name: str | None = None
    schema: str | None = None
    viewers: tuple[str, ...] = ()  # Superset user names that must hold the tenant's viewer role

    @property
    def database_url(self) -> str:
        return self.url.value()

    @property
    def dialect(self) -> str:
        return self.dialect_name or dialect_of(self.database_url)


@dataclass
class Environment:
    name: str
    url: Setting
    user: Setting
    password: SecretRef | None  # None: the local stack's stored admin password
    tenants: dict[str, Tenant] = field(default_factory=dict)
    home: Path | None = None
    timeout: float | None = None  # superset.timeout in pfill.yaml (None: the default)
    connect_timeout: float | None = None  # superset.connect_timeout
    source: Path | None = None  # the environments file that defines it (None: built in)

    @property
    def superset_url(self) -> str:
        """The Superset base URL, checked (http/https, a host, a port 1-65535) once ${VAR}s are expanded."""
        url = self.url.value().strip().rstrip("/")
        problem = superset_url_problem(url)
        if problem:
            raise ConfigError(f"{self.url.where}: environment {self.name}: superset.url {mask_url(url)!r} {problem}",
                              hint=SUPERSET_URL_HINT)
        return url

    @property
    def read_timeout(self) -> float:
        """Seconds to wait for Superset's answer to one call: PFILL_SUPERSET_TIMEOUT, else
        superset.timeout, else 60."""
        return _timeout_from_env("timeout", self.name) or self.timeout or DEFAULT_READ_TIMEOUT

    @property
    def open_timeout(self) -> float:
        """Seconds to wait for a connection to open: PFILL_SUPERSET_CONNECT_TIMEOUT, else
        superset.connect_timeout, else 5."""
        return _timeout_from_env("connect_timeout", self.name) or self.connect_timeout or DEFAULT_CONNECT_TIMEOUT

    @property
    def username(self) -> str:
        return self.user.value()

    @property
    def is_local(self) -> bool:
        return self.password is None

    def superset_password(self) -> str:
        if self.password is not None:
            return self.password.value()
        from_env = os.environ.get("PFILL_SUPERSET_PASSWORD")
        if from_env:
            return from_env
        assert self.home is not None
        stored = self.home / "superset" / "admin_password"
        if not stored.exists():
            raise ConfigError(
                "the local Superset has no admin password yet",
                hint="run `pfill superset up` first (or set PFILL_SUPERSET_PASSWORD)",
            )
        return stored.read_text().strip()


@dataclass
class Settings:
    home: Path
    db_url: str
    config_path: Path | None = None
    tenant: str = DEFAULT_TENANT
    _environments: dict[str, Environment] | None = field(default=None, repr=False)

    @classmethod
    def resolve(
        cls, home: str | Path | None = None, db: str | None = None, config: str | Path | None = None
    ) -> Settings:
        home_path = Path(home or os.environ.get("PFILL_HOME") or ".pfill").expanduser().absolute()
        db_url = db or os.environ.get("PFILL_DB_URL") or f"sqlite:///{home_path / 'pfill.db'}"
        check_url(db_url, "--db" if db else "PFILL_DB_URL" if os.environ.get("PFILL_DB_URL") else None)
        dialect_of(db_url)
        config_path: Path | None = None
        explicit = config or os.environ.get("PFILL_CONFIG")
        if explicit:
            config_path = Path(explicit).expanduser()
            if not config_path.exists():
                raise ConfigError(f"environments file not found: {config_path}")
        elif Path("pfill.yaml").exists():
            config_path = Path("pfill.yaml")
        # set but empty (an unset shell variable) is an error, never the default
        raw_tenant = os.environ.get("PFILL_TENANT")
        tenant = DEFAULT_TENANT if raw_tenant is None else check_tenant(raw_tenant, "PFILL_TENANT")
        return cls(home=home_path, db_url=db_url, config_path=config_path, tenant=tenant)

    def service(self) -> ServiceSettings:
        """The run service's section of the environments file (empty without one)."""
        if self.config_path is None:
            return ServiceSettings()
        return parse_service(load_located(self.config_path))

    # -- environments ---------------------------------------------------------------------------
    def environments(self) -> dict[str, Environment]:
        if self._environments is None:
            envs = {LOCAL_ENV: self.local_environment()}
            if self.config_path is not None:
                envs.update(parse_environments(load_located(self.config_path)))
            self._environments = envs
        return self._environments

    def environment(self, name: str | None = None) -> Environment:
        name = name or os.environ.get("PFILL_ENV") or LOCAL_ENV
        envs = self.environments()
        if name not in envs:
            raise ConfigError(f"unknown environment {name!r}; known: {', '.join(sorted(envs))}")
        return envs[name]

    def local_superset_port(self) -> int:
        state = self.home / "superset" / "state.json"
        if state.exists():
            try:
                return int(json.loads(state.read_text())["port"])
            except (ValueError, KeyError, TypeError):
                pass
        return env_int("PFILL_SUPERSET_PORT", DEFAULT_SUPERSET_PORT, minimum=1, maximum=65535)

    @property
    def local_tenants_file(self) -> Path:
        """More tenants of the built-in environment, one per line (`pfill demo` writes its second one)."""
        return self.home / "local-tenants"

    def local_environment(self) -> Environment:
        where = "built-in environment local"
        names = [self.tenant]
        if self.local_tenants_file.exists():
            extra = [line.strip() for line in self.local_tenants_file.read_text().splitlines() if line.strip()]
            names += [check_tenant(name, str(self.local_tenants_file)) for name in extra if name != self.tenant]
        tenants = {name: Tenant(name=name, url=Setting(self.db_url, where, literal=True)) for name in names}
        return Environment(
            name=LOCAL_ENV,
            url=Setting(f"http://127.0.0.1:{self.local_superset_port()}", where, literal=True),
            user=Setting(os.environ.get("PFILL_SUPERSET_USER") or DEFAULT_SUPERSET_USER, where, literal=True),
            password=None,
            tenants=tenants,
            home=self.home,
        )


def env_int(name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    """A whole number from environment variable `name` (unset or blank: `default`), or a ConfigError
    naming the variable, the value and the allowed range."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    allowed = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw[:40]!r} is not a whole number", hint=f"use a number {allowed}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ConfigError(f"{name}={value} is out of range", hint=f"use a number {allowed}")
    return value


def env_seconds(name: str, default: float, *, minimum: float) -> float:
    """A number of seconds from environment variable `name` (unset or blank: `default`), or a
    ConfigError naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw[:40]!r} is not a number of seconds",
                          hint=f"use a number of seconds, at least {minimum}") from None
    if not value >= minimum or value == float("inf"):
        raise ConfigError(f"{name}={raw[:40]} is out of range", hint=f"use a number of seconds, at least {minimum}")
    return value


SUPERSET_URL_HINT = "write Superset's base address in full, like https://bi.example.com or http://127.0.0.1:8088"


def superset_url_problem(url: str) -> str | None:
    """What is wrong with a Superset base URL (scheme http/https, a host, a port from 1 to 65535, no
    spaces), said as the end of a sentence about it; None if nothing."""
    if not url or any(ch.isspace() for ch in url):
        return "is empty" if not url else "contains spaces"
    if "://" not in url:
        return "has no scheme (http:// or https://)"
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return f"has scheme {parts.scheme}:// (use http:// or https://)"
    if not parts.hostname:
        return "has no host"
    port = parts.netloc.rpartition("@")[2].rpartition("]")[2].partition(":")[2]
    if port and not (port.isascii() and port.isdigit()):
        return f"has port {port[:20]!r}, not a number from 1 to 65535"
    if port and not 1 <= int(port) <= 65535:
        return f"has port {int(port)}, out of range (1 to 65535)"
    return None


def _timeout_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "is not a number"
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        return "is out of range"
    return None


def _timeout_from_env(key: str, env_name: str) -> float | None:
    """A timeout from its environment variable (unset or blank: None), or a ConfigError naming it
    (and the environment being used)."""
    name = TIMEOUT_VARIABLES[key]
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value: Any = float(raw)
    except ValueError:
        value = raw
    problem = _timeout_problem(value)
    if problem:
        raise ConfigError(f"environment {env_name}: {name}={raw[:40]!r} {problem}",
                          hint=f"use a number of seconds above 0 and at most {MAX_TIMEOUT:g}")
    return float(value)


def _timeout_setting(superset: dict[str, Any], key: str, doc: LocatedYaml, at: tuple[Any, ...]) -> float | None:
    """superset.timeout / superset.connect_timeout: seconds, a number above 0 and at most 3600."""
    if key not in superset:
        return None
    value = superset[key]
    problem = _timeout_problem(value)
    if problem:
        shown = repr(value)[:40]
        raise ConfigError(f"{doc.where(*at, 'superset', key)}: environment {at[-1]}: superset.{key} {shown} {problem}",
                          hint=f"seconds to wait, a number above 0 and at most {MAX_TIMEOUT:g} (like {key}: 30)")
    return float(value)


def _expand(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")

    def sub(match: re.Match[str]) -> str:
        variable = match.group(1)
        if variable not in os.environ:
            raise ConfigError(f"{where}: environment variable {variable} is not set")
        return os.environ[variable]

    return _VAR.sub(sub, value)


def _literal_password(url: str) -> bool:
    try:
        return bool(parse_url(url).password)
    except ValueError:
        return False


def _setting(value: Any, doc: LocatedYaml, *path: Any) -> Setting:
    if not isinstance(value, str):
        raise ConfigError(f"{doc.where(*path)}: expected a string, got {type(value).__name__}")
    return Setting(value, doc.where(*path))


def _secret(value: Any, where: str) -> SecretRef:
    match = _VAR.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise ConfigError(f"{where}: secrets must reference an environment variable, like ${{NAME}}")
    return SecretRef(variable=match.group(1), where=where)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping")
    return value


def parse_environments(doc: LocatedYaml) -> dict[str, Environment]:
    """Environments from a pfill.yaml document (see README: Environments and secrets)."""
    root = _mapping(doc.data or {}, str(doc.path))
    check_keys(root, {"environments", "service"}, doc)
    envs: dict[str, Environment] = {}
    for name, body in _mapping(root.get("environments") or {}, doc.where("environments")).items():
        at = ("environments", name)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{doc.where(*at)}: environment name {name!r} is not a plain identifier")
        body = _mapping(body, doc.where(*at))
        check_keys(body, {"superset", "tenants"}, doc, *at)
        superset = _mapping(body.get("superset"), doc.where(*at, "superset"))
        check_keys(superset, {"url", "username", "password", *TIMEOUT_VARIABLES}, doc, *at, "superset")
        for required in ("url", "username", "password"):
            if required not in superset:
                raise ConfigError(f"{doc.where(*at, 'superset')}: missing field superset.{required}")
        _check_superset_url(superset["url"], doc, at)
        tenants: dict[str, Tenant] = {}
        for tname, tbody in _mapping(body.get("tenants") or {}, doc.where(*at, "tenants")).items():
            tat = (*at, "tenants", tname)
            check_tenant(tname, doc.where(*tat))
            tbody = _mapping(tbody, doc.where(*tat))
            check_keys(tbody, {"database_url", "dialect", "schema", "viewers"}, doc, *tat)
            if "database_url" not in tbody:
                raise ConfigError(f"{doc.where(*tat)}: missing field database_url")
            raw_url = tbody["database_url"]
            if isinstance(raw_url, str) and not _VAR.search(raw_url) and _literal_password(raw_url):
                raise ConfigError(
                    f"{doc.where(*tat, 'database_url')}: the password must come from an environment "
                    "variable, like postgresql://user:${DB_PASSWORD}@host/db"
                )
            if not isinstance(raw_url, str):
                raise ConfigError(f"{doc.where(*tat, 'database_url')}: expected a string")
            dialect = tbody.get("dialect")
            if dialect is not None and dialect not in DIALECTS:
                raise ConfigError(f"{doc.where(*tat, 'dialect')}: dialect must be one of {', '.join(DIALECTS)}")
            tenants[tname] = Tenant(
                name=tname,
                url=Setting(raw_url, doc.where(*tat, "database_url")),
                dialect_name=dialect,
                schema=tbody.get("schema"),
                viewers=_viewers(tbody.get("viewers"), doc.where(*tat, "viewers")),
            )
        envs[name] = Environment(
            name=name,
            url=_setting(superset["url"], doc, *at, "superset", "url"),
            user=_setting(superset["username"], doc, *at, "superset", "username"),
            password=_secret(superset["password"], doc.where(*at, "superset", "password")),
            tenants=tenants,
            timeout=_timeout_setting(superset, "timeout", doc, at),
            connect_timeout=_timeout_setting(superset, "connect_timeout", doc, at),
            source=doc.path,
        )
    return envs


@dataclass(frozen=True)
class ServiceSettings:
    """`service:` in pfill.yaml: the run service's bearer tokens (one per tenant, each from an
    environment variable), its queue capacity and its Celery broker; None: the command's default."""

    tokens: dict[str, SecretRef] = field(default_factory=dict)
    queue_capacity: int | None = None
    broker_url: Setting | None = None


def parse_service(doc: LocatedYaml) -> ServiceSettings:
    root = _mapping(doc.data or {}, str(doc.path))
    if root.get("service") is None:
        return ServiceSettings()
    body = _mapping(root["service"], doc.where("service"))
    check_keys(body, {"tokens", "queue_capacity", "broker_url"}, doc, "service")
    tokens = {}
    for tenant, value in _mapping(body.get("tokens") or {}, doc.where("service", "tokens")).items():
        check_tenant(tenant, doc.where("service", "tokens", tenant))
        tokens[tenant] = _secret(value, doc.where("service", "tokens", tenant))
    capacity = body.get("queue_capacity")
    if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int)
                                 or not 1 <= capacity <= 100_000):
        raise ConfigError(f"{doc.where('service', 'queue_capacity')}: queue_capacity {capacity!r} is not a whole "
                          "number from 1 to 100000", hint="runs that may wait for an executor (default 64)")
    broker = body.get("broker_url")
    return ServiceSettings(tokens=tokens, queue_capacity=capacity,
                           broker_url=None if broker is None else _setting(broker, doc, "service", "broker_url"))


MAX_USERNAME = 64  # Superset's ab_user.username


def _viewers(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: viewers must be a list of Superset user names")
    bad = next((v for v in value if len(v) > MAX_USERNAME or not v.isprintable()), None)
    if bad is not None:
        raise ConfigError(f"{where}: {bad[:40]!r} is not a Superset user name (at most {MAX_USERNAME} printable "
                          f"characters)")
    return tuple(value)


def _check_superset_url(raw: Any, doc: LocatedYaml, at: tuple[Any, ...]) -> None:
    """At load: a URL written out (no ${VAR} in it) must be a valid Superset URL."""
    if not isinstance(raw, str) or _VAR.search(raw):
        return  # not a string: _setting says so; with variables: checked when used (superset_url)
    where = doc.where(*at, "superset", "url")
    url = raw.strip().rstrip("/")
    problem = superset_url_problem(url)
    if problem:
        raise ConfigError(f"{where}: environment {at[-1]}: superset.url {mask_url(url)!r} {problem}",
                          hint=SUPERSET_URL_HINT)
