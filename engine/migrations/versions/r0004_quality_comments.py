"""quality comments: what pfill_run_history.lp_bound and solver_seconds hold, said as the solver computes them

lp_bound was described as the LP relaxation's bound; it bounds every allocation that keeps the hard
limits and fills the trades the staged greedy fills (per component, the LP with that fill set required or
the exact MIP's dual bound). solver_seconds counts the MIPs' seconds as well as the LPs'. Only the
column comments change (where the database keeps comments: not SQLite).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COMMENTS = {  # column: (before, after)
    "lp_bound": ("LP relaxation upper bound on objective_value (optimal strategy)",
                 "Upper bound on objective_value over every allocation that keeps the hard limits and fills the "
                 "trades the greedy fills (per component: the LP with those fills required, or the MIP's dual "
                 "bound); optimal strategy"),
    "solver_seconds": ("Seconds spent in the LP solver (optimal strategy)",
                       "Seconds spent in HiGHS: the LPs and the MIPs (optimal strategy)"),
}


def _comment(which: int) -> None:
    if not op.get_context().dialect.supports_comments:  # SQLite keeps no comments
        return
    for column, texts in COMMENTS.items():
        op.alter_column("pfill_run_history", column, existing_type=sa.Float(), existing_nullable=True,
                        comment=texts[which], existing_comment=texts[1 - which])


def upgrade() -> None:
    _comment(1)


def downgrade() -> None:
    _comment(0)
