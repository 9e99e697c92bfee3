"""Merchants: every return, decision, action, watermark and webhook carries its merchant.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

One state store serves every merchant of a deployment (issue 13). A `merchant` column (TEXT NOT
NULL, server default 'default') goes on sync_records, decisions, loop_actions, watermarks and
webhook_inbox, so every row written before this revision belongs to the merchant `default`,
whose DAGs keep today's ids: an existing deployment keeps its whole history.

The natural keys become per merchant, with the merchant first so that every query of a store
scoped to one merchant reads an index range of its own:

- sync_records: PRIMARY KEY (merchant, loop_return_id); UNIQUE (merchant, whiplash_return_id),
  plus a plain index on whiplash_return_id for "whose RMA is this?" (the Whiplash router);
- decisions: PRIMARY KEY (merchant, whiplash_return_id); index (merchant, loop_return_id);
- loop_actions: UNIQUE (merchant, loop_return_id, action) (never act twice, per merchant);
- watermarks: PRIMARY KEY (merchant, name);
- webhook_inbox: UNIQUE (merchant, source, dedup_key): Loop's dedup keys are built from the
  event's content (topic, return id, status, time), which two shops can share; index
  (merchant, status, source, id) for a merchant's claims, and the old (status, source, id)
  stays for the triggerer's one cross-merchant read of every merchant's waiting events.

oauth_tokens and rate_limits are keyed by vendor account and do not change.

SQLite cannot alter keys, so batch mode rebuilds those tables there (copying the rows);
PostgreSQL alters them in place. The downgrade refuses while rows of any other merchant exist
(it would have to drop them or merge their keys into the default merchant's): it names the
tables and merchants, so an operator can export or delete them first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

DEFAULT = "default"
TABLES = ("sync_records", "decisions", "loop_actions", "watermarks", "webhook_inbox")


def _merchant_column() -> sa.Column[str]:
    return sa.Column("merchant", sa.Text(), nullable=False, server_default=DEFAULT)


def upgrade() -> None:
    with op.batch_alter_table("sync_records") as batch:
        batch.add_column(_merchant_column())
        batch.drop_constraint("pk_sync_records", type_="primary")
        batch.create_primary_key("pk_sync_records", ["merchant", "loop_return_id"])
        batch.drop_constraint("uq_sync_records_whiplash_return_id", type_="unique")
        batch.create_unique_constraint(
            "uq_sync_records_merchant_whiplash_return_id", ["merchant", "whiplash_return_id"]
        )
        batch.drop_index("ix_sync_records_status_updated_at")
        batch.create_index(
            "ix_sync_records_merchant_status_updated_at", ["merchant", "status", "updated_at"]
        )
        batch.create_index("ix_sync_records_whiplash_return_id", ["whiplash_return_id"])

    with op.batch_alter_table("decisions") as batch:
        batch.add_column(_merchant_column())
        batch.drop_constraint("pk_decisions", type_="primary")
        batch.create_primary_key("pk_decisions", ["merchant", "whiplash_return_id"])
        batch.drop_index("ix_decisions_loop_return_id")
        batch.create_index("ix_decisions_merchant_loop_return_id", ["merchant", "loop_return_id"])

    with op.batch_alter_table("loop_actions") as batch:
        batch.add_column(_merchant_column())
        batch.drop_constraint("uq_loop_actions_loop_return_id_action", type_="unique")
        batch.create_unique_constraint(
            "uq_loop_actions_merchant_loop_return_id_action",
            ["merchant", "loop_return_id", "action"],
        )

    with op.batch_alter_table("watermarks") as batch:
        batch.add_column(_merchant_column())
        batch.drop_constraint("pk_watermarks", type_="primary")
        batch.create_primary_key("pk_watermarks", ["merchant", "name"])

    with op.batch_alter_table("webhook_inbox") as batch:
        batch.add_column(_merchant_column())
        batch.drop_constraint("uq_webhook_inbox_source_dedup_key", type_="unique")
        batch.create_unique_constraint(
            "uq_webhook_inbox_merchant_source_dedup_key", ["merchant", "source", "dedup_key"]
        )
        batch.create_index(
            "ix_webhook_inbox_merchant_status_source_id", ["merchant", "status", "source", "id"]
        )


def _refuse_other_merchants() -> None:
    """Raise, naming tables and merchants, while any row belongs to a merchant but `default`."""
    bind = op.get_bind()
    found: list[str] = []
    for table in TABLES:
        merchants = bind.execute(
            sa.text(
                f"SELECT DISTINCT merchant FROM {table} WHERE merchant <> :default "
                "ORDER BY merchant"
            ),
            {"default": DEFAULT},
        ).scalars()
        names = list(merchants)
        if names:
            found.append(f"{table}: {', '.join(names)}")
    if found:
        raise RuntimeError(
            "returns-sync state store: cannot downgrade below revision 0007 while rows of "
            "merchants other than 'default' exist (the older schema has one merchant only). "
            "Export or delete them first. Found: " + "; ".join(found)
        )


def downgrade() -> None:
    _refuse_other_merchants()
    with op.batch_alter_table("webhook_inbox") as batch:
        batch.drop_index("ix_webhook_inbox_merchant_status_source_id")
        batch.drop_constraint("uq_webhook_inbox_merchant_source_dedup_key", type_="unique")
        batch.create_unique_constraint("uq_webhook_inbox_source_dedup_key", ["source", "dedup_key"])
        batch.drop_column("merchant")

    with op.batch_alter_table("watermarks") as batch:
        batch.drop_constraint("pk_watermarks", type_="primary")
        batch.create_primary_key("pk_watermarks", ["name"])
        batch.drop_column("merchant")

    with op.batch_alter_table("loop_actions") as batch:
        batch.drop_constraint("uq_loop_actions_merchant_loop_return_id_action", type_="unique")
        batch.create_unique_constraint(
            "uq_loop_actions_loop_return_id_action", ["loop_return_id", "action"]
        )
        batch.drop_column("merchant")

    with op.batch_alter_table("decisions") as batch:
        batch.drop_index("ix_decisions_merchant_loop_return_id")
        batch.create_index("ix_decisions_loop_return_id", ["loop_return_id"])
        batch.drop_constraint("pk_decisions", type_="primary")
        batch.create_primary_key("pk_decisions", ["whiplash_return_id"])
        batch.drop_column("merchant")

    with op.batch_alter_table("sync_records") as batch:
        batch.drop_index("ix_sync_records_whiplash_return_id")
        batch.drop_index("ix_sync_records_merchant_status_updated_at")
        batch.create_index("ix_sync_records_status_updated_at", ["status", "updated_at"])
        batch.drop_constraint("uq_sync_records_merchant_whiplash_return_id", type_="unique")
        batch.create_unique_constraint("uq_sync_records_whiplash_return_id", ["whiplash_return_id"])
        batch.drop_constraint("pk_sync_records", type_="primary")
        batch.create_primary_key("pk_sync_records", ["loop_return_id"])
        batch.drop_column("merchant")
