"""What apply checks before its first write, over the plans of every tenant at once: an apply either
passes all of these and writes, or writes nothing.

- conflicts: an object the kit does not own stands where one of its objects must go;
- viewers: a user named under a tenant's `viewers:` that Superset does not have;
- a prune that would delete every dashboard a tenant has (what a mistyped --dashboards folder
  looks like), unless asked for with --prune-all;
- dataset SQL the tenant's database refuses (a table that does not exist, a typo in a column),
  asked of the database the way Superset will, but returning no row.
"""

from __future__ import annotations

from pfill.dialects import wrap
from pfill.errors import PfillError

from .desired import DesiredObject
from .plan import Plan


class PreflightError(PfillError):
    """Apply stopped before writing anything."""


def check(plans: list[Plan], *, prune_all: bool = False, sql: bool = True) -> None:
    problems = [*conflicts(plans), *viewers(plans), *([] if prune_all else emptied(plans)),
                *(sql_problems(plans) if sql else [])]
    if not problems:
        return
    hints = {
        "conflict": "rename or delete the object in Superset (or deploy it under another tenant), then apply again",
        "viewer": "create the users in Superset first, or remove them from the tenant's viewers: in pfill.yaml",
        "empty": "check --dashboards; if every dashboard really goes, pass --prune-all",
        "sql": "fix the query (`pfill preview NAME --execute` runs it) or the database, then apply again",
    }
    kinds = sorted({kind for kind, _ in problems})
    first = problems[0][1] if len(problems) == 1 else f"{len(problems)} problems:\n  " + "\n  ".join(
        text for _, text in problems)
    raise PreflightError(f"nothing was written: {first}", hint="; ".join(hints[k] for k in kinds))


def conflicts(plans: list[Plan]) -> list[tuple[str, str]]:
    return [("conflict", text) for plan in plans for text in plan.conflicts]


def viewers(plans: list[Plan]) -> list[tuple[str, str]]:
    """Users named under a tenant's viewers: that Superset does not have (the role could not hold them)."""
    return [("viewer", f"viewers of {plan.state.env.name}/{plan.state.tenant.name} not found in Superset: "
                       f"{_some(plan.missing_viewers)}") for plan in plans if plan.missing_viewers]


def _some(names: list[str], shown: int = 3) -> str:
    """A few names, so that the line stays one a person can read however many there are."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def emptied(plans: list[Plan]) -> list[tuple[str, str]]:
    """Tenants whose every dashboard in Superset this prune would delete."""
    found = []
    for plan in plans:
        live = [o for o in plan.live.objects.values() if o.kind == "dashboard"]
        doomed = [c for c in plan.pending if c.action == "delete" and c.kind == "dashboard"]
        if live and len(doomed) == len(live):
            found.append(("empty", f"--prune would delete all {len(live)} dashboards of "
                                   f"{plan.state.env.name}/{plan.state.tenant.name}"))
    return found


def sql_problems(plans: list[Plan]) -> list[tuple[str, str]]:
    """Each created or changed dataset's SQL, run on its tenant's database with no row returned."""
    found = []
    for plan in plans:
        datasets = [c.desired for c in plan.pending
                    if c.kind == "dataset" and c.action != "delete" and c.desired and c.desired.query]
        if datasets:
            found += _refused(plan, datasets)
    return found


def _refused(plan: Plan, datasets: list[DesiredObject]) -> list[tuple[str, str]]:
    from sqlalchemy import text  # SQLAlchemy and sqlglot only when there is SQL to check
    from sqlglot import exp

    from pfill.database import first_line, open_database

    tenant, where = plan.state.tenant, f"{plan.state.env.name}/{plan.state.tenant.name}"
    try:
        conn = open_database(tenant.database_url, must_exist=True).connect()
    except PfillError as exc:
        raise PreflightError(
            f"nothing was written: cannot check the dataset SQL of {where}: {exc}",
            hint="apply runs new dataset SQL on the database first: run it where the database answers, "
                 "or pass --no-sql-check",
        ) from None
    found = []
    with conn:
        for desired in datasets:
            assert desired.query is not None
            sql = desired.query.render(tenant.dialect, tenant=tenant.name, schema=tenant.schema)
            probe = wrap(sql, tenant.dialect, lambda q: exp.select(exp.Star()).from_(q).where("1 = 0"),
                         "virtual_table")
            try:
                conn.execute(text(probe)).fetchall()
            except Exception as exc:  # each driver raises its own error classes
                conn.rollback()
                found.append(("sql", f"dataset {desired.name} of {where}: the database refuses its SQL: "
                                     f"{first_line(exc)}"))
    return found
