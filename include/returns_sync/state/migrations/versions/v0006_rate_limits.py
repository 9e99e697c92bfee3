"""Rate limits shared by every process of a deployment, keyed by vendor account.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

One row per vendor account (a Loop API key, a Whiplash account): the limiter's theoretical
arrival time (GCRA), in seconds since the epoch. Every process that calls the vendor for that
account reserves its send time by updating this one row, so any number of tasks on any number
of workers together stay under the vendor's limit.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("tat", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_rate_limits"),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
