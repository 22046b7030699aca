"""Work beside the run (engine/beside.py), on SQLite and PostgreSQL: the synthetic step and the candidate
tables, each in a process of its own, write what they write in line; their failures and a cancel end
the run as they do in line; a run that fails, is cancelled or is killed leaves no process of them behind
and no row of them after BR-9."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from pfill.database import SQLITE_CACHE_KIB, open_database
from pfill.engine import beside, runs, schema
from pfill.engine.context import RunContext
from pfill.engine.pipeline import RunFailed, RunOptions, RunWasCancelled, execute_run
from pfill.engine.steps import allocation
from pfill.processes import pid_alive
from tests.engine.helpers import AS_OF, pfill_env, run_rows, wait_for

OPTIONS = RunOptions(tenant="demo", as_of=AS_OF)
SYNTHETIC = (schema.pfill_syn_trade_base, schema.pfill_syn_powerfill_guide_all_rank, schema.pfill_syn_powerfill_guide)
# a `pfill run` whose runs of any size go beside
RUN_BESIDE = ("import sys; from pfill.engine import beside; beside.BESIDE_MIN_LOANS = 0; from pfill.cli import main; "
              f"sys.argv = ['pfill', 'run', '--as-of', '{AS_OF.isoformat()}']; main()")


@pytest.fixture
def always_beside(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Runs of any size start their steps beside; returns the pids of the processes started."""
    monkeypatch.setattr(beside, "BESIDE_MIN_LOANS", 0)
    pids: list[int] = []
    start = beside.Beside.start.__func__  # type: ignore[attr-defined]

    def recording(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        side = start(cls, *args, **kwargs)
        pids.append(side.pid)
        return side

    monkeypatch.setattr(beside.Beside, "start", classmethod(recording))
    return pids



def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # the task ended meanwhile
            found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def test_a_step_beside_writes_what_it_writes_in_line(demo_db: str, always_beside: list[int],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    engine = open_database(demo_db)
    with monkeypatch.context() as m:
        m.setattr(beside, "BESIDE_MIN_LOANS", 10**9)
        in_line = execute_run(engine, OPTIONS)
    assert always_beside == []
    side = execute_run(engine, OPTIONS)
    assert len(always_beside) == 2 and not any(pid_alive(pid) for pid in always_beside)  # synthetic, candidates
    assert side["status"] == "Complete" and side["rows_written"].keys() == in_line["rows_written"].keys()
    # what is written beside does not depend on the allocation (whose time limits make runs differ)
    for table in (*SYNTHETIC, schema.pfill_trade_groups, schema.pfill_candidate_options):
        assert side["rows_written"][table.name] == in_line["rows_written"][table.name]
        assert run_rows(demo_db, table, side["run_id"]) == run_rows(demo_db, table, in_line["run_id"]) != []
    assert runs.get_run(engine, side["run_id"])["response_json"].count("synthetic_option_count") == 1
    with engine.connect() as conn:
        log = conn.execute(sa.select(schema.pfill_powerfill_log.c.message).where(
            schema.pfill_powerfill_log.c.run_id == side["run_id"], schema.pfill_powerfill_log.c.step == "synthetic")
        ).scalars().all()
    assert log[0] == "synthetic started beside the steps after settle_price" and "beside the run" in log[-1]


def test_a_failure_beside_fails_the_run_in_its_step_with_the_message_of_a_run_in_line(
        demo_db: str, always_beside: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFILL_TEST_FAIL_STEP", "synthetic")
    with pytest.raises(RunFailed, match=r"failed in step synthetic: RuntimeError: injected failure in synthetic"):
        execute_run(open_database(demo_db), OPTIONS)
    failed = runs.latest_run(open_database(demo_db), "demo")
    assert (failed["status"], failed["failure_step"]) == ("Failed", "synthetic")
    assert failed["failure_message"] == "RuntimeError: injected failure in synthetic (PFILL_TEST_FAIL_STEP)"
    assert len(always_beside) == 2 and not any(pid_alive(pid) for pid in always_beside)


def test_a_write_beside_that_fails_fails_the_run_in_its_step_and_leaves_no_row(
        demo_db: str, always_beside: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(ctx, problem):  # type: ignore[no-untyped-def]
        raise RuntimeError("injected failure writing the candidates")

    monkeypatch.setattr(allocation, "write_candidates", failing)  # the fork inherits it
    monkeypatch.setenv("PFILL_TEST_STEP_DELAY", "synthetic=30")
    with pytest.raises(RunFailed, match="failed in step allocation: RuntimeError: injected failure writing"):
        execute_run(open_database(demo_db), OPTIONS)
    run = runs.latest_run(open_database(demo_db), "demo")
    assert (run["status"], run["failure_step"]) == ("Failed", "allocation")
    assert len(always_beside) == 2 and not any(pid_alive(pid) for pid in always_beside)
    for table in (*schema.USER_FACING_OUTPUTS, *SYNTHETIC):  # the synthetic step (asleep) was stopped too
        assert run_rows(demo_db, table, run["run_id"]) == []


def test_a_run_that_fails_stops_its_step_beside_before_the_cleanup(
        demo_db: str, always_beside: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFILL_TEST_STEP_DELAY", "synthetic=30")
    monkeypatch.setenv("PFILL_TEST_FAIL_STEP", "allocation")
    started = time.monotonic()
    with pytest.raises(RunFailed, match="failed in step allocation"):
        execute_run(open_database(demo_db), OPTIONS)
    assert time.monotonic() - started < 20  # it did not wait for the step beside
    [pid] = always_beside
    assert not pid_alive(pid)
    run = runs.latest_run(open_database(demo_db), "demo")
    assert (run["status"], run["failure_step"]) == ("Failed", "allocation")
    for table in (*schema.USER_FACING_OUTPUTS, *SYNTHETIC):  # the step beside was stopped before it wrote
        assert run_rows(demo_db, table, run["run_id"]) == []


def _start(db_url: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", RUN_BESIDE], env=pfill_env(db_url, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_run_leaves_no_process_beside(demo_db: str) -> None:
    proc = _start(demo_db, PFILL_TEST_STEP_DELAY="synthetic=60,allocation=60")
    try:
        [child] = wait_for(lambda: _children(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_for(lambda: not pid_alive(child), timeout=10)
    finally:
        proc.kill()
        proc.communicate()


def test_a_cancel_reaches_a_step_waiting_beside(demo_db: str) -> None:
    engine = open_database(demo_db)
    proc = _start(demo_db, PFILL_TEST_STEP_DELAY="synthetic=60")
    try:
        run = wait_for(lambda: (r := runs.active_run(engine, "demo")) and r["current_step"] == "synthetic" and r)
        [child] = _children(proc.pid)
        runs.request_cancel(engine, run["run_id"])
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1 and "cancelled" in err
    assert runs.get_run(engine, run["run_id"])["status"] == "Cancelled"
    assert not pid_alive(child)
    for table in schema.USER_FACING_OUTPUTS:
        assert run_rows(demo_db, table, run["run_id"]) == []


def test_a_cancel_in_the_main_line_stops_the_step_beside(demo_db: str, always_beside: list[int],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The main line sees the cancel at a step boundary first: the step beside (still asleep) is stopped."""
    engine = open_database(demo_db)
    monkeypatch.setenv("PFILL_TEST_STEP_DELAY", "synthetic=60,pool_guide=10")

    def cancel_in_pool_guide() -> None:  # not on a timer: a slow machine may still be allocating
        wait_for(lambda: (runs.active_run(engine, "demo") or {}).get("current_step") == "pool_guide", timeout=30)
        runs.request_cancel(engine, runs.active_run(engine, "demo")["run_id"])

    cancel = threading.Thread(target=cancel_in_pool_guide)
    cancel.start()
    started = time.monotonic()
    with pytest.raises(RunWasCancelled, match="during pool_guide"):
        execute_run(engine, OPTIONS)
    cancel.join()
    assert time.monotonic() - started < 30
    assert len(always_beside) == 2 and not any(pid_alive(pid) for pid in always_beside)


def test_only_a_large_run_on_a_shared_database_goes_beside(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from pfill.engine.context import RunContext

    def ctx(url: str, loans: int) -> RunContext:
        return RunContext(engine=sa.create_engine(url), run_id="r", tenant="t",
                          inputs=SimpleNamespace(n_loans=loans))  # type: ignore[arg-type]

    file = f"sqlite:///{tmp_path / 'e.db'}"
    assert beside.can_run_beside(ctx(file, beside.BESIDE_MIN_LOANS))
    assert not beside.can_run_beside(ctx(file, beside.BESIDE_MIN_LOANS - 1))
    assert not beside.can_run_beside(ctx("sqlite://", 10**6))  # in memory: a fork would see another database


def test_work_beside_keeps_a_smaller_sqlite_page_cache_than_the_run(tmp_path: Path) -> None:
    """Two processes beside with the run's 64 MiB cache each were a fifth of a 100k run's memory."""
    ctx = RunContext(engine=open_database(f"sqlite:///{tmp_path}/cache.db"), run_id="cache-check", tenant="demo")

    def work(mine: RunContext) -> None:
        with mine.engine.connect() as conn:
            mine.counters["cache_size"] = conn.exec_driver_sql("PRAGMA cache_size").scalar()

    beside.Beside.start(ctx, "cache check", work).wait()
    assert ctx.counters["cache_size"] == -beside.BESIDE_SQLITE_CACHE_KIB
    assert SQLITE_CACHE_KIB != beside.BESIDE_SQLITE_CACHE_KIB
    with ctx.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KIB
