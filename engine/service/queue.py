"""Submission: a run is accepted when its Pending row is written; that row is the queue entry.

The queue holds at most `capacity` waiting runs (Pending, not yet claimed by an executor) over all
tenants and replicas. Counting and inserting happen under one lock: a threading lock within the
process, and a database lock across processes (PostgreSQL advisory lock, SQL Server application lock,
SQLite's write lock), so that concurrent submissions never overfill it. Like the original, a full
queue is waited on for up to `wait_seconds` before the submission is refused.
"""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from pfill.errors import PfillError

from .. import runs
from ..pipeline import RunOptions, submit_run

DEFAULT_CAPACITY = 64
DEFAULT_WAIT_SECONDS = 2.0
_LOCK_KEY = 0x7066696C6C  # "pfill": the advisory lock of the queue


class QueueFull(PfillError):
    def __init__(self, capacity: int) -> None:
        super().__init__(f"the run queue is full ({capacity} runs waiting)",
                         hint="retry after the Retry-After seconds")
        self.capacity = capacity


def lock_queue(conn: sa.Connection) -> None:
    """Hold the queue's database lock until the transaction ends."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    elif dialect == "mssql":
        conn.execute(sa.text("EXEC sp_getapplock @Resource = 'pfill-run-queue', @LockMode = 'Exclusive', "
                             "@LockOwner = 'Transaction'"))
    elif dialect == "sqlite":  # a write takes SQLite's one write lock, held to commit
        conn.execute(runs.H.update().where(sa.false()).values(status=runs.H.c.status))


class RunQueue:
    def __init__(self, engine: sa.Engine, capacity: int = DEFAULT_CAPACITY,
                 wait_seconds: float = DEFAULT_WAIT_SECONDS) -> None:
        self.engine, self.capacity, self.wait_seconds = engine, capacity, wait_seconds
        self._lock = threading.Lock()

    def depth(self) -> int:
        with self.engine.connect() as conn:
            return runs.count_queued(conn)

    def submit(self, options: RunOptions, requested_by: str | None = None) -> str:
        """Write the queued run; QueueFull when there is no room within wait_seconds, ConflictError
        (BR-8) when the tenant has an active run, UsageError/InputError for options no run can honour."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                with self._lock:
                    return submit_run(self.engine, options, queued=True, before_insert=self._room,
                                      requested_by=requested_by)
            except QueueFull:
                active = runs.active_run(self.engine, options.tenant)
                if active is not None:  # BR-8 refuses it whatever the room: 409 naming the run, not 503
                    raise runs.ActiveRunConflict(options.tenant, active) from None
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def _room(self, conn: sa.Connection) -> None:
        lock_queue(conn)
        if runs.count_queued(conn) >= self.capacity:
            raise QueueFull(self.capacity)
