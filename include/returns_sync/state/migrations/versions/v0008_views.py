"""Views: what the operator views need (issue 14): search keys, which run did each step, indexes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

New columns (all nullable: rows written before this revision simply lack them):

- sync_records: `order_name`, `tracking_number` (searchable; from the Loop return we claimed);
  `last_dag_id` + `last_trigger` next to the existing `last_run_id` (the run of the latest
  attempt and what started it: webhook, poll, backfill, manual); `rma_run_id`, `rma_dag_id`,
  `rma_trigger`: the run that created or adopted the RMA, kept when later runs touch the row.
- decisions: `dag_id` (next to the existing `run_id`).
- loop_actions: `run_id`, `dag_id`: the run that last wrote the action (intent, outcome).

Indexes for the views' reads (each also with `merchant` first where the view filters by it):
case-insensitive exact search on `lower(loop_return_id)`, `lower(order_name)`,
`lower(tracking_number)`; the needs-attention queue (`status`, `first_seen_at`); the flagged
queue and the trend (`verdict`, `decided_at`); failed Loop actions (`status`, `updated_at`);
RMAs per day and backfill misses (`created_at`, `rma_trigger`); a run's returns (`last_run_id`,
`decisions.run_id`, `loop_actions.run_id`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = {
    "sync_records": (
        "order_name",
        "tracking_number",
        "last_dag_id",
        "last_trigger",
        "rma_run_id",
        "rma_dag_id",
        "rma_trigger",
    ),
    "decisions": ("dag_id",),
    "loop_actions": ("run_id", "dag_id"),
}

#: (name, table, columns or SQL expressions); the names are schema.py's.
_INDEXES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("ix_sync_records_lower_loop_return_id", "sync_records", ("lower(loop_return_id)",)),
    ("ix_sync_records_lower_order_name", "sync_records", ("lower(order_name)",)),
    ("ix_sync_records_lower_tracking_number", "sync_records", ("lower(tracking_number)",)),
    ("ix_sync_records_status_first_seen_at", "sync_records", ("status", "first_seen_at")),
    (
        "ix_sync_records_merchant_status_first_seen_at",
        "sync_records",
        ("merchant", "status", "first_seen_at"),
    ),
    ("ix_sync_records_created_at", "sync_records", ("created_at",)),
    ("ix_sync_records_merchant_created_at", "sync_records", ("merchant", "created_at")),
    ("ix_sync_records_rma_trigger_created_at", "sync_records", ("rma_trigger", "created_at")),
    ("ix_sync_records_last_run_id", "sync_records", ("last_run_id",)),
    ("ix_decisions_verdict_decided_at", "decisions", ("verdict", "decided_at")),
    (
        "ix_decisions_merchant_verdict_decided_at",
        "decisions",
        ("merchant", "verdict", "decided_at"),
    ),
    ("ix_decisions_run_id", "decisions", ("run_id",)),
    ("ix_loop_actions_status_updated_at", "loop_actions", ("status", "updated_at")),
    ("ix_loop_actions_run_id", "loop_actions", ("run_id",)),
)


def upgrade() -> None:
    for table, columns in _COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.add_column(sa.Column(column, sa.Text(), nullable=True))
    for name, table, parts in _INDEXES:
        op.create_index(name, table, [sa.text(p) if "(" in p else p for p in parts])


def downgrade() -> None:
    for name, table, _parts in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
    for table, columns in _COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in reversed(columns):
                batch.drop_column(column)
