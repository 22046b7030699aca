"""The plan: desired state against live state, as creates, updates (with a field-level diff) and
deletes, in the order apply carries them out. Reading it is what a reviewer does before apply."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from pfill.secrets import mask_url

from .desired import KINDS, DesiredObject, DesiredState, masked_uri
from .layout import METADATA_COMPARED
from .live import LiveObject, LiveState

JSON_FIELDS = ("params", "query_context", "position_json", "json_metadata", "extra")
SHOWN_DIFFS = 12  # per object; the rest are counted


@dataclass
class FieldDiff:
    path: str
    before: Any
    after: Any


@dataclass
class Change:
    action: str  # create, update, delete
    kind: str
    name: str
    uuid: str
    desired: DesiredObject | None = None
    live: LiveObject | None = None
    diffs: list[FieldDiff] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action, "kind": self.kind, "name": self.name, "uuid": self.uuid,
            "id": self.live.id if self.live else None,
            "diffs": [{"field": d.path, "before": d.before, "after": d.after} for d in self.diffs],
        }


@dataclass
class Plan:
    state: DesiredState
    live: LiveState
    changes: list[Change]
    conflicts: list[str]
    prune: bool
    missing_viewers: list[str] = field(default_factory=list)  # users named under viewers: that Superset lacks

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.action != "delete" or self.prune]

    def counts(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "delete": 0}
        for change in self.pending:
            counts[change.action] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.state.env.name,
            "tenant": self.state.tenant.name,
            "superset": mask_url(self.state.env.superset_url),
            "prune": self.prune,
            "summary": self.counts(),
            "unchanged": len(self.state.objects) - sum(c.action != "delete" and c.kind != "role" for c in self.changes),
            "changes": [c.as_dict() for c in self.changes],
            "conflicts": self.conflicts,
        }


def _normalise(name: str, value: Any) -> Any:
    if name in JSON_FIELDS and isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if name == "json_metadata" and isinstance(value, dict):
        value = {k: value.get(k) for k in METADATA_COMPARED}
    if name == "sqlalchemy_uri" and isinstance(value, str):
        value = masked_uri(value)
    if value == "":
        value = None
    return value


def _diff(path: str, before: Any, after: Any, out: list[FieldDiff]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            _diff(f"{path}.{key}", before.get(key), after.get(key), out)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (b, a) in enumerate(zip(before, after, strict=True)):
            _diff(f"{path}[{index}]", b, a, out)
    elif before != after:
        out.append(FieldDiff(path, before, after))


def diff_object(desired: DesiredObject, live: LiveObject, ids: dict[str, int]) -> list[FieldDiff]:
    payload = desired.payload(ids)
    diffs: list[FieldDiff] = []
    for name in desired.compared:
        _diff(name, _normalise(name, live.fields.get(name)), _normalise(name, payload.get(name)), diffs)
    return diffs


def make_plan(state: DesiredState, live: LiveState, prune: bool = False) -> Plan:
    ids = live.ids
    changes: list[Change] = []
    conflicts = [
        f"{other.kind} {other.name!r} (id {other.id}) already exists in Superset and is not managed by "
        f"pfill-kit for {state.env.name}/{state.tenant.name}; rename or delete it, then apply again"
        for other in live.others
    ]
    for kind in KINDS:
        for obj in state.by_kind(kind):
            current = live.objects.get(obj.uuid)
            if current is None:
                changes.append(Change("create", kind, obj.name, obj.uuid, desired=obj))
            elif diffs := diff_object(obj, current, ids):
                changes.append(Change("update", kind, obj.name, obj.uuid, desired=obj, live=current, diffs=diffs))
    desired = state.by_uuid()
    for kind in reversed(KINDS):
        for current in live.objects.values():
            if current.kind == kind and current.uuid not in desired:
                changes.append(Change("delete", kind, current.name, current.uuid, live=current))
    return Plan(state, live, changes, conflicts, prune)


def _short(value: Any, width: int = 70) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    text = text.replace("\\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def _render_diff(diff: FieldDiff, width: int = 70) -> list[str]:
    """One line per field; text that spans lines or runs long (a dataset's SQL) as a unified diff of
    the whole value, so a change at its end is as visible as one at its start."""
    before, after = diff.before, diff.after
    if isinstance(before, str) and isinstance(after, str) and ("\n" in before + after or
                                                              max(len(before), len(after)) > width):
        lines = difflib.unified_diff(before.splitlines(), after.splitlines(), "live", "specs", n=2, lineterm="")
        return [f"      {diff.path}:"] + [f"        {line}" for line in lines]
    return [f"      {diff.path}: {_short(before)} -> {_short(after)}"]


def render_plan(plan: Plan) -> str:
    state = plan.state
    lines = [f"Plan for {state.env.name}/{state.tenant.name} on {mask_url(state.env.superset_url)}"]
    symbols = {"create": "+", "update": "~", "delete": "-"}
    for change in plan.changes:
        note = "" if change.action != "delete" or plan.prune else "   (left alone: apply with --prune to delete)"
        lines.append(f"  {symbols[change.action]} {change.kind:<9} {change.name}{note}")
        for d in change.diffs[:SHOWN_DIFFS]:
            lines += _render_diff(d)
        if len(change.diffs) > SHOWN_DIFFS:
            lines.append(f"      ... and {len(change.diffs) - SHOWN_DIFFS} more field changes")
    for conflict in plan.conflicts:
        lines.append(f"  ! {conflict}")
    counts = plan.counts()
    if not plan.pending:
        lines.append(f"No changes: {len(state.objects)} objects match the specs.")
    else:
        lines.append(f"Plan: {counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete.")
    return "\n".join(lines)
