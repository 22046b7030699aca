"""Reading a tenant's inputs into numpy arrays (one query per table)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from . import schema

Columns = dict[str, np.ndarray]


def _read(conn: sa.Connection, table: sa.Table, tenant: str, where: Any = None) -> Columns:
    query = sa.select(*[c for c in table.c if c.name != "tenant_id"]).where(table.c.tenant_id == tenant)
    if where is not None:
        query = query.where(where)
    key = [c for c in table.primary_key.columns if c.name != "tenant_id"]
    rows = conn.execute(query.order_by(*key)).fetchall()
    out: Columns = {}
    for i, column in enumerate(c for c in table.c if c.name != "tenant_id"):
        values = [r[i] for r in rows]
        if isinstance(column.type, sa.Date):
            out[column.name] = np.array(values, dtype="datetime64[D]")
        elif isinstance(column.type, sa.Float):
            out[column.name] = np.array([np.nan if v is None else v for v in values], dtype=float)
        elif isinstance(column.type, sa.Boolean):
            out[column.name] = np.array(values, dtype=bool)
        elif isinstance(column.type, sa.Integer):
            out[column.name] = np.array([-1 if v is None else v for v in values], dtype=np.int64)
        else:
            out[column.name] = np.array(values, dtype=object)
    return out


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


def load_inputs(conn: sa.Connection, tenant: str) -> Inputs:
    t = schema
    return Inputs(
        loans=_read(conn, t.loan, tenant, t.loan.c.status.in_(("Locked", "Closed"))),
        trades=_read(conn, t.pscat_trades, tenant,
                     (t.pscat_trades.c.status == "Open") & t.pscat_trades.c.trade_type.in_(("TBA", "Spec"))),
        pools=_read(conn, t.pscat_pools, tenant),
        relation=_read(conn, t.pscat_trades_pools_relation, tenant),
        cash_grid=_read(conn, t.pscat_trade_cash_grid, tenant),
        payups=_read(conn, t.rmusr_payups, tenant),
        carry=_read(conn, t.pfill_carry_cost, tenant),
        constraints=_read(conn, t.pfill_constraints, tenant),
        lockdowns=_read(conn, t.pfill_lockdown_guide, tenant),
    )
