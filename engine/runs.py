"""The run lifecycle: start (BR-8), status changes, heartbeat, cancel, reconcile, BR-9 cleanup, retention, purge.

Every change is its own short transaction, so other processes (`pfill runs list`, `runs cancel`)
see it at once. The database enforces one active run per tenant with a partial unique index; the
insert that would break it is reported as ConflictError (exit 3).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from pfill.config import env_int, env_seconds
from pfill.errors import ConfigError, ConflictError, PfillError
from pfill.processes import pid_alive

from . import schema
from .context import utcnow, write_log

H = schema.pfill_run_history
DEFAULT_KEEP_RUNS = 10
DEFAULT_HEARTBEAT_SECONDS = 2.0
DEFAULT_STALE_SECONDS = 60.0


def default_keep_runs() -> int:
    """Runs kept per tenant when no number is given: env PFILL_KEEP_RUNS, else DEFAULT_KEEP_RUNS.
    0, a negative number or text is a ConfigError naming the variable (it would delete every run)."""
    return check_keep(env_int("PFILL_KEEP_RUNS", DEFAULT_KEEP_RUNS, minimum=-(2**63)), "PFILL_KEEP_RUNS")


def check_keep(keep: object, where: str = "keep_runs") -> int:
    """Retention's `keep`: a whole number of at least 1 (the run just finished is always kept)."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ConfigError(f"{where}={keep!r} would delete earlier runs: keep at least 1",
                          hint=f"the default keeps {DEFAULT_KEEP_RUNS} runs per tenant (PFILL_KEEP_RUNS, --keep)")
    return keep


