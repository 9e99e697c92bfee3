"""Run the store's Alembic migrations safely from any number of processes at once.

Every Airflow task may call `StateStore.migrate()` on start-up, so two processes regularly
race here. The whole upgrade runs in one transaction that first takes a lock: PostgreSQL an
advisory transaction lock (scoped to the current schema), SQLite `BEGIN IMMEDIATE`. The loser
waits, then finds the version table at head and does nothing. Both databases have
transactional DDL, so a failed migration leaves nothing half-applied.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from include.returns_sync.state.engine import WRITE_OPTION
from include.returns_sync.state.schema import VERSION_TABLE

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    """Alembic configuration built in code (no ini file, no logging set-up to clobber Airflow's)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError("returns-sync state store: no migrations found")
    return head


def upgrade_to_head(engine: Engine) -> None:
    """Bring the database to the newest revision; a no-op when it is already there.

    The common case (already at head) is answered by a plain read, so task start-ups do not
    queue behind each other for the write lock.
    """
    if current_revision(engine) == head_revision():
        return
    config = alembic_config()
    with engine.connect() as connection:
        connection = connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || :key))"),
                    {"key": ":" + VERSION_TABLE},
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()
