"""Engines tuned for the store: SQLite safe across Airflow task processes, PostgreSQL pooled.

SQLite: WAL journal (readers never block the writer), a busy timeout instead of instant
"database is locked" errors, and SQLAlchemy (not the sqlite3 module) emitting BEGIN, so that
write transactions start with `BEGIN IMMEDIATE`. Taking the write lock up front means a
transaction that reads then writes can never fail half-way with SQLITE_BUSY; it waits its turn.

Both: pools are dropped in a forked child (Airflow forks task processes), because a database
connection must never be shared between two processes.
"""

from __future__ import annotations

import os
import sqlite3
import time
import weakref
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection

#: Execution option that marks a connection as a writer (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "returns_sync_write"
SQLITE_BUSY_TIMEOUT_S = 30.0


def build_engine(url: URL, *, sqlite_busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> Engine:
    """Create the engine for `url` with the settings described in the module docstring."""
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"timeout": sqlite_busy_timeout_s, "check_same_thread": False},
        )
        _configure_sqlite(engine, sqlite_busy_timeout_s)
    else:
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = 10
        if "application_name" not in url.query:
            connect_args["application_name"] = "returns-sync"
        engine = create_engine(
            url, pool_pre_ping=True, pool_size=3, max_overflow=5, connect_args=connect_args
        )
    _dispose_pool_after_fork(engine)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (see the "begin" hook below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            _enable_wal(cursor, busy_timeout_s)
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writer = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def _enable_wal(cursor: Any, busy_timeout_s: float) -> None:
    """Switch the file to WAL once. The switch needs a moment of exclusive access and SQLite
    does not apply the busy timeout to it, so two processes opening a new file at once can see
    "database is locked": read the mode first and retry the switch briefly."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        mode = cursor.execute("PRAGMA journal_mode").fetchone()
        if mode and str(mode[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _dispose_pool_after_fork(engine: Engine) -> None:
    ref = weakref.ref(engine)

    def _after_fork_in_child() -> None:
        alive = ref()
        if alive is not None:
            # close=False: the parent still owns those sockets/file handles.
            alive.dispose(close=False)

    os.register_at_fork(after_in_child=_after_fork_in_child)
