"""Bearer tokens, each bound to one tenant.

In pfill.yaml, every token comes from an environment variable (a literal is refused):

    service:
      tokens:
        acme: ${ACME_PFILL_TOKEN}

Without a `service.tokens` section (the local default), `pfill serve` generates one token per local
tenant into <home>/service/token-<tenant> (mode 0600) and prints where they are, as the local
Superset does with its admin password. Tokens are compared in constant time and never printed.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from pfill.config import Settings
from pfill.errors import ConfigError
from pfill.secrets import write_private

MIN_TOKEN_LENGTH = 24


@dataclass(frozen=True)
class Tokens:
    by_tenant: dict[str, str]
    files: tuple[Path, ...] = ()  # where generated tokens are kept (local default)

    def tenant_of(self, presented: str) -> str | None:
        """The tenant a token belongs to; every token is compared, so the time does not tell which."""
        found = None
        given = presented.encode()
        for tenant, token in self.by_tenant.items():
            if hmac.compare_digest(given, token.encode()):
                found = tenant
        return found


def token_file(home: Path, tenant: str) -> Path:
    return home / "service" / f"token-{tenant}"


def load_tokens(settings: Settings) -> Tokens:
    """The configured tokens, or the local tenants' generated ones (created when missing)."""
    configured = settings.service().tokens
    if configured:
        by_tenant = {}
        for tenant, ref in configured.items():
            value = ref.value()
            if len(value) < MIN_TOKEN_LENGTH:
                raise ConfigError(f"{ref.where}: the token in {ref.variable} is shorter than {MIN_TOKEN_LENGTH} "
                                  "characters", hint="generate one with `python -c 'import secrets; "
                                                     "print(secrets.token_urlsafe(32))'`")
            by_tenant[tenant] = value
        return Tokens(by_tenant)
    tenants = list(settings.local_environment().tenants)
    files = tuple(local_token(settings.home, tenant) for tenant in tenants)
    return Tokens({t: f.read_text().strip() for t, f in zip(tenants, files, strict=True)}, files)


def local_token(home: Path, tenant: str) -> Path:
    """The tenant's generated token file, created (0600) when missing."""
    path = token_file(home, tenant)
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32) + "\n")
    return path
