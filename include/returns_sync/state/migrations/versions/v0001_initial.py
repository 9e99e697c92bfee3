"""Initial state store: sync records, decisions, Loop actions, watermarks, inbox, tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Written out by hand (not `metadata.create_all`) so this revision keeps meaning the same thing
after `schema.py` evolves; a test checks that the migrated database matches `schema.py`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)


def _one_of(column: str, values: list[str], name: str) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=name)


def upgrade() -> None:
    op.create_table(
        "sync_records",
        sa.Column("loop_return_id", sa.Text(), nullable=False),
        sa.Column("whiplash_return_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason_code", sa.Text(), nullable=True),
        sa.Column("reason_detail", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("claim_token", sa.Text(), nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("claimed_from", sa.Text(), nullable=True),
        sa.Column("label_status", sa.Text(), nullable=True),
        sa.Column("label_pre_transit_at", TS, nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("last_run_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("loop_return_id", name="pk_sync_records"),
        sa.UniqueConstraint("whiplash_return_id", name="uq_sync_records_whiplash_return_id"),
        _one_of(
            "status",
            ["claimed", "created", "adopted", "unmappable", "failed"],
            "ck_sync_records_status",
        ),
        _one_of("source", ["poll", "webhook", "backfill", "manual"], "ck_sync_records_source"),
        sa.CheckConstraint(
            "status <> 'claimed' OR (claim_token IS NOT NULL AND claimed_at IS NOT NULL)",
            name="ck_sync_records_claim_has_token",
        ),
        sa.CheckConstraint(
            "status NOT IN ('created', 'adopted') OR whiplash_return_id IS NOT NULL",
            name="ck_sync_records_done_has_whiplash_id",
        ),
    )
    op.create_index("ix_sync_records_status_updated_at", "sync_records", ["status", "updated_at"])

    op.create_table(
        "decisions",
        sa.Column("whiplash_return_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("loop_return_id", sa.Text(), nullable=True),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("reason_codes", sa.Text(), server_default="[]", nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("decided_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("whiplash_return_id", name="pk_decisions"),
        _one_of("verdict", ["process", "flag", "skip"], "ck_decisions_verdict"),
    )
    op.create_index("ix_decisions_loop_return_id", "decisions", ["loop_return_id"])

    op.create_table(
        "loop_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("loop_return_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("vendor_code", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_loop_actions"),
        sa.UniqueConstraint(
            "loop_return_id", "action", name="uq_loop_actions_loop_return_id_action"
        ),
        _one_of("action", ["process", "flag", "note"], "ck_loop_actions_action"),
        _one_of("status", ["intent", "sent", "failed", "unknown"], "ck_loop_actions_status"),
    )

    op.create_table(
        "watermarks",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_watermarks"),
    )

    op.create_table(
        "webhook_inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("dedup_key", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("processed_at", TS, nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_inbox"),
        sa.UniqueConstraint("source", "dedup_key", name="uq_webhook_inbox_source_dedup_key"),
        _one_of("source", ["loop", "whiplash"], "ck_webhook_inbox_source"),
        _one_of("status", ["new", "dispatched", "done", "failed"], "ck_webhook_inbox_status"),
    )
    op.create_index(
        "ix_webhook_inbox_status_source_id", "webhook_inbox", ["status", "source", "id"]
    )

    op.create_table(
        "oauth_tokens",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_oauth_tokens"),
    )


def downgrade() -> None:
    op.drop_table("oauth_tokens")
    op.drop_index("ix_webhook_inbox_status_source_id", table_name="webhook_inbox")
    op.drop_table("webhook_inbox")
    op.drop_table("watermarks")
    op.drop_table("loop_actions")
    op.drop_index("ix_decisions_loop_return_id", table_name="decisions")
    op.drop_table("decisions")
    op.drop_index("ix_sync_records_status_updated_at", table_name="sync_records")
    op.drop_table("sync_records")
