"""The run interface on SQLite and PostgreSQL: `pfill run --json` prints only JSON on stdout; `runs show`
and `runs cancel` see only the tenant's runs; an unknown tenant is an error with no run recorded;
`pfill runs purge` deletes old runs entirely; runs.run_document is the JSON document of a run."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime

import pytest
import sqlalchemy as sa

from pfill.database import open_database
from pfill.engine import runs, schema
from pfill.engine.pipeline import RunOptions, execute_run
from pfill.errors import ConfigError
from tests.engine.helpers import AS_OF, PFILL, pfill_env


def _pfill(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PFILL, *args], env=pfill_env(url, **env), capture_output=True, text=True, timeout=120)


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _count(engine: sa.Engine, table: sa.Table, run_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(table.c.run_id == run_id)).scalar()


def test_run_json_prints_only_json_on_stdout(demo_db: str) -> None:
    """A fresh process: the progress lines go to stderr, the document to stdout, the solver's banner
    nowhere (library noise in an operator's terminal)."""
    done = _pfill(demo_db, "run", "--as-of", AS_OF.isoformat(), "--strategy", "optimal", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # the whole of stdout is one JSON document
    assert document["status"] == "Complete" and document["strategy"] == "optimal"
    assert document["options"]["strategy"] == "optimal" and set(document["step_seconds"]) >= {"allocation"}
    assert not [key for key in document if key.endswith("_json")]
    assert "load_inputs" in done.stderr and f"run {document['run_id']}" in done.stderr
    assert "HiGHS" not in done.stdout and "HiGHS" not in done.stderr
    shown = _pfill(demo_db, "runs", "show", document["run_id"], "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {k: v for k, v in document.items() if k != "rows_written"}


def test_runs_show_and_cancel_see_only_the_tenants_runs(demo_db: str) -> None:
    engine = open_database(demo_db)
    mine = execute_run(engine, RunOptions(tenant="demo", as_of=AS_OF, strategy="greedy"))["run_id"]
    theirs = runs.create_run(engine, "other", "price", {})  # active: this test process is alive
    for args in (["runs", "show", theirs], ["runs", "show", theirs, "--tenant", "demo"],
                 ["runs", "show", theirs, "--json"], ["runs", "cancel", theirs],
                 ["runs", "cancel", theirs, "--tenant", "demo"]):
        done = _pfill(demo_db, *args)  # the settings' tenant is demo (PFILL_TENANT)
        assert done.returncode == 1, (args, done.stderr)
        assert _errors(done.stderr) == [f"error: no run {theirs} for tenant demo"], (args, done.stderr)
        assert done.stdout == ""
    run = runs.get_run(engine, theirs)
    assert run["status"] == "Pending" and run["cancel_requested_at"] is None  # not cancelled
    # a run that does not exist reads the same as another tenant's
    done = _pfill(demo_db, "runs", "cancel", "nope")
    assert done.returncode == 1 and _errors(done.stderr) == ["error: no run nope for tenant demo"]

    done = _pfill(demo_db, "runs", "show", theirs, "--tenant", "other", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["tenant_id"] == "other"
    done = _pfill(demo_db, "runs", "show", mine, "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["run_id"] == mine
    done = _pfill(demo_db, "runs", "show", mine, "--tenant", "other")
    assert done.returncode == 1 and _errors(done.stderr) == [f"error: no run {mine} for tenant other"]
    for args, tenant_run in ((["runs", "show", "latest", "--json"], mine),
                             (["runs", "latest", "--json"], mine),
                             (["runs", "show", "latest", "--tenant", "other", "--json"], theirs)):
        done = _pfill(demo_db, *args)
        assert done.returncode == 0 and json.loads(done.stdout)["run_id"] == tenant_run, (args, done.stderr)

    done = _pfill(demo_db, "runs", "cancel", theirs, "--tenant", "other")
    assert done.returncode == 0, done.stderr
    assert runs.get_run(engine, theirs)["cancel_requested_at"] is not None
    done = _pfill(demo_db, "runs", "cancel", mine)  # the tenant's own run: found, but not active
    assert done.returncode == 1 and "is Complete: only an active run can be cancelled" in done.stderr


def test_run_for_an_unknown_tenant_is_an_error_and_records_no_run(demo_db: str) -> None:
    engine = open_database(demo_db)
    before = runs.list_runs(engine, None, 100)
    for extra in ([], ["--json"]):
        done = _pfill(demo_db, "run", "--tenant", "nosuch", "--as-of", AS_OF.isoformat(), *extra)
        assert done.returncode == 1, done.stderr
        assert _errors(done.stderr) == ["error: tenant nosuch has no loans; load inputs first "
                                        "(`pfill demo-data --tenant nosuch`)"], done.stderr
        assert done.stdout == ""
    assert runs.list_runs(engine, None, 100) == before
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.pfill_powerfill_log)
                            .where(schema.pfill_powerfill_log.c.tenant_id == "nosuch")).scalar() == 0


def _finished(engine: sa.Engine, tenant: str, status: str) -> str:
    run_id = runs.create_run(engine, tenant, "price", {})
    runs.finish_run(engine, run_id, tenant, status, failure_message=None if status == "Complete" else "test")
    return run_id


def test_purge_deletes_old_runs_entirely_and_never_the_newest_complete(demo_db: str) -> None:
    engine = open_database(demo_db)
    options = RunOptions(tenant="demo", as_of=AS_OF, strategy="greedy", keep_runs=1)
    complete = [execute_run(engine, options)["run_id"] for _ in range(2)]
    failed = [_finished(engine, "demo", "Failed") for _ in range(2)]  # after the newest Complete run
    other = [_finished(engine, "other", "Cancelled") for _ in range(3)]
    assert runs.get_run(engine, complete[0])["output_removed_at"] is not None  # retention kept its history
    assert _count(engine, schema.pfill_powerfill_log, complete[0]) > 0

    assert runs.purge_runs(engine, "demo", 1) == [failed[0], complete[0]]
    assert [r["run_id"] for r in runs.list_runs(engine, "demo")] == [failed[1], complete[1]]
    for table in schema.OUTPUT_TABLES:  # every row of the purged runs
        assert _count(engine, table, complete[0]) == 0 and _count(engine, table, failed[0]) == 0
    assert _count(engine, schema.pfill_pool_guide, complete[1]) > 0  # the newest Complete run is whole
    assert _count(engine, schema.pfill_syn_trade_base, complete[1]) > 0
    assert runs.purge_runs(engine, "demo", 1) == []  # idempotent
    assert len(runs.list_runs(engine, "other")) == 3  # another tenant untouched
    for keep in (0, -1, "ten", None, True):
        with pytest.raises(ConfigError, match="would delete earlier runs"):
            runs.purge_runs(engine, "demo", keep)  # type: ignore[arg-type]

    active = runs.create_run(engine, "other", "price", {})
    assert runs.purge_runs(engine, None, 1) == other[1::-1]  # every tenant, `keep` each; never an active run
    assert [r["run_id"] for r in runs.list_runs(engine, "other")] == [active, other[2]]
    assert [r["run_id"] for r in runs.list_runs(engine, "demo")] == [failed[1], complete[1]]


def test_runs_purge_command(demo_db: str) -> None:
    engine = open_database(demo_db)
    execute_run(engine, RunOptions(tenant="demo", as_of=AS_OF, strategy="greedy"))
    demo_failed = [_finished(engine, "demo", "Failed") for _ in range(3)]
    other = [_finished(engine, "other", "Complete") for _ in range(2)]

    done = _pfill(demo_db, "runs", "purge", "--keep", "2", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"tenant": "demo", "keep": 2, "purged": 1, "run_ids": [demo_failed[0]]}
    done = _pfill(demo_db, "runs", "purge", "--keep", "1", "--all-tenants")
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert "purged 2 run(s) of every tenant, keeping the newest 1 per tenant" in done.stderr
    assert [r["run_id"] for r in runs.list_runs(engine, "other")] == [other[1]]
    done = _pfill(demo_db, "runs", "purge", "--keep", "1", "--tenant", "other")
    assert done.returncode == 0 and "purged 0 run(s) of tenant other" in done.stderr, done.stderr

    for args, message in ((["--keep", "0"], "0 is not in the range x>=1"),
                          ([], "Missing option '--keep'"),
                          (["--keep", "1", "--tenant", "demo", "--all-tenants"],
                           "give --tenant or --all-tenants, not both")):
        done = _pfill(demo_db, "runs", "purge", *args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)


def test_run_document_decodes_the_json_columns() -> None:
    created = datetime(2025, 3, 3, 9, 30)
    row = {"run_id": "r", "created_at": created, "options_json": '{"strategy": "greedy"}', "input_loan_ids_json": None,
           "step_seconds_json": "", "response_json": '{"counters": {"a": 1}}', "output_removed_at": None,
           "rows_written": {"pfill_pool_guide": 3}}
    assert runs.run_document(row) == {
        "run_id": "r", "created_at": created, "options": {"strategy": "greedy"}, "input_loan_ids": None,
        "step_seconds": None, "response": {"counters": {"a": 1}}, "output_removed_at": None,
        "rows_written": {"pfill_pool_guide": 3}}
    assert list(runs.run_document(row))[:3] == ["run_id", "created_at", "options"]  # column order kept
