"""What the pipeline steps share: the run's identity, its inputs, the typed outputs steps hand to each
other (state.py), counters, and helpers to write output rows (always stamped with run_id and tenant_id)."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import numpy as np
import sqlalchemy as sa

from . import schema
from .bulk import insert_columns
from .inputs import Inputs
from .solver import DEFAULT_STRATEGY
from .state import Allocation, Candidates, CashSlots, Pricing

WRITERS = 2  # writes in flight at once on a server database (its COPY work is the server's)
PART_ROWS = 200_000  # rows per transaction of a write there: a large table goes in parts side by side


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class RunContext:
    """One run: identity and options, the inputs, the step outputs, counters and rows written."""

    engine: sa.Engine
    run_id: str
    tenant: str
    scoring: str = "price"  # price | price_carry
    strategy: str = DEFAULT_STRATEGY
    as_of: date = field(default_factory=date.today)
    candidates_kept_per_loan: int = 5  # best pairs per loan the chosen pair's rank is looked up in first
    inputs: Inputs | None = None
    # step outputs (state.py), each None until its step has run
    cash: CashSlots | None = None  # cash_grid
    pricing: Pricing | None = None  # settle_price
    candidates: Candidates | None = None  # candidates
    allocation: Allocation | None = None  # allocation
    counters: dict[str, Any] = field(default_factory=dict)  # free-form summary, written to the run history
    rows_written: dict[str, int] = field(default_factory=dict)
    checkpoint: Callable[[], None] = lambda: None  # raises when the run was cancelled
    write_threads: int = WRITERS  # writes in flight at once on a server database
    _write_pool: ThreadPoolExecutor | None = field(default=None, repr=False)  # ... its threads, once it writes
    _writes: list[Future[None]] = field(default_factory=list, repr=False)  # ... and the writes in flight

    @property
    def as_of64(self) -> np.datetime64:
        return np.datetime64(self.as_of, "D")

    def write(self, table: sa.Table, columns: dict[str, Any]) -> int:
        """Bulk-insert output rows for this run. On SQLite (one writer at a time) in one transaction, now;
        on a server database on a writer thread, a large table in parts of PART_ROWS rows, each in its own
        transaction: the server works while this process goes on (`settle_writes` waits for them; the
        columns must not change until then)."""
        n = len(next(iter(columns.values()))) if columns else 0
        constants = {"run_id": self.run_id, "tenant_id": self.tenant}
        if self.engine.dialect.name == "sqlite":
            self._insert(table, columns, constants)
        else:
            if self._write_pool is None:
                self._write_pool = ThreadPoolExecutor(self.write_threads,
                                                      thread_name_prefix=f"pfill-write-{self.run_id[:8]}")
            for start in range(0, n, PART_ROWS):
                part = {k: v[start:start + PART_ROWS] for k, v in columns.items()}
                self._writes.append(self._write_pool.submit(self._insert, table, part, constants))
        self.rows_written[table.name] = self.rows_written.get(table.name, 0) + n
        return n

    def _insert(self, table: sa.Table, columns: dict[str, Any], constants: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            insert_columns(conn, table, columns, constants)

    def settle_writes(self) -> None:
        """Wait for the writes in flight; raise the first one's error."""
        writes, self._writes = self._writes, []
        errors = [e for e in (w.exception() for w in writes) if e is not None]
        if errors:
            raise errors[0]

    def close_writes(self) -> None:
        """Wait for the writes in flight, errors or not (a failing run must not leave a write behind its
        cleanup), and stop the writer threads."""
        for write in self._writes:
            write.exception()
        self._writes = []
        if self._write_pool is not None:
            self._write_pool.shutdown()
            self._write_pool = None

    def log(self, step: str, event: str, message: str, level: str = "INFO", **details: Any) -> None:
        write_log(self.engine, self.run_id, self.tenant, step, event, message, level, details)


def write_log(engine: sa.Engine, run_id: str, tenant: str, step: str, event: str, message: str,
              level: str = "INFO", details: dict[str, Any] | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(schema.pfill_powerfill_log.insert().values(
            run_id=run_id, tenant_id=tenant, logged_at=utcnow(), step=step, level=level, event=event,
            message=message[:4000], details_json=json.dumps(details, default=str) if details else None,
        ))
