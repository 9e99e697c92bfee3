"""PostgreSQL for the tests: the machine's server on 127.0.0.1:5432, database `test`.

`pg_admin` checks the server once per session (a skip on a developer machine whose server
refuses connections, a failure in CI); `pg_url` gives one test a freshly created schema,
selected through libpq's `options=-csearch_path=...` and dropped afterwards, so that parallel
runs (xdist workers, other checkouts) and Airflow's own tables in the same database never meet.
Use them in a conftest or test module with `from tests.support.postgres import pg_admin, pg_url`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

PG_URL = os.environ.get("RETURNS_SYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


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
