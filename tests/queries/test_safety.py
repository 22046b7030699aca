"""Values never reach the SQL unescaped: identifiers match a strict pattern, values are validated and
written as literals by sqlglot; injection attempts are refused or end up as inert text."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from pfill.config import DIALECTS
from pfill.dialects import SQLGLOT_NAMES
from pfill.errors import UsageError
from pfill.queries.catalog import load_queries
from pfill.queries.template import sql_literal

QUERIES = load_queries()
ATTACKS = [
    "demo' OR '1'='1",
    "x'; DROP TABLE loan; --",
    "demo\\'; SELECT 1; --",
    "a]] [[ tenant",
    "{{ 7*7 }}",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_tenant_run_id_and_schema_are_validated(attack: str) -> None:
    query = QUERIES["trade_recap"]
    with pytest.raises(UsageError, match="invalid tenant"):
        query.render("postgresql", tenant=attack)
    with pytest.raises(UsageError, match="invalid run id"):
        query.render("postgresql", run_id=attack)
    with pytest.raises(UsageError, match="invalid schema"):
        query.render("postgresql", schema=attack)


def test_typed_parameters_are_validated() -> None:
    with pytest.raises(UsageError, match="not a valid integer"):
        QUERIES["pool_candidates"].render("sqlite", params={"max_rank": "1; DROP TABLE loan"})
    with pytest.raises(UsageError, match="not a valid boolean"):
        QUERIES["allocation_guide"].render("sqlite", params={"include_kickouts": "1 OR 1=1"})
    sql = QUERIES["pool_candidates"].render("sqlite", params={"max_rank": "3"})
    assert "t.group_rank <= 3 AND 1 + (SELECT SUM(n.beats)" in sql and sql.rstrip().endswith(") <= 3")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("attack", [a for a in ATTACKS if "{" not in a])
def test_literals_round_trip_as_one_string(dialect: str, attack: str) -> None:
    literal = sql_literal(attack, dialect)
    tree = sqlglot.parse_one(f"SELECT {literal} AS v", read=SQLGLOT_NAMES[dialect])
    value = tree.selects[0].this
    assert isinstance(value, exp.Literal) and value.is_string and value.this == attack


def _string_parameter_query(folder: Path) -> None:
    (folder / "echo.sql.j2").write_text(
        "SELECT [[ params.label ]] AS label, h.run_id AS run_id\n"
        "FROM [[ table('runs') ]] h\nWHERE h.tenant_id = [[ tenant ]]\n"
    )
    (folder / "echo.yaml").write_text(
        "title: Echo\nparameters:\n  - tenant\n"
        "  - {name: label, type: string, default: hello, description: A label}\n"
        "columns:\n  - {name: label, type: string, description: The label}\n"
        "  - {name: run_id, type: string, description: Run}\n"
    )


def test_template_markup_in_values_is_refused() -> None:
    """Superset renders Jinja anywhere in dataset SQL, inside string literals too."""
    for value in ("{{ 7*7 }}", "a{% if 1 %}", "{# x #}"):
        with pytest.raises(UsageError, match="template markup"):
            sql_literal(value, "postgresql")


@pytest.mark.parametrize("attack", [a for a in ATTACKS if "{" not in a])
def test_string_parameters_are_inert_when_executed(tmp_path: Path, attack: str) -> None:
    _string_parameter_query(tmp_path)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE runs (run_id TEXT, tenant_id TEXT)")
        conn.exec_driver_sql("CREATE TABLE loan (loan_id TEXT)")
        conn.exec_driver_sql("INSERT INTO runs VALUES ('r1', 'demo')")
    sql = load_queries(tmp_path)["echo"].render("sqlite", params={"label": attack})
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(sql).all()
        tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert rows == [(attack, "r1")]
    assert tables == {"runs", "loan"}
    engine.dispose()
