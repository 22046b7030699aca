"""Carry out a plan: exactly its changes, in dependency order (database, datasets, charts,
dashboards; deletes in reverse). Ids of objects created on the way feed the payloads after them.

An apply that stops half-way leaves objects with their deterministic UUIDs; the next plan finds
them and finishes the job (no duplicates)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pfill.errors import PfillError

from .client import SupersetClient, SupersetError
from .desired import TEMPORAL, DesiredObject
from .plan import Change, Plan

Progress = Callable[[str], None]
# fields POST accepts for a first version of each object; the rest follow in a PUT
DATASET_POST = ("table_name", "sql", "schema", "is_managed_externally", "external_url")
DASHBOARD_POST = ("dashboard_title", "slug", "published", "certified_by", "certification_details",
                  "is_managed_externally", "external_url")


class ApplyError(PfillError):
    pass


@dataclass
class ApplyResult:
    done: list[Change] = field(default_factory=list)
    writes: int = 0


def _api(kind: str) -> str:
    return f"/api/v1/{kind}/"


def sync_dataset_columns(client: SupersetClient, dataset_id: int, desired: DesiredObject) -> None:
    """Re-read the columns from the SQL, then mark temporal ones and copy the declared descriptions,
    so charts can use them on a time axis and people see what each column means."""
    client.put(f"/api/v1/dataset/{dataset_id}/refresh")
    assert desired.query is not None
    declared = {c.name: c for c in desired.query.columns}
    columns = client.get(f"/api/v1/dataset/{dataset_id}")["result"]["columns"]
    updated = []
    for column in columns:
        spec = declared.get(column["column_name"])
        entry = {k: column.get(k) for k in ("id", "column_name", "type", "expression", "filterable", "groupby")}
        entry["is_dttm"] = bool(spec and spec.type in TEMPORAL) or bool(column.get("is_dttm"))
        entry["description"] = spec.description if spec else column.get("description")
        updated.append(entry)
    client.put(f"/api/v1/dataset/{dataset_id}", json={"columns": updated})


def _create(client: SupersetClient, obj: DesiredObject, payload: dict[str, Any], ids: dict[str, int]) -> int:
    body = {**payload, **obj.create_only}
    if obj.kind == "dataset":
        first = {k: payload[k] for k in DATASET_POST} | {"database": payload["database_id"], **obj.create_only}
        new_id = client.post(_api("dataset"), json=first)["id"]
        client.put(f"/api/v1/dataset/{new_id}", json={k: v for k, v in payload.items() if k != "sql"})
        sync_dataset_columns(client, new_id, obj)
        return new_id
    if obj.kind == "dashboard":
        first = {k: payload[k] for k in DASHBOARD_POST} | obj.create_only
        new_id = client.post(_api("dashboard"), json=first)["id"]
        ids[obj.uuid] = new_id
        client.put(f"/api/v1/dashboard/{new_id}", json=obj.payload(ids))
        return new_id
    return client.post(_api(obj.kind), json=body)["id"]


def _update(client: SupersetClient, change: Change, payload: dict[str, Any]) -> None:
    assert change.live is not None and change.desired is not None
    object_id = change.live.id
    if change.kind == "dataset":
        sql_changed = any(d.path == "sql" for d in change.diffs)
        client.put(f"/api/v1/dataset/{object_id}", json=payload)
        if sql_changed:
            sync_dataset_columns(client, object_id, change.desired)
        return
    client.put(f"/api/v1/{change.kind}/{object_id}", json=payload)


def apply_plan(client: SupersetClient, plan: Plan, progress: Progress) -> ApplyResult:
    if plan.conflicts:
        raise ApplyError("the plan has conflicts; nothing was written:\n  " + "\n  ".join(plan.conflicts))
    ids = dict(plan.live.ids)
    result = ApplyResult()
    writes_before = client.writes
    pending = plan.pending
    for number, change in enumerate(pending, start=1):
        label = f"[{number}/{len(pending)}] {change.action} {change.kind} {change.name}"
        try:
            if change.action == "delete":
                assert change.live is not None
                client.delete(f"/api/v1/{change.kind}/{change.live.id}")
                ids.pop(change.uuid, None)
            else:
                assert change.desired is not None
                payload = change.desired.payload(ids)
                if change.action == "create":
                    ids[change.uuid] = _create(client, change.desired, payload, ids)
                else:
                    _update(client, change, payload)
        except SupersetError as exc:
            raise ApplyError(
                f"{label} failed: {exc}",
                hint=f"{len(result.done)} of {len(pending)} changes were applied; fix the cause and run "
                "apply again: it continues from where it stopped",
            ) from exc
        progress(f"  {label}")
        result.done.append(change)
    result.writes = client.writes - writes_before
    return result