def heartbeat_seconds() -> float:
    """Seconds between heartbeats: env PFILL_HEARTBEAT_SECONDS, else 2 (read when used, not on import)."""
    return env_seconds("PFILL_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_SECONDS, minimum=0.05)


def stale_seconds() -> float:
    """Seconds without a heartbeat after which another host's run counts as dead: PFILL_STALE_SECONDS, else 60."""
    return env_seconds("PFILL_STALE_SECONDS", DEFAULT_STALE_SECONDS, minimum=1.0)


class RunCancelled(Exception):
    """Raised inside the pipeline when a cancel was requested."""


class RunNotFound(PfillError):
    pass


def _host() -> str:
    return socket.gethostname()[:128]


def default_requester() -> str:
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return f"{user}@{_host()}"[:128]


def create_run(engine: sa.Engine, tenant: str, scoring: str, options: dict[str, Any], *,
               loan_ids: list[str] | None = None, queued: bool = False,
               before_insert: Callable[[sa.Connection], None] | None = None, requested_by: str | None = None) -> str:
    """Insert a Pending run; ConflictError when the tenant already has an active run (BR-8).

    A run executed by this process at once is claimed at insert (its pid and host). A `queued` run
    waits with no pid until an executor claims it (`claim_run`); the row is the queue entry, so a
    restart loses nothing. `before_insert(conn)` runs in the insert's transaction (the service's
    queue-capacity check)."""
    run_id = str(uuid.uuid4())
    for attempt in range(3):
        now = utcnow()
        try:
            with engine.begin() as conn:
                if before_insert is not None:
                    before_insert(conn)
                conn.execute(H.insert().values(
                    run_id=run_id, tenant_id=tenant, status="Pending", scoring=scoring,
                    requested_by=requested_by or default_requester(),
                    options_json=json.dumps(options, default=str), created_at=now, heartbeat_at=now,
                    input_loan_ids_json=json.dumps(loan_ids) if loan_ids is not None else None,
                    pid=None if queued else os.getpid(), host=None if queued else _host(),
                ))
            break
        except sa.exc.IntegrityError:
            active = active_run(engine, tenant)
            if active is None and attempt < 2:  # it ended between the insert and this read: no conflict now
                continue
            raise ActiveRunConflict(tenant, active) from None
    write_log(engine, run_id, tenant, "run", "status", "run queued (Pending)" if queued else "run requested (Pending)",
              details=options)
    return run_id


class ActiveRunConflict(ConflictError):
    """BR-8: the tenant already has an active run (`active`: its row, when it could be read)."""

    def __init__(self, tenant: str, active: dict[str, Any] | None) -> None:
        self.active = active
        which = f" ({active['run_id']}, {active['status']})" if active else ""
        queued = bool(active) and active["status"] == "Pending" and active["pid"] is None
        super().__init__(f"a run is already {'queued' if queued else 'active'} for tenant {tenant}{which}",
                         hint="it waits for the run service's executor; `pfill runs cancel ID` removes it" if queued
                         else "wait for it, or `pfill runs cancel ID`; "
                              "a crashed run is cleared by `pfill runs reconcile`")


def claim_run(engine: sa.Engine, run_id: str, worker: str) -> bool:
    """Take a queued run for this process; False when it is not queued any more (another executor
    claimed it, or it was cancelled). The conditional update makes each run execute exactly once,
    however many executors race for it."""
    now = utcnow()
    with engine.begin() as conn:
        claimed = conn.execute(H.update().where(H.c.run_id == run_id, H.c.status == "Pending", H.c.pid.is_(None))
                               .values(pid=os.getpid(), host=_host(), heartbeat_at=now)).rowcount == 1
        tenant = conn.execute(sa.select(H.c.tenant_id).where(H.c.run_id == run_id)).scalar()
    if claimed:
        write_log(engine, run_id, tenant, "run", "claim", f"claimed by worker {worker}", details={"worker": worker})
    return claimed


def queued_runs(engine: sa.Engine, limit: int = 100) -> list[dict[str, Any]]:
    """Runs waiting for an executor, oldest first."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(H.c.run_id, H.c.tenant_id, H.c.created_at)
            .where(H.c.status == "Pending", H.c.pid.is_(None)).order_by(H.c.created_at, H.c.run_id).limit(limit)
        ).mappings()]


def count_queued(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(H)
                        .where(H.c.status == "Pending", H.c.pid.is_(None))).scalar() or 0


def update_run(engine: sa.Engine, run_id: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(H.update().where(H.c.run_id == run_id).values(**values))


def get_run(engine: sa.Engine, run_id: str) -> dict[str, Any]:
    if "\x00" in run_id:  # no run has one, and PostgreSQL refuses a NUL in a query (ValueError)
        raise RunNotFound(f"no run {run_id!r}")
    with engine.connect() as conn:
        row = conn.execute(sa.select(H).where(H.c.run_id == run_id)).mappings().first()
    if row is None:
        raise RunNotFound(f"no run {run_id}")
    return dict(row)


def latest_run(engine: sa.Engine, tenant: str, status: str | None = None) -> dict[str, Any] | None:
    query = sa.select(H).where(H.c.tenant_id == tenant)
    if status:
        query = query.where(H.c.status == status)
    with engine.connect() as conn:
        row = conn.execute(query.order_by(H.c.created_at.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


def active_run(engine: sa.Engine, tenant: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(H).where(H.c.tenant_id == tenant, H.c.status.in_(schema.ACTIVE_STATUSES))
                           ).mappings().first()
    return dict(row) if row else None


def list_runs(engine: sa.Engine, tenant: str | None, limit: int = 20) -> list[dict[str, Any]]:
    query = sa.select(H).order_by(H.c.created_at.desc()).limit(limit)
    if tenant:
        query = query.where(H.c.tenant_id == tenant)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def cancel_requested(engine: sa.Engine, run_id: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.select(H.c.cancel_requested_at).where(H.c.run_id == run_id)).scalar() is not None


def cancel_checkpoint(engine: sa.Engine, run_id: str) -> Callable[[], None]:
    """A run's checkpoint: raises RunCancelled once a cancel was requested."""
    def checkpoint() -> None:
        if cancel_requested(engine, run_id):
            raise RunCancelled()

    return checkpoint


def request_cancel(engine: sa.Engine, run_id: str) -> dict[str, Any]:
    """Ask an active run to stop; it ends Cancelled at its next step boundary (or sooner). A queued
    run that no executor has claimed ends Cancelled at once."""
    run = get_run(engine, run_id)
    if run["status"] not in schema.ACTIVE_STATUSES:
        raise PfillError(f"run {run_id} is {run['status']}: only an active run can be cancelled")
    now = utcnow()
    with engine.begin() as conn:
        unclaimed = conn.execute(H.update().where(H.c.run_id == run_id, H.c.status == "Pending", H.c.pid.is_(None))
                                 .values(status="Cancelled", cancel_requested_at=now, completed_at=now,
                                         failure_message="cancelled before it started")).rowcount == 1
    if unclaimed:
        write_log(engine, run_id, run["tenant_id"], "run", "status", "run Cancelled before it started", level="WARN")
        return get_run(engine, run_id)
    update_run(engine, run_id, cancel_requested_at=now)
    write_log(engine, run_id, run["tenant_id"], "run", "cancel", "cancel requested")
    run = get_run(engine, run_id)
    if run["status"] in schema.ACTIVE_STATUSES and not _process_alive(run):  # nobody is left to honour it
        finish_run(engine, run_id, run["tenant_id"], "Cancelled", failure_step=run["current_step"],
                   failure_message="cancelled (the running process was gone)")
    return get_run(engine, run_id)


def remove_user_facing_rows(engine: sa.Engine, run_id: str) -> None:
    """BR-9: a Failed or Cancelled run loses its user-facing rows; synthetic rows and the log stay."""
    with engine.begin() as conn:
        for table in schema.USER_FACING_OUTPUTS:
            conn.execute(table.delete().where(table.c.run_id == run_id))


def finish_run(engine: sa.Engine, run_id: str, tenant: str, status: str, **values: Any) -> None:
    """Move a run to a terminal status (Failed/Cancelled also get the BR-9 cleanup)."""
    if status in ("Failed", "Cancelled"):
        remove_user_facing_rows(engine, run_id)
    now = utcnow()
    run = get_run(engine, run_id)
    duration = (now - run["started_at"]).total_seconds() if run["started_at"] else None
    update_run(engine, run_id, status=status, completed_at=now, duration_seconds=duration, **values)
    level = "INFO" if status == "Complete" else "WARN" if status == "Cancelled" else "ERROR"
    message = f"run {status}" + (f": {values['failure_message']}" if values.get("failure_message") else "")
    write_log(engine, run_id, tenant, "run", "status", message, level=level)


def _process_alive(run: dict[str, Any]) -> bool:
    """True when the run's process is known to be alive (same host, pid answers). Other hosts: by heartbeat."""
    if run.get("host") == _host() and run.get("pid"):
        return pid_alive(int(run["pid"]))
    beat = run.get("heartbeat_at")
    return beat is not None and utcnow() - beat < timedelta(seconds=stale_seconds())


def reconcile(engine: sa.Engine, tenant: str | None = None) -> list[str]:
    """Mark active runs whose process stopped as Failed ("abandoned: ... stopped"); a live run and a
    queued run (no process yet: it waits for an executor) are never touched. Returns their ids."""
    query = sa.select(H).where(H.c.status.in_(schema.ACTIVE_STATUSES), H.c.pid.is_not(None))
    if tenant:
        query = query.where(H.c.tenant_id == tenant)
    with engine.connect() as conn:
        runs = [dict(r) for r in conn.execute(query).mappings()]
    done = []
    for run in runs:
        if run["pid"] == os.getpid() and run["host"] == _host():
            continue
        if not _process_alive(run):
            finish_run(engine, run["run_id"], run["tenant_id"], "Failed", failure_step=run["current_step"],
                       failure_message=f"abandoned: the process running it (pid {run['pid']} on {run['host']}) "
                                       "stopped")
            done.append(run["run_id"])
    return done


def run_document(run: dict[str, Any]) -> dict[str, Any]:
    """The JSON document of a run (`pfill run --json`, `pfill runs show --json`, the HTTP service): the
    run-history columns, each `*_json` column decoded under its name without the suffix (None when
    empty); other values as they are (datetimes stay datetimes, for emit_json to format)."""
    out: dict[str, Any] = {}
    for key, value in run.items():
        if key.endswith("_json"):
            out[key.removesuffix("_json")] = json.loads(value) if value else None
        else:
            out[key] = value
    return out


def _old_runs(conn: sa.Connection, tenant: str, keep: int) -> list[tuple[str, Any]]:
    """(run_id, output_removed_at) of the tenant's terminal runs beyond the newest `keep`, oldest last,
    never the newest Complete run (the dashboards show it, however many Failed runs came after it)."""
    rows = conn.execute(sa.select(H.c.run_id, H.c.status, H.c.output_removed_at)
                        .where(H.c.tenant_id == tenant, H.c.status.in_(schema.TERMINAL_STATUSES))
                        .order_by(H.c.created_at.desc(), H.c.run_id)).all()
    newest_complete = next((run_id for run_id, status, _ in rows if status == "Complete"), None)
    return [(run_id, removed) for run_id, _, removed in rows[keep:] if run_id != newest_complete]


def _delete_rows(conn: sa.Connection, tables: tuple[sa.Table, ...], run_ids: list[str]) -> None:
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start:start + 500]
        for table in tables:
            conn.execute(table.delete().where(table.c.run_id.in_(chunk)))


