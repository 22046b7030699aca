"""`pfill lint` on the packaged queries (clean) and on seeded mistakes (each caught with file:line)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pfill.cli import cli

from .conftest import edit


def _lint(folder: Path | None = None, *args: str) -> tuple[int, str]:
    argv = ["lint", *args] + (["--queries", str(folder)] if folder else [])
    result = CliRunner().invoke(cli, argv)
    return result.exit_code, result.output


def test_packaged_queries_are_clean() -> None:
    code, output = _lint()
    assert code == 0, output
    assert "no findings" in output


def test_seeded_mistakes_are_caught_with_file_and_line(queries_copy: Path) -> None:
    edit(queries_copy / "run_overview.sql.j2", "WHERE h.tenant_id = [[ tenant ]]\n",
         "WHERE h.tenant_id = [[ tenant ]]\nORDER BY h.created_at DESC\n")
    edit(queries_copy / "switching.sql.j2", "  s.loan_id AS loan_id,\n", "  s.loan_id AS loan_id,\n  sp.*,\n")
    edit(queries_copy / "cash_trade_slotting.sql.j2", "  m.upb AS upb,\n", "  m.upb AS upb_dollars,\n")
    edit(queries_copy / "pool_candidates.sql.j2",
         "  t.coupon AS coupon,\n", "  t.coupon AS coupon,\n  (SELECT t.trade_id FROM t ORDER BY 1) AS sub,\n")
    code, output = _lint(queries_copy)
    assert code == 1
    lines = output.splitlines()

    def finding(prefix: str, rule: str) -> str:
        hits = [line for line in lines if line.startswith(f"{queries_copy}/{prefix}") and f": {rule}:" in line]
        assert hits, f"no {rule} finding for {prefix} in:\n{output}"
        return hits[0]

    order_line = next(i for i, line in enumerate((queries_copy / "run_overview.sql.j2").read_text().splitlines(), 1)
                      if line.startswith("ORDER BY"))
    assert finding(f"run_overview.sql.j2:{order_line}:", "order-by")
    assert finding("switching.sql.j2:6:", "select-star")
    assert finding("cash_trade_slotting.sql.j2:8:", "column-undeclared")
    assert "upb_dollars" in finding("cash_trade_slotting.sql.j2:8:", "column-undeclared")
    assert finding("cash_trade_slotting.yaml:15:", "column-missing")
    sub_line = next(i for i, line in enumerate((queries_copy / "pool_candidates.sql.j2").read_text().splitlines(), 1)
                    if "AS sub," in line)
    assert "in a subquery" in finding(f"pool_candidates.sql.j2:{sub_line}:", "order-by")


def test_order_by_with_top_or_limit_is_allowed(queries_copy: Path) -> None:
    # the shared macro writes TOP 1 on SQL Server and LIMIT 1 elsewhere: an allowed ORDER BY
    limited = "([[ sql.first_value_of('t.a', 't', 't.a DESC') ]])"
    old = "  s.loan_id AS loan_id,\n"
    edit(queries_copy / "switching.sql.j2", old, f"{old}  {limited} AS top_a,\n")
    meta = queries_copy / "switching.yaml"
    meta.write_text(meta.read_text() + "  - {name: top_a, type: string, description: test}\n")
    code, output = _lint(queries_copy)
    assert code == 0, output


def test_template_and_yaml_errors_name_file_and_line(queries_copy: Path) -> None:
    edit(queries_copy / "pooling_guide.sql.j2", "[[ tenant ]]", "[[ tenant ")
    code, output = _lint(queries_copy)
    assert code == 1
    assert f"{queries_copy}/pooling_guide.sql.j2:" in output and "template syntax error" in output


def test_json_output(queries_copy: Path) -> None:
    edit(queries_copy / "switching.sql.j2", "  s.upb AS upb,\n", "")
    code, output = _lint(queries_copy, "--json")
    assert code == 1
    findings = json.loads(output[output.index("[") :])
    assert findings == [{
        "file": str(queries_copy / "switching.yaml"), "line": 21, "rule": "column-missing",
        "message": "column upb is declared but not selected", "query": "switching",
        "dialects": ["sqlite", "postgresql", "mssql"], "check": "columns",
    }]
