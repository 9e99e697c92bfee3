"""OAuth tokens: one shared token slot per connection, with a refresh lease.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

`oauth_tokens` grows from "the rotated refresh token" into the connection's token slot shared
by every process: the current access token (Fernet ciphertext) and when to renew it, the connection
value the stored chain descends from (`origin`, a SHA-256 fingerprint, so a new refresh token in
the connection wins over the stored one), a `version` bumped by every write (compare-and-swap),
and a lease (`lease_owner`, `lease_until`) so that only one process refreshes at a time.
`refresh_token` becomes nullable: a client-credentials slot has none. SQLite cannot alter a
column, so batch mode rebuilds the (tiny) table there; PostgreSQL alters it in place.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

#: Migrations never import the live schema (it moves on); the type as revision 0001 wrote it.
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("oauth_tokens") as batch:
        batch.alter_column("refresh_token", existing_type=sa.Text(), nullable=True)
        batch.add_column(sa.Column("access_token", sa.Text(), nullable=True))
        batch.add_column(sa.Column("access_renew_at", TS, nullable=True))
        batch.add_column(sa.Column("origin", sa.Text(), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("lease_owner", sa.Text(), nullable=True))
        batch.add_column(sa.Column("lease_until", TS, nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM oauth_tokens WHERE refresh_token IS NULL")
    with op.batch_alter_table("oauth_tokens") as batch:
        for column in (
            "lease_until",
            "lease_owner",
            "version",
            "origin",
            "access_renew_at",
            "access_token",
        ):
            batch.drop_column(column)
        batch.alter_column("refresh_token", existing_type=sa.Text(), nullable=False)
