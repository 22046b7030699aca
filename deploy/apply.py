"""Carry out a plan: exactly its changes. Creates and updates travel as one sparse import bundle
(one request, one transaction in Superset: all or nothing); deletes follow through the REST API,
dashboards before charts before datasets. An apply stopped during the deletes leaves the rest for
the next run, which plans them again (UUIDs are deterministic: nothing is ever duplicated).

Two things keep the word "all or nothing" true:
- a new tenant's database is imported on its own first: Superset's importer commits a database
  before the rest of its bundle, so a bundle cut short could leave a database behind alone;
- when an import fails or its answer is lost, Superset is read again and the message says what it
  holds: all of the changes (an answer lost after the work was done), none, or another apply's work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pfill.errors import ConflictError, PfillError

from .access import apply_access
from .bundle import build_bundle
from .client import SupersetClient, SupersetError
from .live import LiveState, read_live
from .plan import Change, Plan, diff_object

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
    upserts = [c for c in plan.pending if c.action != "delete" and c.kind != "role"]
    deletes = [c for c in plan.pending if c.action == "delete" and c.kind != "role"]
    roles = [c for c in plan.pending if c.kind == "role"]
    new_database = [c for c in upserts if c.kind == "database" and c.action == "create"]
    for batch in (new_database, [c for c in upserts if c not in new_database]):
        if batch:
            _import(client, plan, batch, result, progress)
    for number, change in enumerate(deletes, start=1):
        assert change.live is not None
        try:
            client.delete(f"/api/v1/{change.kind}/{change.live.id}", expect=(404,))
        except SupersetError as exc:
            raise ApplyError(
                f"{_so_far(result)}delete {change.kind} {change.name} failed: {exc}",
                hint=f"{number - 1} of {len(deletes)} deletions were done; run apply --prune again to finish",
            ) from exc
        progress(f"  delete {change.kind} {change.name}")
        result.done.append(change)
    for change in roles:  # after the import: the role grants what it created
        try:
            apply_access(client, plan, change)
        except SupersetError as exc:
            raise ApplyError(f"{_so_far(result)}{change.action} role {change.name} failed: {exc}",
                             hint="run apply again to finish") from exc
        progress(f"  {change.action} role {change.name}")
        result.done.append(change)
    result.writes = client.writes - writes_before
    return result


def _import(client: SupersetClient, plan: Plan, batch: list[Change], result: ApplyResult, progress: Progress) -> None:
    objects = [c.desired for c in batch if c.desired is not None]
    ids = {**plan.live.ids, **{c.uuid: c.live.id for c in result.done if c.live}}
    # sparse: references to objects already in Superset resolve by UUID (nothing to resolve when
    # the tenant is brand new, and then the importer can skip loading every mapping)
    sparse = "true" if plan.live.objects or result.done else "false"
    try:
        client.post(
            "/api/v1/assets/import/",
            files={"bundle": ("pfill_bundle.zip", build_bundle(plan.state, objects, ids), "application/zip")},
            data={"passwords": "{}", "sparse": sparse},  # passwords travel in the bundle, never logged
        )
    except SupersetError as exc:
        _after_failed_import(client, plan, batch, result, exc, progress)
    for change in batch:
        progress(f"  {change.action} {change.kind} {change.name}")
    result.done += batch


def _after_failed_import(client: SupersetClient, plan: Plan, batch: list[Change], result: ApplyResult,
                         exc: SupersetError, progress: Progress) -> None:
    """Read Superset again and say what it holds; return only when it holds the whole batch."""
    what = f"importing {len(batch)} creates and updates"
    try:
        live = read_live(client, plan.state)
    except SupersetError:
        raise ApplyError(
            f"{_so_far(result)}{what} got no answer ({exc}), and Superset does not answer now: whether "
            f"they were applied is unknown",
            hint="run `pfill plan` when Superset answers: it shows what is left, and apply finishes it",
        ) from exc
    ids = live.ids
    applied = [c for c in batch if c.desired and c.uuid in live.objects
               and not diff_object(c.desired, live.objects[c.uuid], ids)]
    untouched = [c for c in batch if c not in applied and _as_before(c, live)]
    if len(applied) == len(batch):
        cause = f"Superset answered {exc.status}" if exc.status else "its answer was lost"
        progress(f"  the import did not confirm ({cause}), but Superset holds all {len(batch)} changes "
                 f"(this apply's, or another's made meanwhile)")
        return
    if len(untouched) == len(batch):
        raise ApplyError(f"{_so_far(result)}{what} failed, so none of them was applied: {exc}",
                         hint="fix the cause and run apply again")
    neither = [f"{c.kind} {c.name}" for c in batch if c not in applied and c not in untouched]
    state = f"{plan.state.env.name}/{plan.state.tenant.name}"
    if neither:
        raise ApplyError(f"{_so_far(result)}{what} failed ({exc}); Superset now holds {', '.join(neither[:3])} "
                         f"neither as before nor as planned", hint="run `pfill plan` to see them, then apply again")
    raise ConflictError(
        f"{_so_far(result)}another apply changed {state} while this one ran: Superset holds {len(applied)} of the "
        f"{len(batch)} planned changes, each whole; nothing half-done; re-run",
        hint="run `pfill plan` to see what is left",
    )


def _as_before(change: Change, live: LiveState) -> bool:
    """The object is as the plan found it: still absent (a create), or with the fields it had (an update)."""
    if change.action == "create":
        return change.uuid not in live.objects
    assert change.live is not None
    current = live.objects.get(change.uuid)
    return current is not None and current.fields == change.live.fields


def _so_far(result: ApplyResult) -> str:
    return f"after {len(result.done)} change(s) applied, " if result.done else ""
