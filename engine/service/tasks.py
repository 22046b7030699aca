"""The Celery side: the application (broker from `--broker`, pfill.yaml `service.broker_url`, or
Redis on 127.0.0.1:6379) and its one task, `pfill.execute_run(run_id)`, which claims the queued run
and executes it in the worker. The worker reads the engine database from its own settings (the same
--db / PFILL_DB_URL as the API replicas)."""

from __future__ import annotations

import functools
import os

import sqlalchemy as sa
from celery import Celery

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
TASK = "pfill.execute_run"
QUEUE = "pfill-runs"


def celery_app(broker_url: str) -> Celery:
    app = Celery("pfill", broker=broker_url)
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,  # a message is removed once its run is done; redelivery is a no-op (claimed)
        worker_prefetch_multiplier=1,  # a worker takes one run at a time per process
        task_ignore_result=True,  # the run history is the result
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        worker_hijack_root_logger=False,
    )

    @app.task(name=TASK)
    def execute_run(run_id: str) -> None:
        from .executors import execute_logged

        # the worker's node name, already name@host: celery@w1 for `--name w1`, pfill@<host>-<pid> by default
        execute_logged(_engine(), run_id, f"{execute_run.request.hostname} pid {os.getpid()}")

    return app


@functools.cache
def _engine() -> sa.Engine:
    """The worker process's engine database (its own settings: --db / PFILL_DB_URL), opened once."""
    from pfill.config import Settings

    from ..db import open_engine

    return open_engine(Settings.resolve().db_url, create=False)


def send(app: Celery, run_id: str) -> None:
    app.send_task(TASK, args=[run_id], queue=QUEUE, retry=False)
