"""Revision 0007: rows written before merchants existed belong to `default` and keep working."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import inspect, text

from include.returns_sync.state import StateStore
from include.returns_sync.state.migration import head_revision
from include.returns_sync.vocabulary import ActionKind, ActionStatus, SyncStatus, Verdict
from tests.state.support import FakeClock
from tests.support.migrations import run_alembic

MERCHANT_TABLES = ("sync_records", "decisions", "loop_actions", "watermarks", "webhook_inbox")
WHEN = "2026-03-01 10:00:00"


def _write_as_0006(store: StateStore) -> None:
    """One row per table, written with plain SQL the way the 0006 code wrote them."""
    statements = [
        (
            "INSERT INTO sync_records (loop_return_id, whiplash_return_id, status, attempts, "
            "source, first_seen_at, created_at, updated_at) "
            "VALUES ('1001', 9001, 'created', 1, 'poll', :t, :t, :t)",
            {},
        ),
        (
            "INSERT INTO sync_records (loop_return_id, status, attempts, reason_code, source, "
            "first_seen_at, updated_at) "
            "VALUES ('1002', 'unmappable', 1, 'UNKNOWN_SKU', 'poll', :t, :t)",
            {},
        ),
        (
            "INSERT INTO decisions (whiplash_return_id, loop_return_id, verdict, reason_codes, "
            "decided_at) VALUES (9001, '1001', 'flag', :codes, :t)",
            {"codes": json.dumps(["MISSING_ITEMS"])},
        ),
        (
            "INSERT INTO loop_actions (loop_return_id, action, status, attempts, created_at, "
            "updated_at) VALUES ('1001', 'flag', 'sent', 1, :t, :t)",
            {},
        ),
        (
            "INSERT INTO watermarks (name, value, updated_at) VALUES ('loop_poll', :t, :t)",
            {},
        ),
        (
            "INSERT INTO webhook_inbox (source, dedup_key, topic, resource_id, payload, "
            "received_at, status, attempts) "
            "VALUES ('loop', 'label|1003', 'label', '1003', '{}', :t, 'new', 0)",
            {},
        ),
    ]
    with store.engine.begin() as conn:
        for sql, params in statements:
            conn.execute(text(sql), {"t": WHEN, **params})


@pytest.fixture
def store_0006(make_store: Callable[..., StateStore], clock: FakeClock) -> StateStore:
    store = make_store(clock)
    run_alembic(store.engine, "upgrade", "0006")
    _write_as_0006(store)
    return store


def test_rows_written_before_0007_belong_to_default_and_keep_working(
    store_0006: StateStore,
) -> None:
    store = store_0006
    store.migrate()
    with store.engine.connect() as conn:
        for table in MERCHANT_TABLES:
            merchants = conn.execute(text(f"SELECT DISTINCT merchant FROM {table}")).scalars()
            assert list(merchants) == ["default"], table

    assert store.merchant == "default"
    records = store.get_sync_records(["1001", "1002"])
    assert records["1001"].status is SyncStatus.CREATED
    assert records["1001"].merchant == "default"
    assert store.find_by_whiplash_id([9001])[9001].loop_return_id == "1001"
    assert store.retry_candidates(10) == ["1002"]
    assert store.get_decisions([9001])[9001].verdict is Verdict.FLAG
    # the old rows still guard: no second decision, no second flag
    assert store.record_decision(9001, verdict="process")[1] is False
    claim = store.begin_action("1001", ActionKind.FLAG)
    assert (claim.created, claim.status) == (False, ActionStatus.SENT)
    assert store.get_watermark("loop_poll") is not None
    assert [
        event.resource_id for event in store.inbox_claim("loop", 10, "w", timedelta(minutes=1))
    ] == ["1003"]
    assert store.merchant_of_whiplash_return(9001) == "default"
    # another merchant sees none of it
    acme = store.for_merchant("acme")
    assert acme.get_sync_records(["1001", "1002"]) == {}
    assert acme.get_decisions([9001]) == {}
    assert acme.get_watermark("loop_poll") is None


def test_downgrade_below_0007_works_with_default_rows_only(store_0006: StateStore) -> None:
    store = store_0006
    store.migrate()
    store.claim_for_creation("1004", token="t", source="webhook")
    run_alembic(store.engine, "downgrade", "0006")
    assert store.revision() == "0006"
    columns = {c["name"] for c in inspect(store.engine).get_columns("sync_records")}
    assert "merchant" not in columns
    with store.engine.connect() as conn:
        ids = conn.execute(text("SELECT loop_return_id FROM sync_records ORDER BY 1")).scalars()
        assert list(ids) == ["1001", "1002", "1004"]
    store.migrate()  # and up again
    assert set(store.get_sync_records(["1001", "1002", "1004"])) == {"1001", "1002", "1004"}


def test_downgrade_below_0007_refuses_while_other_merchants_have_rows(
    store_0006: StateStore,
) -> None:
    store = store_0006
    store.migrate()
    store.for_merchant("acme").advance_watermark("loop_poll", store._now())
    store.for_merchant("zeta").inbox_put("loop", "k", "label", "1", {})
    with pytest.raises(RuntimeError, match=r"watermarks: acme; webhook_inbox: zeta"):
        run_alembic(store.engine, "downgrade", "0006")
    assert store.revision() == head_revision()  # nothing half-done
    assert store.for_merchant("acme").get_watermark("loop_poll") is not None
