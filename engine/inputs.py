"""Reading a tenant's inputs into numpy arrays (one query per table).

Values are read as the driver returns them and converted here, column by column, so a value of the
wrong kind (SQLite keeps 'abc' in a REAL column) is an InputError naming the table, column, row key,
tenant and value, instead of a numpy or parser error from deep inside a step.

    check_inputs(conn, tenant)   # refuse a tenant with no loans or no open trades, before a run starts
    inputs = load_inputs(conn, tenant)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa

from pfill.errors import PfillError

from . import schema
from .pairs import member

Columns = dict[str, np.ndarray]


class InputError(PfillError):
    """A tenant's inputs cannot be used: none to run on, or a value of the wrong kind."""


def _to_float(value: Any) -> float:
    return math.nan if value is None else float(value)  # 'abc' raises; '1.5' is 1.5, as numpy reads it


def _to_int(value: Any) -> int:
    return -1 if value is None else int(value)


def _to_bool(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, (bool, int, np.integer)) and value in (0, 1):
        return bool(value)
    raise ValueError("not a boolean (0 or 1)")


def _to_date(value: Any) -> np.datetime64:
    if value is None:
        return np.datetime64("NaT", "D")
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return np.datetime64(value, "D")
    if isinstance(value, str):  # SQLite keeps dates as ISO text
        return np.datetime64(date.fromisoformat(value[:10]), "D")
    raise ValueError("not a date")


def _fast_bool(values: Sequence[Any]) -> np.ndarray:
    if not all(v is None or (isinstance(v, (bool, int, np.integer)) and v in (0, 1)) for v in values):
        raise ValueError("not a boolean")
    return np.array([bool(v) for v in values], dtype=bool)


# column type -> (whole-column conversion, one-value conversion, numpy dtype, what the value should be).
# The whole column is converted at once; only when that fails is it walked value by value to name the row.
_KINDS: list[tuple[type, Callable[[Sequence[Any]], np.ndarray], Callable[[Any], Any], Any, str]] = [
    (sa.Date, lambda vs: np.array(vs, dtype="datetime64[D]"), _to_date, "datetime64[D]", "a date (YYYY-MM-DD)"),
    (sa.Float, lambda vs: np.array(vs, dtype=float), _to_float, float, "a number"),  # numpy reads None as NaN
    (sa.Boolean, _fast_bool, _to_bool, bool, "a boolean (0 or 1)"),
    (sa.Integer, lambda vs: np.array([-1 if v is None else v for v in vs], dtype=np.int64), _to_int, np.int64,
     "a whole number"),
]
_BAD_VALUE = (ValueError, TypeError, OverflowError)


def _convert(table: sa.Table, column: sa.Column, values: Sequence[Any], key: Callable[[int], str],
             tenant: str) -> np.ndarray:
    for kind, convert_all, convert, dtype, what in _KINDS:
        if isinstance(column.type, kind):
            try:
                return convert_all(values)
            except _BAD_VALUE:
                pass
            out = np.empty(len(values), dtype=dtype)
            for i, value in enumerate(values):
                try:
                    out[i] = convert(value)
                except _BAD_VALUE:
                    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
                    raise InputError(
                        f"{table.name}.{column.name} is {shown}, not {what} (tenant {tenant}, {key(i)})",
                        hint=f"fix that row of {table.name}, or reload the tenant's inputs "
                             f"(`pfill demo-data --tenant {tenant}`)",
                    ) from None
            return out
    return np.array(values, dtype=object)


def _raw(column: sa.Column) -> Any:
    """The column as the driver returns it (no SQLAlchemy result processing, which would fail on a bad
    date before we can say which row holds it)."""
    raw = isinstance(column.type, (sa.Date, sa.Boolean))
    return sa.type_coerce(column, sa.String()).label(column.name) if raw else column


