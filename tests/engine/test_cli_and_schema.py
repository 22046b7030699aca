"""The real `pfill` command end to end at the default demo size, and the schema on every dialect."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.dialects import mssql
from sqlalchemy.schema import CreateIndex, CreateTable

from pfill.cli import cli
from pfill.database import open_database
from pfill.engine import schema
from pfill.engine.db import create_schema, init_schema
from tests.engine.helpers import AS_OF, PFILL, pfill_env


def test_db_init_demo_data_run_at_default_size(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    base = ["--home", str(tmp_path), "--db", db]
    for args in (["db", "init"], ["demo-data", "--as-of", AS_OF.isoformat()],
                 ["demo-data", "--as-of", AS_OF.isoformat()],  # replacing is idempotent
                 ["run", "--as-of", AS_OF.isoformat()]):
        result = runner.invoke(cli, [*base, *args])
        assert result.exit_code == 0, result.output
    listed = runner.invoke(cli, [*base, "runs", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    runs = json.loads(listed.stdout)
    assert len(runs) == 1
    run = runs[0]
    assert run["status"] == "Complete"
    assert run["loans_considered"] > 1800 and run["allocated_loan_count"] > 500
    assert run["kickout_count"] > 0 and run["cash_loan_count"] > 0 and run["trades_filled_in_tolerance"] > 0
    assert set(run["step_seconds"]) >= {"cash_grid", "settle_price", "candidates", "allocation", "pool_guide",
                                        "synthetic"}
    shown = json.loads(runner.invoke(cli, [*base, "runs", "show", "latest", "--json"]).stdout)
    assert shown["run_id"] == run["run_id"]
    assert json.loads(runner.invoke(cli, [*base, "runs", "latest", "--json"]).stdout) == shown
    # the default strategy is the optimiser, with its certificate in the run history
    assert shown["strategy"] == "optimal" and shown["solver_seconds"] >= 0
    assert shown["lp_bound"] >= shown["objective_value"] and 0 <= shown["gap_pct"] < 5
    greedy = runner.invoke(cli, [*base, "run", "--as-of", AS_OF.isoformat(), "--strategy", "greedy", "--json"])
    assert greedy.exit_code == 0, greedy.output
    baseline = json.loads(greedy.stdout)
    assert baseline["strategy"] == "greedy" and baseline["lp_bound"] is None
    assert shown["objective_value"] >= baseline["objective_value"]
    assert shown["trades_filled_in_tolerance"] >= baseline["trades_filled_in_tolerance"]

    engine = open_database(db)
    with engine.connect() as conn:
        actions = set(conn.execute(sa.text("SELECT DISTINCT pool_action FROM pfill_pool_guide")).scalars())
        kick_reasons = set(conn.execute(sa.text("SELECT DISTINCT reason_code FROM pfill_kickouts")).scalars())
        loans = conn.execute(sa.text("SELECT count(*) FROM loan")).scalar()
    assert actions == set(schema.POOL_ACTIONS)
    assert len(kick_reasons) >= 4, kick_reasons
    assert loans == 2000


def test_unknown_run_is_a_clean_error(tmp_path: Path) -> None:
    base = ["--home", str(tmp_path)]
    assert CliRunner().invoke(cli, [*base, "db", "init"]).exit_code == 0
    result = CliRunner().invoke(cli, [*base, "runs", "show", "nope"])
    assert result.exit_code == 1 and "no run nope" in result.output


def test_schema_compiles_for_sql_server_with_filtered_index() -> None:
    for table in schema.metadata.sorted_tables:
        CreateTable(table).compile(dialect=mssql.dialect())
    index = next(i for i in schema.pfill_run_history.indexes if i.unique)
    ddl = str(CreateIndex(index).compile(dialect=mssql.dialect()))
    assert "WHERE status IN ('Pending', 'PreProcessing', 'Allocating', 'PostProcessing')" in ddl


def test_init_is_idempotent_and_completes_an_unversioned_schema(db_url: str) -> None:
    engine = open_database(db_url)
    assert create_schema(engine) == ["created at 0005 (chosen pair)"]
    assert create_schema(engine) == [] and init_schema(engine) == []
    with engine.begin() as conn:  # an unversioned database from before the optimiser's run-history columns
        conn.exec_driver_sql("DROP TABLE pfill_alembic_version")
        conn.exec_driver_sql("ALTER TABLE pfill_run_history DROP COLUMN output_removed_at")  # r0002's
        conn.exec_driver_sql("DROP TABLE pfill_candidate_options")  # r0003's (it dropped the candidate rows'
        conn.exec_driver_sql("DROP TABLE pfill_trade_groups")  # table, which the baseline completion creates)
        conn.exec_driver_sql("ALTER TABLE pfill_trade_base DROP COLUMN wa_price")
        conn.exec_driver_sql("ALTER TABLE pfill_powerfill_guide DROP COLUMN score")  # r0005's
        conn.exec_driver_sql("DROP INDEX ix_pfill_pool_guide_run_pool")
        for column in ("strategy", "objective_value", "lp_bound", "gap_pct", "solver_seconds"):
            conn.exec_driver_sql(f"ALTER TABLE pfill_run_history DROP COLUMN {column}")
    changes = init_schema(engine)
    assert sorted(c for c in changes if "added" in c or "created index" in c) == [
        f"unversioned schema: added column {c}" for c in (
            "pfill_run_history.gap_pct", "pfill_run_history.lp_bound", "pfill_run_history.objective_value",
            "pfill_run_history.solver_seconds", "pfill_run_history.strategy", "pfill_trade_base.wa_price")
    ] + ["unversioned schema: created index ix_pfill_pool_guide_run_pool"]
    assert changes[-2:] == ["stamped 0001 (baseline)", "upgraded 0001 -> 0005 (chosen pair)"]
    assert init_schema(engine) == []
    outputs = [t for t in schema.OUTPUT_TABLES if t is not schema.pfill_run_history]
    assert all({"run_id", "tenant_id"} <= set(t.c.keys()) for t in outputs)
    assert all("tenant_id" in t.c for t in schema.INPUT_TABLES)


def test_run_json_is_json_with_the_solver_in_a_fresh_process(tmp_path: Path) -> None:
    """HiGHS prints a banner on the C-level stdout of a process's first solver: it must not land in --json."""
    env = pfill_env(f"sqlite:///{tmp_path / 'engine.db'}")
    subprocess.run([PFILL, "db", "init"], env=env, check=True, capture_output=True)
    subprocess.run([PFILL, "demo-data", "--loans", "300", "--trades", "8", "--as-of", AS_OF.isoformat()],
                   env=env, check=True, capture_output=True)
    done = subprocess.run([PFILL, "run", "--strategy", "optimal", "--as-of", AS_OF.isoformat(), "--json"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["strategy"] == "optimal"
