"""Loop actions: a fourth kind, `disposition` (every returned unit's disposition, optional).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Only the CHECK constraint on `loop_actions.action` changes. SQLite cannot alter a constraint,
so batch mode rebuilds the table there (copying the rows); PostgreSQL drops and re-creates it.
"""

from __future__ import annotations

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_NAME = "ck_loop_actions_action"


def _allow(kinds: list[str]) -> None:
    quoted = ", ".join(f"'{kind}'" for kind in kinds)
    with op.batch_alter_table("loop_actions") as batch:
        batch.drop_constraint(_NAME, type_="check")
        batch.create_check_constraint(_NAME, f"action IN ({quoted})")


def upgrade() -> None:
    _allow(["process", "flag", "note", "disposition"])


def downgrade() -> None:
    op.execute("DELETE FROM loop_actions WHERE action = 'disposition'")
    _allow(["process", "flag", "note"])