def _read(conn: sa.Connection, table: sa.Table, tenant: str, where: Any = None) -> Columns:
    columns = [c for c in table.c if c.name != "tenant_id"]
    key = [c for c in table.primary_key.columns if c.name != "tenant_id"]
    query = sa.select(*[_raw(c) for c in columns]).where(table.c.tenant_id == tenant)
    if where is not None:
        query = query.where(where)
    rows = conn.execute(query.order_by(*key)).fetchall()
    names = [c.name for c in columns]
    at = [(c.name, names.index(c.name)) for c in key]

    def row_key(k: int) -> str:  # only a bad value's row is named
        return ", ".join(f"{name} {rows[k][i]}" for name, i in at) or "a row"

    return {column.name: _convert(table, column, [r[i] for r in rows], row_key, tenant)
            for i, column in enumerate(columns)}


@dataclass
class Inputs:
    loans: Columns  # loans to consider (status Locked or Closed)
    trades: Columns  # open trades (status Open, type TBA or Spec)
    pools: Columns
    relation: Columns
    cash_grid: Columns
    payups: Columns
    carry: Columns
    constraints: Columns
    lockdowns: Columns

    @property
    def n_loans(self) -> int:
        return len(self.loans["loan_id"])

    @property
    def n_trades(self) -> int:
        return len(self.trades["trade_id"])


def _considered_loans() -> Any:
    return schema.loan.c.status.in_(("Locked", "Closed"))


def _open_trades() -> Any:
    t = schema.pscat_trades.c
    return (t.status == "Open") & t.trade_type.in_(("TBA", "Spec"))


def check_inputs(conn: sa.Connection, tenant: str) -> None:
    """Refuse a tenant with nothing to run on: no loans (Locked or Closed) or no open trades."""
    for table, wanted, what, which in ((schema.loan, _considered_loans(), "loans", "Locked or Closed"),
                                       (schema.pscat_trades, _open_trades(), "trades", "Open TBA or Spec")):
        count = sa.select(sa.func.count()).select_from(table).where(table.c.tenant_id == tenant)
        if conn.execute(count.where(wanted)).scalar():
            continue
        total = conn.execute(count).scalar()
        cause = f"tenant {tenant} has no {what}" if not total else f"tenant {tenant} has no {which} {what} (of {total})"
        raise InputError(f"{cause}; load inputs first (`pfill demo-data --tenant {tenant}`)",
                         hint=f"inputs are the tenant's rows in {table.name} and the other input tables")


def check_loan_ids(conn: sa.Connection, tenant: str, loan_ids: Sequence[str]) -> None:
    """Refuse a loan subset naming loans the tenant does not have (the first few are named)."""
    t = schema.loan.c
    known = set(conn.execute(sa.select(t.loan_id).where(t.tenant_id == tenant)).scalars())
    unknown = [loan for loan in loan_ids if loan not in known]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise InputError(f"loan_ids: tenant {tenant} has no loan {shown}",
                         hint="give loan ids of the tenant's pipeline (pfill_loan / loan.loan_id)")


def load_inputs(conn: sa.Connection, tenant: str, loan_ids: Sequence[str] | None = None) -> Inputs:
    """The tenant's inputs; with `loan_ids`, only those of the considered loans (the rest of the book,
    trades and market data, is read whole)."""
    t = schema
    loans = _read(conn, t.loan, tenant, _considered_loans())
    if loan_ids is not None:
        keep = member(loans["loan_id"], list(loan_ids))
        loans = {name: values[keep] for name, values in loans.items()}
    return Inputs(
        loans=loans,
        trades=_read(conn, t.pscat_trades, tenant, _open_trades()),
        pools=_read(conn, t.pscat_pools, tenant),
        relation=_read(conn, t.pscat_trades_pools_relation, tenant),
        cash_grid=_read(conn, t.pscat_trade_cash_grid, tenant),
        payups=_read(conn, t.rmusr_payups, tenant),
        carry=_read(conn, t.pfill_carry_cost, tenant),
        constraints=_read(conn, t.pfill_constraints, tenant),
        lockdowns=_read(conn, t.pfill_lockdown_guide, tenant),
    )
