"""Executors: what takes queued runs and executes them.

- EmbeddedExecutor (the default): threads in the server, at most `concurrency` runs at a time (one
  per tenant, by BR-8). It polls the queue rows, so it also takes runs queued before a restart or
  by another replica.
- CeleryExecutor (`--executor celery`): sends each run id to `pfill worker`s over the broker, and
  sends again runs that waited long (a broker that lost its messages loses no run: the rows are the
  queue, and a second message for a run is a no-op, because claiming is a conditional update).
  "Long" is env PFILL_RESEND_SECONDS (default 30): every that many seconds, the runs queued for
  longer than that are sent again. A broker that cannot be reached fails a send at once (no
  connection retries, short socket timeouts), so POST /run still answers 202 without waiting on it.

Both run the sweep: active runs whose process stopped are failed ("abandoned: ... stopped") at
start-up and every few heartbeats after.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta
from typing import Protocol

import sqlalchemy as sa

from pfill.config import env_seconds
from pfill.errors import PfillError
from pfill.processes import release_free_memory

from .. import runs, schema
from ..context import utcnow
from ..pipeline import execute_queued

log = logging.getLogger("pfill.service")
DEFAULT_RESEND_SECONDS = 30.0
# the API side only publishes: a broker that is down must fail a send at once, not after kombu's
# connection retries (about 6 s per send), which would hold POST /run
FAIL_FAST_TRANSPORT = {"max_retries": 0, "socket_connect_timeout": 2, "socket_timeout": 5}


def worker_name(kind: str) -> str:
    return f"{kind}@{socket.gethostname()} pid {os.getpid()}"


def resend_seconds() -> float:
    """Seconds after which a queued run is sent to the broker again: env PFILL_RESEND_SECONDS, else 30."""
    return env_seconds("PFILL_RESEND_SECONDS", DEFAULT_RESEND_SECONDS, minimum=0.5)


def sweep_seconds() -> float:
    return min(30.0, max(1.0, runs.heartbeat_seconds() * 5))


def execute_logged(engine: sa.Engine, run_id: str, worker: str) -> None:
    """Execute a queued run; its outcome is in its row and log, so errors are only logged here."""
    try:
        result = execute_queued(engine, run_id, worker)
        if result is not None:
            log.info("run %s %s", run_id, result["status"])
    except PfillError as exc:
        log.warning("run %s: %s", run_id, exc)
    except Exception as exc:  # a bug must not kill the executor thread, nor leave the run active
        log.exception("run %s failed unexpectedly", run_id)
        _fail_if_still_ours(engine, run_id, exc)
    finally:
        release_free_memory()  # the run's arrays are gone: the process goes back to its idle size


def _fail_if_still_ours(engine: sa.Engine, run_id: str, exc: Exception) -> None:
    """A run this process claimed and could not finish is failed here: the sweep would take it for
    alive as long as this process lives."""
    try:
        run = runs.get_run(engine, run_id)
        if run["status"] in schema.ACTIVE_STATUSES and run["pid"] == os.getpid():
            runs.finish_run(engine, run_id, run["tenant_id"], "Failed", failure_step=run["current_step"],
                            failure_message=f"abandoned: the executor could not finish it ({type(exc).__name__})")
    except Exception:  # the database is gone too: the next start's sweep fails it
        log.exception("run %s could not be marked Failed", run_id)


class Executor(Protocol):
    name: str

    def start(self) -> None: ...

    def notify(self, run_id: str) -> None: ...

    def stop(self) -> None: ...


class _Background:
    """A daemon thread calling `tick` every `every` seconds, or sooner when woken."""

    def __init__(self, name: str, every: float) -> None:
        self.every = every
        self._wake, self._stopped = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def tick(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                self.tick()
            except Exception:  # the database may be briefly unreachable: try again next time
                log.exception("%s: tick failed", self._thread.name)
            self._wake.wait(self.every)
            self._wake.clear()

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=10)


class Sweeper(_Background):
    """Fails active runs whose process stopped (all tenants)."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__("pfill-sweep", sweep_seconds())
        self.engine = engine

    def tick(self) -> None:
        for run_id in runs.reconcile(self.engine):
            log.warning("run %s abandoned: marked Failed", run_id)


class EmbeddedExecutor(_Background):
    name = "embedded"

    def __init__(self, engine: sa.Engine, concurrency: int = 2, poll_seconds: float = 1.0,
                 drain_seconds: float = 10.0) -> None:
        super().__init__("pfill-dispatch", poll_seconds)
        self.engine, self.concurrency, self.drain_seconds = engine, concurrency, drain_seconds
        self.worker = worker_name("embedded")
        self._running: set[str] = set()
        self._guard = threading.Lock()
        self._sweeper = Sweeper(engine)

    def start(self) -> None:
        self._sweeper.tick()  # runs this server (or a dead one) left active are failed first
        self._sweeper.start()
        super().start()

    def notify(self, run_id: str) -> None:
        self.wake()

    def tick(self) -> None:
        with self._guard:
            free = self.concurrency - len(self._running)
        if free <= 0:
            return
        for run in runs.queued_runs(self.engine, limit=free + len(self._running)):
            with self._guard:
                if run["run_id"] in self._running or len(self._running) >= self.concurrency:
                    continue
                self._running.add(run["run_id"])
            # daemon threads: a stopping server does not wait for a run beyond drain_seconds
            threading.Thread(target=self._execute, args=(run["run_id"],), name=f"pfill-run-{run['run_id'][:8]}",
                             daemon=True).start()

    def _execute(self, run_id: str) -> None:
        try:
            execute_logged(self.engine, run_id, self.worker)
        finally:
            with self._guard:
                self._running.discard(run_id)
            self.wake()

    def stop(self) -> None:
        """Take no more runs; wait up to drain_seconds for those executing. A run still executing
        after that is failed as abandoned by the next start (or another replica's sweep)."""
        super().stop()
        self._sweeper.stop()
        deadline = time.monotonic() + self.drain_seconds
        while time.monotonic() < deadline:
            with self._guard:
                if not self._running:
                    return
            time.sleep(0.1)
        log.warning("stopping with %d run(s) still executing: they will be failed as abandoned", len(self._running))


class CeleryExecutor(_Background):
    name = "celery"

    def __init__(self, engine: sa.Engine, broker_url: str) -> None:
        self.resend_after = timedelta(seconds=resend_seconds())
        super().__init__("pfill-resend", self.resend_after.total_seconds())
        from .tasks import celery_app

        self.engine = engine
        self.app = celery_app(broker_url)
        self.app.conf.broker_transport_options = dict(FAIL_FAST_TRANSPORT)
        self._sweeper = Sweeper(engine)

    def start(self) -> None:
        self._sweeper.tick()
        self._sweeper.start()
        super().start()

    def notify(self, run_id: str) -> None:
        from .tasks import send

        try:
            send(self.app, run_id)
        except Exception as exc:  # the row is the queue: the resend pass sends it when the broker is back
            log.warning("run %s: could not reach the broker (%s); it stays queued", run_id, type(exc).__name__)

    def tick(self) -> None:
        """Send again the runs that have waited long (their message may be lost)."""
        from .tasks import send

        old = utcnow() - self.resend_after
        for run in runs.queued_runs(self.engine, limit=1000):
            if run["created_at"] < old:
                try:
                    send(self.app, run["run_id"])
                except Exception as exc:  # the broker is down: the next pass tries again
                    log.warning("resend: could not reach the broker (%s); runs stay queued", type(exc).__name__)
                    return

    def stop(self) -> None:
        super().stop()
        self._sweeper.stop()
