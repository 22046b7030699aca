"""Helpers for the engine tests: run the real `pfill` in a subprocess and wait for conditions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from pfill.database import open_database

AS_OF = date(2025, 3, 3)
PFILL = str(Path(sys.executable).with_name("pfill"))


def pfill_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PFILL_TEST_")}
    env.update(PFILL_DB_URL=db_url, PFILL_TENANT="demo", PFILL_HEARTBEAT_SECONDS="0.5", **extra)
    return env


def start_run(db_url: str, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([PFILL, "run", "--as-of", AS_OF.isoformat(), *args], env=pfill_env(db_url, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_rows(url: str, table: sa.Table, run_id: str) -> list[tuple]:
    """A run's rows of an output table, sorted, without the run id (to compare two runs)."""
    keep = [c for c in table.c if c.name != "run_id"]
    with open_database(url).connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.select(*keep).where(table.c.run_id == run_id)))


def wait_for(predicate, timeout: float = 30.0, every: float = 0.1):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")