def apply_retention(engine: sa.Engine, tenant: str, keep: int) -> list[str]:
    """Keep the output of the tenant's newest `keep` runs: older terminal runs lose their user-facing
    rows (as BR-9 does for a Failed run) and get output_removed_at; their run-history row, log and
    synthetic rows stay, for forensics (`pfill runs purge` deletes runs entirely). Returns the runs
    whose output this pass removed; a run already done by an earlier pass is skipped.

    `keep` must be at least 1, and the newest Complete run is never touched, whatever `keep` and
    however many Failed or Cancelled runs came after it: the dashboards show it."""
    keep = check_keep(keep)
    with engine.begin() as conn:
        old = [run_id for run_id, removed in _old_runs(conn, tenant, keep) if removed is None]
        _delete_rows(conn, schema.USER_FACING_OUTPUTS, old)
        now = utcnow()
        for start in range(0, len(old), 500):
            conn.execute(H.update().where(H.c.run_id.in_(old[start:start + 500])).values(output_removed_at=now))
    return old


def purge_runs(engine: sa.Engine, tenant: str | None, keep: int) -> list[str]:
    """`pfill runs purge`: delete the tenant's terminal runs beyond the newest `keep` entirely: their
    run-history row, user-facing, synthetic and log rows (tenant None: every tenant, `keep` each).
    Active runs and the newest Complete run are never purged; `keep` is at least 1 (check_keep).
    Returns the purged run ids."""
    keep = check_keep(keep)
    purged: list[str] = []
    with engine.begin() as conn:
        tenants = [tenant] if tenant is not None else list(
            conn.execute(sa.select(H.c.tenant_id).distinct().order_by(H.c.tenant_id)).scalars())
        for name in tenants:
            old = [run_id for run_id, _ in _old_runs(conn, name, keep)]
            _delete_rows(conn, (*schema.USER_FACING_OUTPUTS, *schema.FORENSIC_OUTPUTS, H), old)
            purged += old
    return purged


