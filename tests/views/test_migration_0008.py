"""Revision 0008 keeps every row written before it, and its downgrade removes only what it added."""

from __future__ import annotations

from sqlalchemy import inspect, text

from include.returns_sync.state import StateStore
from include.returns_sync.state.migration import head_revision
from include.returns_sync.views import queries
from tests.support.migrations import run_alembic


def test_0008_upgrades_old_rows_and_downgrades_cleanly(store: StateStore) -> None:
    assert head_revision() == "0008"
    run_alembic(store.engine, "downgrade", "0007")
    with store.engine.begin() as conn:  # what the 0007 code wrote
        conn.execute(
            text(
                "INSERT INTO sync_records (merchant, loop_return_id, whiplash_return_id, status, "
                "attempts, source, first_seen_at, created_at, updated_at, last_run_id) VALUES "
                "('acme', '900', 5, 'created', 1, 'poll', '2026-03-01 10:00:00', "
                "'2026-03-01 10:01:00', '2026-03-01 10:01:00', NULL)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO decisions (merchant, whiplash_return_id, loop_return_id, verdict, "
                "reason_codes, run_id, decided_at) VALUES ('acme', 5, '900', 'flag', "
                "'[\"DAMAGED\"]', 'scheduled__old', '2026-03-02 10:00:00')"
            )
        )
    run_alembic(store.engine, "upgrade", "0008")

    story = queries.timeline(store, "acme", "900")
    assert story is not None and story.rma is not None and story.order_name is None
    assert story.rma.run.run_id is None  # unknown before 0008: shown as such, not invented
    (receipt,) = story.receipts
    assert receipt.reason_codes == ["DAMAGED"] and receipt.lines == []
    summary = queries.run_summary(store, "whiplash_receipts_to_loop__acme", "scheduled__old")
    assert summary is not None and summary.counts == {"flag": 1}

    run_alembic(store.engine, "downgrade", "0007")
    with store.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("sync_records")}
        indexes = {i["name"] for i in inspect(conn).get_indexes("loop_actions")}
        kept = conn.execute(text("SELECT count(*) FROM decisions")).scalar()
    assert "order_name" not in columns and "rma_run_id" not in columns
    assert "ix_loop_actions_run_id" not in indexes
    assert kept == 1
