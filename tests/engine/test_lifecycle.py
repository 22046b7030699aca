"""Run lifecycle on SQLite and PostgreSQL: BR-8 conflicts, SIGKILL + reconcile, cancel from another
process, failures that leave the last Complete run intact, BR-9 cleanup and retention (which keeps
old runs' history, log and synthetic rows)."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import sqlalchemy as sa

from pfill.database import open_database
from pfill.engine import runs, schema
from pfill.engine.pipeline import RunFailed, RunOptions, execute_run
from pfill.errors import ConflictError
from tests.engine.helpers import AS_OF, PFILL, pfill_env, start_run, wait_for

OPTIONS = RunOptions(tenant="demo", as_of=AS_OF)


def _count(url: str, table: sa.Table, run_id: str) -> int:
    with open_database(url).connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(table.c.run_id == run_id)).scalar()


def _active(url: str) -> dict | None:
    return runs.active_run(open_database(url), "demo")


def _in_step(url: str, status: str) -> dict | None:
    run = _active(url)
    return run if run and run["status"] == status else None


def test_partial_unique_index_allows_one_active_run_per_tenant(demo_db: str) -> None:
    engine = open_database(demo_db)
    first = runs.create_run(engine, "demo", "price", {})
    with pytest.raises(ConflictError, match="already active for tenant demo"):
        runs.create_run(engine, "demo", "price", {})
    runs.create_run(engine, "other", "price", {})  # another tenant is independent
    runs.finish_run(engine, first, "demo", "Failed", failure_message="test")
    runs.create_run(engine, "demo", "price", {})  # terminal runs do not block


def test_concurrent_runs_exactly_one_proceeds(demo_db: str) -> None:
    proc = start_run(demo_db, PFILL_TEST_STEP_DELAY="candidates=3")
    try:
        wait_for(lambda: _active(demo_db))
        with pytest.raises(ConflictError) as info:
            execute_run(open_database(demo_db), OPTIONS)
        assert info.value.exit_code == 3
        second = subprocess.run([PFILL, "run", "--as-of", AS_OF.isoformat()], env=pfill_env(demo_db),
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 3 and "already active" in second.stderr
    finally:
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    statuses = [r["status"] for r in runs.list_runs(open_database(demo_db), "demo")]
    assert statuses == ["Complete"]


def test_killed_run_is_reconciled_to_failed(demo_db: str) -> None:
    engine = open_database(demo_db)
    proc = start_run(demo_db, PFILL_TEST_STEP_DELAY="allocation=30")
    # the status is Allocating from the candidates step on: wait for the delayed step itself
    run = wait_for(lambda: (r := _in_step(demo_db, "Allocating")) and r["current_step"] == "allocation" and r)
    assert runs.reconcile(engine, "demo") == []  # a live run is never reconciled
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    reconciled = subprocess.run([PFILL, "runs", "reconcile"], env=pfill_env(demo_db), capture_output=True,
                                text=True, timeout=60)
    assert reconciled.returncode == 0, reconciled.stderr
    dead = runs.get_run(engine, run["run_id"])
    assert dead["status"] == "Failed" and dead["failure_message"].startswith("abandoned: ")
    assert dead["failure_step"] == "allocation"
    assert execute_run(engine, OPTIONS)["status"] == "Complete"  # BR-8 no longer blocked


def test_next_run_reconciles_a_killed_run(demo_db: str) -> None:
    proc = start_run(demo_db, PFILL_TEST_STEP_DELAY="cash_grid=30")
    run = wait_for(lambda: _in_step(demo_db, "PreProcessing"))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    engine = open_database(demo_db)
    assert execute_run(engine, OPTIONS)["status"] == "Complete"
    assert runs.get_run(engine, run["run_id"])["status"] == "Failed"


def test_cancel_from_another_process(demo_db: str) -> None:
    engine = open_database(demo_db)
    previous = execute_run(engine, OPTIONS)
    proc = start_run(demo_db, PFILL_TEST_STEP_DELAY="pool_guide=30")
    run = wait_for(lambda: _in_step(demo_db, "PostProcessing"))
    cancel = subprocess.run([PFILL, "runs", "cancel", run["run_id"]], env=pfill_env(demo_db),
                            capture_output=True, text=True, timeout=60)
    assert cancel.returncode == 0, cancel.stderr
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "cancelled" in err
    cancelled = runs.get_run(engine, run["run_id"])
    assert cancelled["status"] == "Cancelled" and cancelled["completed_at"] is not None
    for table in schema.USER_FACING_OUTPUTS:  # BR-9, and the previous run is untouched
        assert _count(demo_db, table, run["run_id"]) == 0
    assert _count(demo_db, schema.pfill_powerfill_guide, previous["run_id"]) == previous["allocated_loan_count"]
    assert _count(demo_db, schema.pfill_powerfill_log, run["run_id"]) > 0


def test_failed_run_keeps_previous_complete_output(demo_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = open_database(demo_db)
    previous = execute_run(engine, OPTIONS)
    before = {t.name: _count(demo_db, t, previous["run_id"]) for t in schema.OUTPUT_TABLES}
    monkeypatch.setenv("PFILL_TEST_FAIL_STEP", "finish")
    with pytest.raises(RunFailed, match="injected failure"):
        execute_run(engine, OPTIONS)
    failed = runs.latest_run(engine, "demo")
    assert failed["status"] == "Failed" and failed["failure_step"] == "finish"
    assert "injected failure" in failed["failure_message"]
    # BR-9: user-facing rows removed; synthetic rows and the log kept
    for table in schema.USER_FACING_OUTPUTS:
        assert _count(demo_db, table, failed["run_id"]) == 0
    for table in schema.FORENSIC_OUTPUTS:
        assert _count(demo_db, table, failed["run_id"]) > 0
    after = {t.name: _count(demo_db, t, previous["run_id"]) for t in schema.OUTPUT_TABLES}
    assert after == before
    assert runs.latest_run(engine, "demo", "Complete")["run_id"] == previous["run_id"]


def test_step_failure_is_recorded(demo_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFILL_TEST_FAIL_STEP", "candidates")
    with pytest.raises(RunFailed):
        execute_run(open_database(demo_db), OPTIONS)
    failed = runs.latest_run(open_database(demo_db), "demo")
    assert (failed["status"], failed["failure_step"]) == ("Failed", "candidates")


def test_retention_keeps_last_k_runs_output_and_every_runs_forensics(demo_db: str) -> None:
    engine = open_database(demo_db)
    ids = [execute_run(engine, RunOptions(tenant="demo", as_of=AS_OF, keep_runs=2))["run_id"] for _ in range(3)]
    assert [r["run_id"] for r in runs.list_runs(engine, "demo")] == ids[::-1]  # every run-history row stays
    for table in schema.USER_FACING_OUTPUTS:  # the oldest run's output is gone...
        assert _count(demo_db, table, ids[0]) == 0
    for table in schema.FORENSIC_OUTPUTS:  # ...its synthetic rows and log stay, for forensics
        assert _count(demo_db, table, ids[0]) > 0
    removed_at = runs.get_run(engine, ids[0])["output_removed_at"]
    assert removed_at is not None
    for run_id in ids[1:]:
        assert runs.get_run(engine, run_id)["output_removed_at"] is None
        assert _count(demo_db, schema.pfill_pool_guide, run_id) > 0
    # a later pass removes the next run's output and skips the one already done
    assert runs.apply_retention(engine, "demo", 1) == [ids[1]]
    assert runs.get_run(engine, ids[0])["output_removed_at"] == removed_at
    assert runs.apply_retention(engine, "demo", 1) == []
    assert _count(demo_db, schema.pfill_pool_guide, ids[2]) > 0


def test_a_run_whose_end_cannot_be_recorded_is_failed_not_left_active(demo_db: str, monkeypatch) -> None:
    """Recording Complete fails (injected): the run must end Failed, or BR-8 would block the tenant
    for as long as the process that ran it lives (a server, a worker)."""
    from pfill.engine import pipeline

    def broken(self: object, strategy: str) -> None:
        raise sa.exc.OperationalError("UPDATE pfill_run_history", {}, Exception("connection reset"))

    monkeypatch.setattr(pipeline._Tracker, "complete", broken)
    engine = open_database(demo_db)
    with pytest.raises(RunFailed, match="connection reset"):
        execute_run(engine, OPTIONS)
    run = runs.latest_run(engine, "demo")
    assert run["status"] == "Failed" and run["failure_step"] == "finish"
    assert runs.active_run(engine, "demo") is None


def test_an_executor_that_cannot_finish_a_claimed_run_fails_it(demo_db: str, monkeypatch) -> None:
    """A bug past the claim (injected) in the service's executor: the run is failed by the executor,
    since the sweep takes a run of a live process for alive."""
    from pfill.engine.pipeline import submit_run
    from pfill.engine.service import executors

    engine = open_database(demo_db)
    run_id = submit_run(engine, OPTIONS, queued=True)

    def claim_then_crash(engine: sa.Engine, run_id: str, worker: str) -> None:
        assert runs.claim_run(engine, run_id, worker)
        raise KeyError("a bug")

    monkeypatch.setattr(executors, "execute_queued", claim_then_crash)
    executors.execute_logged(engine, run_id, "test-worker")
    run = runs.get_run(engine, run_id)
    assert run["status"] == "Failed" and run["failure_message"].startswith("abandoned: the executor could not finish")
