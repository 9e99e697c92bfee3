"""Alembic environment of the returns-sync state store.

`StateStore.migrate()` runs this with an open connection already inside a locked transaction
(see `state/migration.py`). For authoring new revisions from a shell, pass the database as
`-x url=...` or `RETURNS_SYNC_DB=...` (URI or Airflow JSON form).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from include.returns_sync.state.schema import VERSION_TABLE, metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_from_shell() -> None:
    from include.returns_sync.settings import settings
    from include.returns_sync.state.engine import build_engine
    from include.returns_sync.state.url import parse_connection

    raw = context.get_x_argument(as_dictionary=True).get("url") or settings().migrations_db
    if not raw:
        raise SystemExit("returns-sync migrations: pass -x url=... or set RETURNS_SYNC_DB")
    engine = build_engine(parse_connection(raw))
    try:
        with engine.connect() as connection:
            _configure_and_run(connection)
            connection.commit()
    finally:
        engine.dispose()


_given = context.config.attributes.get("connection")
if _given is not None:
    _configure_and_run(_given)
else:
    _run_from_shell()
