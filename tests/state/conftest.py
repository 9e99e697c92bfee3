"""Fixtures for the state-store tests: every store test runs on SQLite and on PostgreSQL.

SQLite gets a fresh file under tmp_path. PostgreSQL gets a freshly created schema per test
(selected through libpq's `options=-csearch_path=...`), dropped afterwards, so parallel runs
and Airflow's own tables in the same database are never touched. PostgreSQL tests skip only
when the server refuses connections and CI is not "true"; in CI they fail loudly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from include.returns_sync.state import StateStore
from tests.state.support import FakeClock
from tests.support.postgres import pg_admin, pg_url  # noqa: F401 (fixtures)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


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
