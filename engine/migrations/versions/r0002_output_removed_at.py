"""output_removed_at: retention keeps old runs' history, log and synthetic rows

Retention used to delete old runs entirely; it now removes only their user-facing rows and records
when in pfill_run_history.output_removed_at (nullable, so existing rows stay as they are: NULL).
`pfill runs purge` deletes old runs entirely.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COMMENT = "When retention removed the run's user-facing rows (UTC); the log and synthetic rows are kept"


def upgrade() -> None:
    op.add_column("pfill_run_history", sa.Column("output_removed_at", sa.DateTime, nullable=True, comment=COMMENT))


def downgrade() -> None:
    with op.batch_alter_table("pfill_run_history") as batch:
        batch.drop_column("output_removed_at")
