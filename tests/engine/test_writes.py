"""A run's output writes (RunContext.write): on PostgreSQL on writer threads, a large table in parts side by
side; the rows are those of one write per table, a step ends only when its rows are in, and a write that
fails fails the run in its step with nothing of the run left behind its cleanup (on SQLite too)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pfill.database import open_database
from pfill.engine import context, schema
from pfill.engine.pipeline import RunFailed, RunOptions, execute_run
from tests.engine.helpers import AS_OF, run_rows

OPTIONS = RunOptions(tenant="demo", as_of=AS_OF)



def test_a_table_written_in_parts_holds_the_rows_of_one_write(demo_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = open_database(demo_db)
    greedy = RunOptions(tenant="demo", as_of=AS_OF, strategy="greedy")  # no time limit: the same rows each run
    whole = execute_run(engine, greedy)
    monkeypatch.setattr(context, "PART_ROWS", 7)  # every table of more than 7 rows goes in parts
    parts = execute_run(engine, greedy)
    assert parts["status"] == "Complete" and parts["rows_written"] == whole["rows_written"]
    for name in whole["rows_written"]:
        table = schema.metadata.tables[name]
        assert run_rows(demo_db, table, parts["run_id"]) == run_rows(demo_db, table, whole["run_id"])
    assert whole["rows_written"]["pfill_candidate_options"] > 7


def test_a_write_that_fails_fails_the_run_in_its_step_and_leaves_no_row(demo_db: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "PART_ROWS", 50)
    insert = context.insert_columns

    def failing(conn, table, columns, constants=None):  # type: ignore[no-untyped-def]
        if table.name == "pfill_candidate_options":
            raise RuntimeError("injected write failure")
        return insert(conn, table, columns, constants)

    monkeypatch.setattr(context, "insert_columns", failing)
    engine = open_database(demo_db)
    with pytest.raises(RunFailed, match="failed in step allocation: RuntimeError: injected write failure"):
        execute_run(engine, OPTIONS)
    with engine.connect() as conn:
        run_id = conn.execute(sa.select(schema.pfill_run_history.c.run_id)).scalar()
    for table in schema.USER_FACING_OUTPUTS:  # BR-9 ran after every write in flight had ended
        assert run_rows(demo_db, table, run_id) == []
