"""Deterministic identities for the Superset objects this kit manages, and the marker that lets
`prune` (and people in the UI) recognise them.

The UUID of an object is derived from (environment, tenant, kind, key), so the same spec maps to
the same object on every instance and every run. The marker is written where Superset lists it
back: `certified_by`/`certification_details` on charts and dashboards, the certification inside a
dataset's `extra`. Only objects carrying this kit's marker for the same environment and tenant are
ever deleted by `prune`.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAMESPACE = uuid.UUID("5f6b7c1e-9a0d-4f5e-8d9b-70f11a4b1d2c")  # fixed forever: changing it orphans objects
MANAGER = "pfill-kit"
Ids = dict[str, int]  # object UUID -> its id in one Superset
_MARKER = re.compile(r"\[pfill-kit (?P<env>[^/\s]+)/(?P<tenant>[^/\s]+)/(?P<kind>[a-z]+)/(?P<key>[^\]\s]+)\]")


@dataclass(frozen=True)
class ObjectKey:
    env: str
    tenant: str
    kind: str  # database, dataset, chart, dashboard
    key: str  # query name, "<dashboard slug>/<chart key>", dashboard slug

    @property
    def uuid(self) -> str:
        return str(uuid.uuid5(NAMESPACE, f"{self.env}/{self.tenant}/{self.kind}/{self.key}"))

    @property
    def marker(self) -> str:
        """Text for certification details: readable in the UI, parseable by `prune`."""
        return (
            f"Managed in git by pfill-kit; edits made here are overwritten by the next apply. "
            f"[pfill-kit {self.env}/{self.tenant}/{self.kind}/{self.key}]"
        )


def deployed_slug(tenant: str, slug: str) -> str:
    """Dashboard slugs are global in Superset: the tenant keeps each tenant's apart."""
    return f"pfill-{tenant}-{slug}"


def parse_marker(text: str | None) -> ObjectKey | None:
    match = _MARKER.search(text or "")
    if not match:
        return None
    return ObjectKey(match["env"], match["tenant"], match["kind"], match["key"])


def dataset_certification(key: ObjectKey) -> dict[str, Any]:
    """What a dataset's `extra` carries: the certification that `dataset_marker` reads back."""
    return {"certification": {"certified_by": MANAGER, "details": key.marker}}


def dataset_marker(extra: str | None) -> ObjectKey | None:
    """The marker of a dataset, kept inside the certification of its `extra` JSON."""
    try:
        details = (json.loads(extra or "{}").get("certification") or {}).get("details")
    except (ValueError, AttributeError):
        return None
    return parse_marker(details)


def external_url(path: Path) -> str:
    """Where a managed object is defined: PFILL_EXTERNAL_URL (a repository URL) or the file itself."""
    base = os.environ.get("PFILL_EXTERNAL_URL")
    if base:
        return f"{base.rstrip('/')}/{path.parent.name}/{path.name}"
    return path.resolve().as_uri()


def managed_fields(key: ObjectKey, source: Path) -> dict[str, Any]:
    """The marker fields of a chart or dashboard: certified by this kit, with the key prune reads."""
    return {
        "certified_by": MANAGER,
        "certification_details": key.marker,
        "is_managed_externally": True,
        "external_url": external_url(source),
    }
