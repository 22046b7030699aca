"""`pfill preview` and `pfill lint` on bad input: one clear line each and a non-zero exit."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from pfill.cli import cli
from pfill.engine.db import init_schema
from pfill.engine.schema import pfill_run_history

from .conftest import edit


def _run(*argv: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(argv))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The engine schema with one Complete run and no output rows; (url, run_id)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'pfill.db'}"
    engine = sa.create_engine(url)
    init_schema(engine)
    run_id = str(uuid.uuid4())
    now = datetime(2026, 1, 5, 9, 0, 0)
    with engine.begin() as conn:
        conn.execute(pfill_run_history.insert().values(
            run_id=run_id, tenant_id="demo", status="Complete", scoring="price", created_at=now,
            started_at=now, completed_at=datetime(2026, 1, 5, 9, 0, 12, 500000),
        ))
    engine.dispose()
    return url, run_id


def test_unknown_query_suggests_the_closest() -> None:
    code, _, err = _run("preview", "trade_recp")
    assert code == 2
    assert err.strip() == "error: unknown query 'trade_recp'; did you mean 'trade_recap'?"


def test_unknown_parameter() -> None:
    code, _, err = _run("preview", "pool_candidates", "-p", "max_rnk=3")
    assert code == 2
    assert "no parameter 'max_rnk'; its parameters: max_rank" in err
    code, _, err = _run("preview", "pool_candidates", "-p", "oops")
    assert code == 2 and "expected NAME=VALUE" in err


def test_run_id_that_does_not_exist(empty_db: tuple[str, str]) -> None:
    url, _ = empty_db
    missing = str(uuid.uuid4())
    code, _, err = _run("preview", "switching", "--execute", "--db", url, "--run-id", missing)
    assert code == 1
    assert f"error: run {missing} not found for tenant 'demo'" in err


def test_unreachable_database_masks_the_password() -> None:
    code, _, err = _run("--db", "postgresql://pfill:s3cretpw@127.0.0.1:9/nowhere", "preview", "switching", "--execute")
    assert code == 1
    assert "cannot connect to postgresql://pfill:***@127.0.0.1:9/nowhere" in err
    assert "s3cretpw" not in err
    assert "Traceback" not in err


def test_template_syntax_error_names_file_and_line(queries_copy: Path) -> None:
    edit(queries_copy / "switching.sql.j2", "WHERE s.tenant_id = [[ tenant ]]", "WHERE s.tenant_id = [% if %]")
    code, _, err = _run("preview", "switching", "--queries", str(queries_copy))
    assert code == 1
    assert err.startswith(f"error: {queries_copy}/switching.sql.j2:25: template syntax error")
    assert len(err.strip().splitlines()) == 1


def test_preview_prints_pretty_sql_per_dialect() -> None:
    code, out, _ = _run("preview", "run_overview", "--dialect", "mssql")
    assert code == 0
    assert "TOP 1" in out and "LIMIT" not in out
    code, out, _ = _run("preview", "run_overview", "--dialect", "postgresql", "--superset")
    jinja = [line for line in out.splitlines() if "{{" in line or "{%" in line]
    assert code == 0 and len(jinja) == 1 and jinja[0].endswith(" AS is_shown,")  # the hub lists every run
    code, out, _ = _run("preview", "switching", "--dialect", "postgresql", "--superset")
    assert "{{ filter_values('run_id')|where_in }}" in out


def test_execute_on_an_empty_run(empty_db: tuple[str, str]) -> None:
    url, run_id = empty_db
    code, out, _ = _run("--db", url, "preview", "run_overview", "--execute", "--format", "json")
    assert code == 0, out
    data = json.loads(out)
    assert data["row_count"] == 1 and data["columns"][0] == "run_id"
    row = data["rows"][0]
    assert row["run_id"] == run_id and row["is_latest"] == 1
    assert row["duration_seconds"] == pytest.approx(12.5, abs=0.01)
    code, out, _ = _run("--db", url, "preview", "--all", "--execute", "--format", "json")
    assert code == 0
    assert [r["name"] for r in json.loads(out)][:2] == ["run_overview", "allocation_guide"]


def test_name_and_all_are_exclusive() -> None:
    assert _run("preview")[0] == 2
    assert _run("preview", "switching", "--all")[0] == 2
