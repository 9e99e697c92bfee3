"""Versioned migrations: idempotent, safe to race, own version table, matching schema.py."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.fernet import Fernet
from sqlalchemy import inspect, select, text

from include.returns_sync.state import StateStore
from include.returns_sync.state.migration import head_revision
from include.returns_sync.state.schema import VERSION_TABLE, metadata, sync_records
from include.returns_sync.state.tokens import encrypt
from tests.support.migrations import run_alembic

OWN_TABLES = {
    "sync_records",
    "decisions",
    "loop_actions",
    "watermarks",
    "webhook_inbox",
    "oauth_tokens",
    "rate_limits",
}


def test_migrate_creates_every_table_and_its_own_version_table(
    make_store: Callable[..., StateStore],
) -> None:
    store = make_store()
    assert store.revision() is None
    store.migrate()
    tables = set(inspect(store.engine).get_table_names())
    assert tables == OWN_TABLES | {VERSION_TABLE}
    assert "alembic_version" not in tables  # Airflow's own version table stays untouched
    assert store.revision() == head_revision()


def test_migrating_twice_is_a_no_op_that_keeps_the_data(
    make_store: Callable[..., StateStore],
) -> None:
    store = make_store()
    store.migrate()
    store.claim_for_creation("1001", token="t", source="poll")
    store.migrate()
    assert store.revision() == head_revision()
    with store.engine.connect() as conn:
        versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        assert [v[0] for v in versions] == [head_revision()]
        assert conn.execute(select(sync_records.c.loop_return_id)).scalars().all() == ["1001"]


def test_migrated_database_matches_the_tables_the_code_uses(
    make_store: Callable[..., StateStore],
) -> None:
    store = make_store()
    store.migrate()
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        assert compare_metadata(context, metadata) == []


def _migrate_in_child(url: str, start: multiprocessing.synchronize.Event) -> None:
    start.wait(10)
    store = StateStore.from_url(url)
    store.migrate()
    store.dispose()


def test_two_processes_migrating_at_once_both_succeed(db_url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    children = [ctx.Process(target=_migrate_in_child, args=(db_url, start)) for _ in range(3)]
    for child in children:
        child.start()
    start.set()
    for child in children:
        child.join(30)
    assert [child.exitcode for child in children] == [0, 0, 0]
    store = StateStore.from_url(db_url)
    try:
        assert store.revision() == head_revision()
    finally:
        store.dispose()


def test_default_sqlite_lives_under_airflow_home_in_wal_mode(tmp_path: Path) -> None:
    store = StateStore.default_sqlite(tmp_path / "airflow-home")
    try:
        store.migrate()
        assert (tmp_path / "airflow-home" / "returns_sync" / "state.db").is_file()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000
    finally:
        store.dispose()


@pytest.mark.postgres
def test_postgres_store_stays_inside_its_own_schema(pg_url: str) -> None:
    store = StateStore.from_url(pg_url)
    try:
        store.migrate()
        with store.engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar()
            public = set(inspect(conn).get_table_names(schema="public"))
    finally:
        store.dispose()
    assert schema is not None and schema.startswith("rs_test_")
    assert not (OWN_TABLES | {VERSION_TABLE}) & public


def test_0004_keeps_a_refresh_token_stored_before_it_and_downgrades_cleanly(
    make_store: Callable[..., StateStore],
) -> None:
    key = Fernet.generate_key().decode()
    store = make_store()
    run_alembic(store.engine, "upgrade", "0003")
    with store.engine.begin() as conn:  # what the 0003 code wrote
        conn.execute(
            text("INSERT INTO oauth_tokens (name, refresh_token, updated_at) VALUES (:n, :t, :u)"),
            {"n": "whiplash_default", "t": encrypt("rotated-under-0003", key), "u": "2026-12-01"},
        )
    run_alembic(store.engine, "upgrade", "0004")
    slot = store.read_oauth_slot("whiplash_default", key)
    assert slot is not None
    assert (slot.refresh_token, slot.access_token, slot.origin) == (
        "rotated-under-0003",
        None,
        None,
    )
    assert store.acquire_oauth_lease("client-credentials-conn", "me", timedelta(seconds=5))
    run_alembic(store.engine, "downgrade", "0003")  # the slot without a refresh token goes away
    assert store.load_refresh_token("whiplash_default", key) == "rotated-under-0003"
    with store.engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM oauth_tokens")).scalars().all()
    assert names == ["whiplash_default"]
