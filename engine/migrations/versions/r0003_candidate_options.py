"""candidate options: every eligible option of a run, stored as options and trade groups

Pool Candidates is the all-options surface: every eligible loan x trade pair of a run, not the best five
per loan. A 100k-loan book has millions of pairs, so they are stored the way the engine holds them:
pfill_candidate_options (a loan and a trade group, a few per loan, with the loan's chosen pair) and
pfill_trade_groups (each open trade's group, price and order); the report expands the pairs with a join.
pfill_loan2trade_candy_level_01 (the best few pairs per loan plus the chosen one) is dropped: nothing
else read it, and every row of it is a pair of the new tables. The candidate rows of runs from before
this revision go with it (their other output stays); a new run writes the new tables.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pfill.engine.migrations.versions.r0001_baseline import baseline, create

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = 36
_CODE = 32
CANDY = "pfill_loan2trade_candy_level_01"


def _id(name: str, **kw: object) -> sa.Column:
    return sa.Column(name, sa.String(_ID), **kw)


def _tenant() -> sa.Column:
    return sa.Column("tenant_id", sa.String(64), nullable=False, comment="Tenant the row belongs to")


def _run() -> sa.Column:
    return sa.Column("run_id", sa.String(_ID), nullable=False, comment="Run (UUID) that wrote the row")


def tables() -> sa.MetaData:
    """The two tables of this revision, frozen (on a MetaData of their own)."""
    metadata = sa.MetaData()
    options = sa.Table(
        "pfill_candidate_options",
        metadata,
        _run(),
        _tenant(),
        _id("loan_id", nullable=False),
        sa.Column("trade_group", sa.Integer, nullable=False,
                  comment="Trade group (pfill_trade_groups): the option's pairs are the group's trades"),
        sa.Column("upb", sa.Float),
        sa.Column("note_rate", sa.Float),
        sa.Column("payup", sa.Float, comment="Pay-up for this loan in the group's instrument, points"),
        sa.Column("carry", sa.Float, comment="Carry to the group's settlement, points"),
        sa.Column("score", sa.Float,
                  comment="The loan's part of a pair's score, points: payup (+carry with price_carry); "
                          "a pair adds its trade's price"),
        sa.Column("pair_count", sa.Integer, nullable=False, comment="The option's pairs: trades in its group"),
        sa.Column("best_pair_score", sa.Float, comment="score + the group's highest price: the option's best pair"),
        sa.Column("worst_pair_score", sa.Float, comment="score + the group's lowest price: the option's worst pair"),
        sa.Column("loan_pair_count", sa.Integer, nullable=False,
                  comment="Eligible pairs of the loan (all its options)"),
        _id("chosen_trade_id", nullable=True, comment="Trade the allocation chose for the loan (NULL: none)"),
        sa.Column("chosen_score", sa.Float, comment="Score of the chosen pair (NULL: none)"),
        sa.PrimaryKeyConstraint("run_id", "loan_id", "trade_group", name="pk_pfill_candidate_options"),
        comment="Candidates: every eligible option (loan x trade group) of the run; its pairs are the group's trades",
    )
    sa.Index("ix_pfill_candidate_options_run_group", options.c.run_id, options.c.trade_group)
    groups = sa.Table(
        "pfill_trade_groups",
        metadata,
        _run(),
        _tenant(),
        _id("trade_id", nullable=False),
        sa.Column("trade_group", sa.Integer, nullable=False,
                  comment="Trades of one instrument, coupon and settlement date: the same loans are eligible for them"),
        sa.Column("trade_order", sa.Integer, nullable=False,
                  comment="Position of the trade in the run (by trade id): equal scores rank the lower first"),
        sa.Column("group_rank", sa.Integer, nullable=False,
                  comment="Position in its group by price, best first (ties: trade_order)"),
        sa.Column("agency", sa.String(_CODE)),
        sa.Column("instrument", sa.String(_CODE)),
        sa.Column("coupon", sa.Float),
        sa.Column("settlement_date", sa.Date),
        sa.Column("price", sa.Float, comment="Trade price, points"),
        sa.PrimaryKeyConstraint("run_id", "trade_id", name="pk_pfill_trade_groups"),
        comment="The run's open trades by candidate group (a pair's score is its option's score + the trade's price)",
    )
    sa.Index("ix_pfill_trade_groups_run_group", groups.c.run_id, groups.c.trade_group, groups.c.price,
             groups.c.trade_order)
    return metadata


def upgrade() -> None:
    for table in tables().sorted_tables:
        create(table)
    op.drop_table(CANDY)


def downgrade() -> None:
    create(baseline().tables[CANDY])
    for table in reversed(tables().sorted_tables):
        op.drop_table(table.name)
