"""Carry out a plan: exactly its changes. Creates and updates travel as one sparse import bundle
(one request, one transaction in Superset: all or nothing); deletes follow through the REST API,
dashboards before charts before datasets. An apply stopped during the deletes leaves the rest for
the next run, which plans them again (UUIDs are deterministic: nothing is ever duplicated)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pfill.errors import PfillError

from .bundle import build_bundle
from .client import SupersetClient, SupersetError
from .plan import Change, Plan

Progress = Callable[[str], None]


class ApplyError(PfillError):
    pass


@dataclass
class ApplyResult:
    done: list[Change] = field(default_factory=list)
    writes: int = 0


def apply_plan(client: SupersetClient, plan: Plan, progress: Progress) -> ApplyResult:
    if plan.conflicts:
        raise ApplyError("the plan has conflicts; nothing was written:\n  " + "\n  ".join(plan.conflicts))
    result = ApplyResult()
    writes_before = client.writes
    upserts = [c for c in plan.pending if c.action != "delete"]
    deletes = [c for c in plan.pending if c.action == "delete"]
    if upserts:
        objects = [c.desired for c in upserts if c.desired is not None]
        bundle = build_bundle(plan.state, objects, plan.live.ids)
        # sparse: references to objects already in Superset resolve by UUID (nothing to resolve when
        # the tenant is brand new, and then the importer can skip loading every mapping)
        sparse = "true" if plan.live.objects else "false"
        try:
            client.post(
                "/api/v1/assets/import/",
                files={"bundle": ("pfill_bundle.zip", bundle, "application/zip")},
                data={"passwords": "{}", "sparse": sparse},  # passwords travel in the bundle, never logged
            )
        except SupersetError as exc:
            raise ApplyError(
                f"importing {len(upserts)} creates and updates failed, so none of them was applied: {exc}",
                hint="fix the cause and run apply again",
            ) from exc
        for change in upserts:
            progress(f"  {change.action} {change.kind} {change.name}")
        result.done += upserts
    for number, change in enumerate(deletes, start=1):
        assert change.live is not None
        try:
            client.delete(f"/api/v1/{change.kind}/{change.live.id}", expect=(404,))
        except SupersetError as exc:
            raise ApplyError(
                f"delete {change.kind} {change.name} failed: {exc}",
                hint=f"{number - 1} of {len(deletes)} deletions were done; run apply --prune again to finish",
            ) from exc
        progress(f"  delete {change.kind} {change.name}")
        result.done.append(change)
    result.writes = client.writes - writes_before
    return result
