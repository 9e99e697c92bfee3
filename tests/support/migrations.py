"""Move a state store to any revision, up or down, as the migration tests need."""

from __future__ import annotations

from alembic import command
from sqlalchemy.engine import Engine

from include.returns_sync.state.migration import alembic_config


def run_alembic(engine: Engine, action: str, revision: str) -> None:
    """`alembic <action> <revision>` ("upgrade" / "downgrade") on the store at `engine`."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)
