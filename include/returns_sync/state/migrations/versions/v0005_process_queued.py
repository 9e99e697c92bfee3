"""Loop actions: a `queued` status (Process accepted, not yet closed); inbox source `loop_return`.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-06

Loop's Process is asynchronous: its `true` means "queued". A Process so answered is now
`queued` until Loop shows the return closed (re-read, or a `return.closed` webhook); only then is
it `sent`. A processing failure (`return.processing.failed`) makes it `failed` with code
`PROCESS_FAILED`. Webhooks of Loop's `return` and `return.processing` topics are stored with
source `loop_return`, so the receipts DAG claims them and the RMA DAG does not.

Only CHECK constraints change. SQLite cannot alter a constraint, so batch mode rebuilds the
tables there (copying the rows); PostgreSQL drops and re-creates them.
"""

from __future__ import annotations

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def _allow(table: str, column: str, values: list[str]) -> None:
    name = f"ck_{table}_{column}"
    quoted = ", ".join(f"'{value}'" for value in values)
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(name, type_="check")
        batch.create_check_constraint(name, f"{column} IN ({quoted})")


def upgrade() -> None:
    _allow("loop_actions", "status", ["intent", "queued", "sent", "failed", "unknown"])
    _allow("webhook_inbox", "source", ["loop", "loop_return", "whiplash"])


def downgrade() -> None:
    # A queued Process was accepted by Loop but not confirmed: the old schema's closest word is
    # `unknown` (resolved from Loop's state before anything is sent again).
    op.execute("UPDATE loop_actions SET status = 'unknown' WHERE status = 'queued'")
    op.execute("DELETE FROM webhook_inbox WHERE source = 'loop_return'")
    _allow("loop_actions", "status", ["intent", "sent", "failed", "unknown"])
    _allow("webhook_inbox", "source", ["loop", "whiplash"])
