"""Fixtures for the state-store tests: every store test runs on SQLite and on PostgreSQL.

SQLite gets a fresh file under tmp_path. PostgreSQL gets a freshly created schema per test
(selected through libpq's `options=-csearch_path=...`), dropped afterwards, so parallel runs
and Airflow's own tables in the same database are never touched. PostgreSQL tests skip only
when the server refuses connections and CI is not "true"; in CI they fail loudly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from include.returns_sync.state import StateStore
from tests.state.support import FakeClock

PG_URL = os.environ.get("RETURNS_SYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An engine on the test database, or a skip/fail when the server is not there."""
    url = make_url(PG_URL).set(drivername="postgresql+psycopg2")
    shown = url.render_as_string(hide_password=True)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        refused = "Connection refused" in str(exc.orig)
        if not refused or os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {shown} is required for these tests: {exc.orig}")
        pytest.skip(f"PostgreSQL at {shown} refused the connection (CI is not 'true')")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin: Engine) -> Iterator[str]:
    """A URI whose connections live in a freshly created schema, dropped after the test."""
    schema = f"rs_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with pg_admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with pg_admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URI for an empty database of the parametrised backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_store(db_url: str) -> Iterator[Callable[..., StateStore]]:
    """Factory for extra stores on the same database (disposed after the test)."""
    made: list[StateStore] = []

    def factory(clock: Callable[[], datetime] | None = None) -> StateStore:
        store = StateStore.from_url(db_url, clock=clock)
        made.append(store)
        return store

    yield factory
    for store in made:
        store.dispose()


@pytest.fixture
def store(make_store: Callable[..., StateStore], clock: FakeClock) -> StateStore:
    """A migrated store whose clock the test controls."""
    store = make_store(clock)
    store.migrate()
    return store
