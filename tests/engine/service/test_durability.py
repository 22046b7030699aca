"""The run service's durability, on SQLite and PostgreSQL: a server killed with SIGKILL loses no
accepted run (the queued rows run after a restart, the one it was running is failed as abandoned),
and a graceful stop exits 0 at once. (One test: each server start costs seconds.)"""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from pfill.database import open_database
from pfill.engine import runs, schema
from pfill.engine.db import init_schema
from tests.engine.helpers import AS_OF, wait_for
from tests.engine.service.server import Server, add_tenant_inputs

RUN = {"as_of": AS_OF.isoformat(), "strategy": "greedy"}
TENANTS = ("t1", "t2", "t3")


def _active(db_url: str) -> list[str]:
    h = schema.pfill_run_history.c
    with open_database(db_url).connect() as conn:
        return list(conn.execute(sa.select(h.run_id).where(h.status.in_(schema.ACTIVE_STATUSES))).scalars())


def _user_facing_rows(db_url: str, run_id: str) -> int:
    with open_database(db_url).connect() as conn:
        return sum(conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.run_id == run_id)).scalar()
                   for t in schema.USER_FACING_OUTPUTS)


def test_kill_9_restart_then_graceful_stop(db_url: str, tmp_path: Path) -> None:
    engine = open_database(db_url)
    init_schema(engine)
    for seed, tenant in enumerate(TENANTS, start=30):
        add_tenant_inputs(db_url, tenant, seed=seed)
    home = tmp_path / "home"
    # one run at a time, held 30 s in allocation: the first tenant's run executes, the others wait
    first = Server(db_url, home, tenants=TENANTS, args=("--concurrency", "1"),
                   env={"PFILL_TEST_STEP_DELAY": "allocation=30"}).start()
    try:
        with first.client("t1") as api:
            running = api.post("/run", json=RUN).json()["run_id"]
        wait_for(lambda: runs.get_run(engine, running)["current_step"] == "allocation", timeout=30)
        waiting = []
        for tenant in TENANTS[1:]:
            with first.client(tenant) as api:
                accepted = api.post("/run", json=RUN)
                assert accepted.status_code == 202, accepted.text
                waiting.append(accepted.json()["run_id"])
        server_pid = first.proc.pid if first.proc else None
        assert runs.get_run(engine, running)["pid"] == server_pid
        for run_id in waiting:
            row = runs.get_run(engine, run_id)
            assert row["status"] == "Pending" and row["pid"] is None, row
    finally:
        first.kill()
    assert first.proc is not None and first.proc.returncode == -9
    # nothing ran the shutdown: the rows are as the killed server left them
    assert runs.get_run(engine, running)["status"] == "Allocating"
    assert sorted(_active(db_url)) == sorted([running, *waiting])

    second = Server(db_url, home, tenants=TENANTS).start()  # same database and tokens, no delay
    try:
        wait_for(lambda: not _active(db_url), timeout=60)
        abandoned = runs.get_run(engine, running)
        assert abandoned["status"] == "Failed", abandoned
        assert abandoned["failure_message"].startswith("abandoned:"), abandoned["failure_message"]
        assert f"pid {server_pid}" in abandoned["failure_message"]
        assert abandoned["failure_step"] == "allocation" and abandoned["completed_at"] is not None
        assert _user_facing_rows(db_url, running) == 0  # BR-9
        for run_id in waiting:
            done = runs.get_run(engine, run_id)
            assert done["status"] == "Complete", done
            assert second.proc is not None and done["pid"] == second.proc.pid  # executed after the restart
        with second.client("t1") as api:  # the API tells the same
            assert api.get(f"/runs/{running}").json()["status"] == "Failed"
        # a graceful stop (SIGTERM) with nothing running exits 0, at once
        assert second.proc is not None
        stopping = time.monotonic()
        second.stop()
        assert second.proc.returncode == 0, (second.proc.returncode, second.log())
        assert time.monotonic() - stopping < 10
        assert "Application shutdown complete" in second.log()
    finally:
        second.kill()
