"""Fixtures for the views tests: a migrated state store on SQLite and on PostgreSQL, whose clock
the test moves (a fresh SQLite file, or a fresh PostgreSQL schema per test)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.returns_sync.state import StateStore
from tests.support.postgres import pg_admin, pg_url  # noqa: F401 (fixtures)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


class Clock:
    """A "now" the test moves (aware, UTC)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[StateStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    made = StateStore.from_url(url, clock=clock)
    made.migrate()
    yield made
    made.dispose()
