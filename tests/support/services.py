"""Throw-away PostgreSQL databases and a private Redis database for one end-to-end run.

The servers are the machine's own (PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379,
started by `.ci/run` when down). Each run gets databases with a random suffix, dropped
afterwards even when connections are still open, and a Redis database number that it claims
with an owner key so that a concurrent run cannot pick the same one.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

PG_URL = os.environ.get("RETURNS_SYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_HOST = os.environ.get("RETURNS_SYNC_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("RETURNS_SYNC_TEST_REDIS_PORT", "6379"))
OWNER_KEY = "returns_sync_e2e_owner"


def _unavailable(what: str, error: object) -> None:
    """Fail in CI (the services must be there), skip on a developer machine without them."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required for the end-to-end test: {error}")
    pytest.skip(f"{what} is not available: {error}")


class PostgresDatabases:
    """Creates databases on the test server and drops every one of them on `drop_all`."""

    def __init__(self, admin_url: str = PG_URL) -> None:
        self.admin_url = make_url(admin_url).set(drivername="postgresql+psycopg2")
        self.suffix = uuid.uuid4().hex[:10]
        self.created: list[str] = []
        self._engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")

    def check(self) -> None:
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            _unavailable(f"PostgreSQL at {self.admin_url.render_as_string()}", exc.orig)

    def name(self, role: str) -> str:
        return f"rs_e2e_{role}_{self.suffix}"

    def url(self, role: str) -> URL:
        """The URL of database `role` of this run (created or not)."""
        return self.admin_url.set(database=self.name(role))

    def create(self, role: str) -> URL:
        name = self.name(role)
        with self._engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.url(role)

    def adopt(self, role: str) -> None:
        """Drop database `role` at the end too (created by someone else during the run)."""
        self.created.append(self.name(role))

    def exists(self, role: str) -> bool:
        with self._engine.connect() as conn:
            row = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": self.name(role)}
            ).first()
            return row is not None

    def drop_all(self) -> None:
        with self._engine.connect() as conn:
            for name in reversed(self.created):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.clear()
        self._engine.dispose()


@contextmanager
def private_redis_db() -> Iterator[int]:
    """A Redis database number that was empty and is now ours; flushed and released after."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis at {REDIS_HOST}:{REDIS_PORT}", exc)
    client.close()
    token = uuid.uuid4().hex
    numbers = list(range(1, 16))
    random.shuffle(numbers)
    for number in numbers:
        db = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
        try:
            # Claim atomically, then make sure nobody else uses the database.
            if db.set(OWNER_KEY, token, nx=True, ex=3600) and db.dbsize() == 1:
                try:
                    yield number
                finally:
                    db.flushdb()
                return
            if db.get(OWNER_KEY) == token.encode():
                db.delete(OWNER_KEY)
        finally:
            db.close()
    pytest.fail(f"no free Redis database (1-15) on {REDIS_HOST}:{REDIS_PORT}")


def redis_url(number: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