class Heartbeat:
    """A daemon thread that stamps heartbeat_at while the run is alive."""

    def __init__(self, engine: sa.Engine, run_id: str, every: float | None = None) -> None:
        self.engine, self.run_id = engine, run_id
        self.every = heartbeat_seconds() if every is None else every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id[:8]}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            # a busy database must not kill the run; the next beat retries
            with contextlib.suppress(Exception):
                update_run(self.engine, self.run_id, heartbeat_at=utcnow())

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def page_runs(engine: sa.Engine, tenant: str, limit: int, *, after: tuple[Any, str] | None = None,
              status: str | None = None) -> list[dict[str, Any]]:
    """A page of the tenant's runs, newest first by (created_at, run_id); `after`: the last of the
    previous page, so that runs added meanwhile never shift a page (keyset pagination)."""
    query = sa.select(H).where(H.c.tenant_id == tenant)
    if status:
        query = query.where(H.c.status == status)
    if after is not None:
        created, run_id = after
        query = query.where(sa.or_(H.c.created_at < created, sa.and_(H.c.created_at == created, H.c.run_id < run_id)))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query.order_by(H.c.created_at.desc(), H.c.run_id.desc()).limit(limit))
                .mappings()]


def latest_complete_run(engine: sa.Engine, tenant: str) -> dict[str, Any] | None:
    """The run the reports show by default: the tenant's Complete run that completed last (the
    queries' `latest_complete_run()` macro orders the same way)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(H).where(H.c.tenant_id == tenant, H.c.status == "Complete")
                           .order_by(H.c.completed_at.desc(), H.c.run_id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None
