"""The one grammar of a tenant id, checked at every door: CLI options (--tenant), the PFILL_TENANT
variable, the `tenants:` keys of the environments file, the query templates (and any later service).

A tenant id is 1 to 63 characters: letters, digits, '_', '.' and '-', starting with a letter or a
digit. It ends up in SQL literals, Superset slugs and UUID seeds, so an empty value is an error (never
"the default") and quotes, semicolons, spaces or newlines are refused rather than escaped.
"""

from __future__ import annotations

import re

from .errors import ConfigError, PfillError

# \Z, not $: `$` would also accept a trailing newline
TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
TENANT_RULE = "use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit"


def check_tenant(value: object, where: str, error: type[PfillError] = ConfigError) -> str:
    """`value` when it is a valid tenant id; otherwise `error` naming `where` (an option, a variable,
    a file and line) and what is wrong."""
    if isinstance(value, str) and TENANT.match(value):
        return value
    if value is None or value == "":
        raise error(f"{where}: the tenant id is empty", hint=TENANT_RULE)
    shown = repr(value) if len(repr(value)) <= 48 else repr(value)[:45] + "..."
    if not isinstance(value, str):
        raise error(f"{where}: tenant id {shown} is not text", hint=TENANT_RULE)
    raise error(f"{where}: invalid tenant id {shown}", hint=TENANT_RULE)
