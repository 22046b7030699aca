"""Rendering: every query for every dialect, Superset's query-time Jinja kept, macros per dialect."""

from __future__ import annotations

import jinja2
import pytest
import sqlglot
from sqlglot import exp

from pfill.config import DIALECTS
from pfill.dialects import SQLGLOT_NAMES, count_rows_sql, pretty
from pfill.queries.catalog import load_queries
from pfill.queries.template import has_superset_jinja, neutralise_superset_jinja

QUERIES = load_queries()
REPORTS = {
    "run_overview", "allocation_guide", "trade_recap", "switching", "pool_candidates",
    "existing_disposition", "pooling_guide", "cash_trade_slotting",
}
RUN = "3f2b8a52-9d1e-4c1a-8f0e-2b7c5d9e1a40"


def test_the_eight_reports_are_packaged() -> None:
    assert set(QUERIES) == REPORTS
    for query in QUERIES.values():
        assert query.columns and all(c.description for c in query.columns)
        assert "tenant" in query.parameter_names


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", sorted(REPORTS))
@pytest.mark.parametrize("superset", [False, True])
def test_every_query_parses_in_every_dialect(name: str, dialect: str, superset: bool) -> None:
    sql = QUERIES[name].render(dialect, superset=superset, schema="reports")
    runnable = neutralise_superset_jinja(sql) if superset else sql
    tree = sqlglot.parse_one(runnable, read=SQLGLOT_NAMES[dialect])
    assert list(tree.named_selects) == QUERIES[name].column_names
    assert not list(tree.find_all(exp.Star)) or all(isinstance(s.parent, exp.Count) for s in tree.find_all(exp.Star))
    assert tree.args.get("order") is None
    # pretty-printing and the hoisted count wrapper stay valid in the dialect
    sqlglot.parse_one(pretty(runnable, dialect), read=SQLGLOT_NAMES[dialect])
    sqlglot.parse_one(count_rows_sql(runnable, dialect), read=SQLGLOT_NAMES[dialect])


def test_superset_jinja_survives_deploy_time_rendering() -> None:
    sql = QUERIES["trade_recap"].render("postgresql", superset=True)
    assert "{% if filter_values('run_id') %}" in sql
    assert "{{ filter_values('run_id')|where_in }}" in sql
    assert "{{ url_param('run_id') }}" in sql
    assert "[[" not in sql and "[%" not in sql
    plain = QUERIES["trade_recap"].render("postgresql")
    assert not has_superset_jinja(plain)


def test_superset_jinja_evaluates_like_superset_would() -> None:
    """With Superset's functions (stand-ins with its signatures), the run filter picks the run."""
    sql = QUERIES["switching"].render("postgresql", superset=True)
    env = jinja2.Environment()
    env.filters["where_in"] = lambda values: "(" + ", ".join(f"'{v}'" for v in values) + ")"
    chosen = env.from_string(sql).render(filter_values=lambda column: [RUN], url_param=lambda name: None)
    assert f"s.run_id IN ('{RUN}')" in chosen
    via_url = env.from_string(sql).render(filter_values=lambda column: [], url_param=lambda name: RUN)
    assert f"s.run_id = '{RUN}'" in via_url
    default = env.from_string(sql).render(filter_values=lambda column: [], url_param=lambda name: None)
    assert "lr.status = 'Complete'" in default
    for text in (chosen, via_url, default):
        sqlglot.parse_one(text, read="postgres")


def test_preview_mode_defaults_to_the_latest_complete_run_and_a_given_run_pins_it() -> None:
    latest = QUERIES["pool_candidates"].render("sqlite")
    assert "lr.status = 'Complete'" in latest and "LIMIT 1" in latest
    pinned = QUERIES["pool_candidates"].render("sqlite", run_id=RUN.upper())
    assert f"c.run_id = '{RUN}'" in pinned  # normalised UUID, quoted literal
    assert "lr.status" not in pinned


def test_user_written_superset_jinja_is_neutralised_for_preview() -> None:
    sql = (
        "SELECT a FROM t WHERE {% if filter_values('x') %}x IN {{ filter_values('x')|where_in }}"
        "{% else %}1 = 1{% endif %}"
    )
    assert neutralise_superset_jinja(sql) == "SELECT a FROM t WHERE 1 = 1"
    assert neutralise_superset_jinja("SELECT '{{ url_param(\"p\", \"d\") }}' AS p") == "SELECT 'd' AS p"


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        ("sqlite", "julianday(h.completed_at) - julianday(h.started_at)"),
        ("postgresql", "EXTRACT(EPOCH FROM (h.completed_at - h.started_at))"),
        ("mssql", "DATEDIFF_BIG(MILLISECOND, h.started_at, h.completed_at)"),
    ],
)
def test_dialect_macros(dialect: str, expected: str) -> None:
    sql = QUERIES["run_overview"].render(dialect)
    assert expected in sql
    assert ("SELECT TOP 1" in sql) == (dialect == "mssql")
    assert ("LIMIT 1" in sql) == (dialect != "mssql")
    recap = QUERIES["trade_recap"].render(dialect)
    assert {"sqlite": "GROUP_CONCAT(", "postgresql": "STRING_AGG(", "mssql": "WITHIN GROUP"}[dialect] in recap


def test_schema_qualifies_every_table() -> None:
    sql = QUERIES["existing_disposition"].render("mssql", schema="rpt")
    tables = {t.sql(dialect="tsql") for t in sqlglot.parse_one(sql, read="tsql").find_all(exp.Table)}
    real = {t for t in tables if "." in t}
    assert real and all(t.startswith("[rpt].") for t in real), tables


def test_count_wrapper_hoists_the_with_clause_for_sql_server() -> None:
    sql = QUERIES["trade_recap"].render("mssql")
    wrapped = count_rows_sql(sql, "mssql")
    tree = sqlglot.parse_one(wrapped, read="tsql")
    assert wrapped.startswith("WITH ")
    inner = tree.find(exp.Subquery)
    assert inner is not None and inner.this.args.get("with_", inner.this.args.get("with")) is None
    assert isinstance(tree.selects[0].this, exp.Count)


def test_rendered_lines_match_template_lines() -> None:
    for query in QUERIES.values():
        rendered = query.render("postgresql", superset=True, trim=False)
        assert rendered.count("\n") == query.template_path.read_text().count("\n"), query.name


RUN = "11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_bind_mode_leaves_tenant_and_run_as_parameters(dialect: str) -> None:
    """The run service binds the tenant and the run: neither value is ever in the SQL text."""
    for query in load_queries().values():
        run = RUN if query.takes("run_id") else None
        sql = query.render(dialect, tenant="acme", run_id=run, bind=True)
        assert "acme" not in sql and RUN not in sql
        assert ":tenant" in sql and (":run_id" in sql) == query.takes("run_id")
        sqlglot.parse_one(sql, read=SQLGLOT_NAMES[dialect])  # still one statement of the dialect


def test_every_report_declares_a_key_of_its_columns() -> None:
    for query in load_queries().values():
        assert query.key and {k.removeprefix("-") for k in query.key} <= set(query.column_names), query.name


def test_a_key_naming_an_undeclared_column_is_refused_with_its_line(queries_copy) -> None:
    from pfill.errors import ConfigError
    from tests.queries.conftest import edit

    edit(queries_copy / "trade_recap.yaml", "key: [trade_id]", "key: [trade_id, nope]")
    with pytest.raises(ConfigError, match=r"trade_recap\.yaml:\d+: key 'nope' is not a declared column"):
        load_queries(queries_copy)
