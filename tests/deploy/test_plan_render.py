"""How a plan reads: a changed dataset's SQL as a unified diff of the whole statement."""

from __future__ import annotations

from pfill.deploy.plan import FieldDiff, _render_diff


def test_a_change_at_the_end_of_long_sql_is_shown() -> None:
    head = "SELECT " + ", ".join(f"column_{i}" for i in range(30)) + "\nFROM pfill_trade_base t\n"
    lines = _render_diff(FieldDiff("sql", head + "WHERE t.amount > 0", head + "WHERE t.amount >= 0"))
    assert lines[0].strip() == "sql:"
    assert "-WHERE t.amount > 0" in [line.strip() for line in lines]
    assert "+WHERE t.amount >= 0" in [line.strip() for line in lines]


def test_short_values_stay_on_one_line() -> None:
    assert _render_diff(FieldDiff("slice_name", "Loans", "Loans allocated")) == [
        "      slice_name: 'Loans' -> 'Loans allocated'"]
