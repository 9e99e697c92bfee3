"""Webhook inbox: why an event was closed (`reason`), e.g. the no-work reason of an ignored one.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

An event that needs no work (a label status we do not act on, an event that names no resource)
used to be closed with nothing but a log line; the reason now stays with the row, so an
operator can see in the state store why a delivery led to nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("webhook_inbox", sa.Column("reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_inbox") as batch:
        batch.drop_column("reason")
