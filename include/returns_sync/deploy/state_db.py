"""`python -m include.returns_sync.deploy.state_db`: create, upgrade and inspect the state store.

The tasks migrate the state store themselves on first use, so nothing here is required. It
exists so that a deployment can do the work up front, where a failure is loud and early:

* `create`  - create the PostgreSQL database named by `returns_sync_db` if it is missing
  (the compose init job runs it; a fresh PostgreSQL volume only has Airflow's database);
* `upgrade` - bring the schema to the revision this code ships (run it before new workers
  start after an upgrade, see docs/OPERATIONS.md);
* `status`  - print the database's revision and the code's, exit 1 when they differ.

The connection is read from `--url`, else `AIRFLOW_CONN_RETURNS_SYNC_DB`, else (for `upgrade`
and `status`) Airflow's connection `returns_sync_db`. Passwords are never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from include.returns_sync.state import StateStore, parse_connection
from include.returns_sync.state.migration import head_revision
from include.returns_sync.state.url import CONN_ID, describe

ENV_VAR = "AIRFLOW_CONN_" + CONN_ID.upper()
#: The database every PostgreSQL server has; CREATE DATABASE must run from another database.
MAINTENANCE_DB = "postgres"


def ensure_database(url: URL) -> bool:
    """Create the PostgreSQL database `url` names unless it exists; True when it was created.

    SQLite needs nothing (the file appears on first write), so it returns False. The login in
    `url` needs the CREATEDB privilege only when the database is actually missing.
    """
    if url.get_backend_name() != "postgresql":
        return False
    name = url.database
    if not name:
        raise ValueError(f"{CONN_ID}: the connection names no database")
    engine = create_engine(url.set(database=MAINTENANCE_DB), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if exists:
                return False
            quoted = conn.dialect.identifier_preparer.quote_identifier(name)
            conn.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    finally:
        engine.dispose()


def _connection_value(explicit: str | None) -> str | None:
    return explicit or os.environ.get(ENV_VAR) or None


def _store(explicit: str | None) -> StateStore:
    """The store for `--url`/the env var, or the one the tasks use (Airflow's connection)."""
    value = _connection_value(explicit)
    if value:
        return StateStore.from_url(value)
    from include.returns_sync import runtime

    store: StateStore = runtime.state_store()
    return store


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m include.returns_sync.deploy.state_db",
        description="Create, upgrade or inspect the returns-sync state store.",
    )
    parser.add_argument("command", choices=("create", "upgrade", "status"))
    parser.add_argument(
        "--url", help=f"connection URI or JSON (default: ${ENV_VAR}, then Airflow's {CONN_ID})"
    )
    args = parser.parse_args(argv)

    if args.command == "create":
        value = _connection_value(args.url)
        if not value:
            parser.error(f"create needs --url or {ENV_VAR}")
        url = parse_connection(value)
        created = ensure_database(url)
        print(f"{describe(url)}: {'created' if created else 'already exists'}")
        return 0

    store = _store(args.url)
    try:
        if args.command == "upgrade":
            before = store.revision()
            store.migrate()
            print(f"{store.url}: {before or 'empty'} -> {store.revision()}")
            return 0
        current, head = store.revision(), head_revision()
        print(f"{store.url}: database at {current or 'empty'}, code at {head}")
        return 0 if current == head else 1
    finally:
        store.dispose()


if __name__ == "__main__":
    sys.exit(main())
