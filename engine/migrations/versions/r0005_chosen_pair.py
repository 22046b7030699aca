"""chosen pair: the chosen pair's score moves from every candidate option to the guide

pfill_candidate_options repeated the loan's chosen trade and score on each of its options, so the
table could only be written once the allocation was done. The guide has the chosen trade already; it
gains `score` (the chosen pair's score), and the two columns leave the options, which a run now writes
beside its allocation. Runs from before keep their chosen pairs: the score is copied into their guide.
Pool Candidates reads the chosen pair from the guide.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pfill.engine.migrations.versions.r0003_candidate_options import tables as candidate_tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

GUIDE, OPTIONS = "pfill_powerfill_guide", "pfill_candidate_options"
SCORE_COMMENT = ("Score of the chosen candidate pair, points: the option's score + the trade's price "
                 "(NULL: a locked loan, placed without a candidate)")
CHOSEN_TRADE_COMMENT = "Trade the allocation chose for the loan (NULL: none)"  # as r0003 made them
# the options as r0003 made them (SQLite recreates the table to drop a column, offline too)
_OPTIONS_0003 = candidate_tables().tables[OPTIONS]


def upgrade() -> None:
    op.add_column(GUIDE, sa.Column("score", sa.Float, nullable=True, comment=SCORE_COMMENT))
    op.execute(f"UPDATE {GUIDE} SET score = (SELECT MAX(c.chosen_score) FROM {OPTIONS} c WHERE c.run_id = "
               f"{GUIDE}.run_id AND c.loan_id = {GUIDE}.loan_id AND c.chosen_trade_id = {GUIDE}.trade_id)")
    with op.batch_alter_table(OPTIONS, copy_from=_OPTIONS_0003) as batch:
        batch.drop_column("chosen_trade_id")
        batch.drop_column("chosen_score")


def downgrade() -> None:
    with op.batch_alter_table(OPTIONS) as batch:
        batch.add_column(sa.Column("chosen_trade_id", sa.String(36), nullable=True, comment=CHOSEN_TRADE_COMMENT))
        batch.add_column(sa.Column("chosen_score", sa.Float, comment="Score of the chosen pair (NULL: none)"))
    op.execute(f"UPDATE {OPTIONS} SET chosen_trade_id = (SELECT g.trade_id FROM {GUIDE} g WHERE g.run_id = "
               f"{OPTIONS}.run_id AND g.loan_id = {OPTIONS}.loan_id AND g.score IS NOT NULL), chosen_score = "
               f"(SELECT g.score FROM {GUIDE} g WHERE g.run_id = {OPTIONS}.run_id AND g.loan_id = {OPTIONS}.loan_id)")
    with op.batch_alter_table(GUIDE) as batch:
        batch.drop_column("score")
