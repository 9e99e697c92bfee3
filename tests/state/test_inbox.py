"""The webhook inbox stores each delivery once and hands each event to one worker at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from include.returns_sync.state import InboxSource, InboxStatus, StateStore
from tests.state.support import FakeClock

STALE = timedelta(minutes=5)


def put(store: StateStore, key: str, source: str = "loop") -> tuple[int, bool]:
    return store.inbox_put(source, key, "label.updated", "5001", {"id": key, "n": [1, 2]})


def test_a_duplicate_delivery_is_stored_once(store: StateStore) -> None:
    first_id, inserted = put(store, "dlv-1")
    again_id, again = put(store, "dlv-1")
    assert inserted and not again and again_id == first_id
    assert store.inbox_pending_count() == 1


def test_the_same_key_from_the_other_vendor_is_a_different_event(store: StateStore) -> None:
    put(store, "123", "loop")
    _, inserted = put(store, "123", "whiplash")
    assert inserted
    assert store.inbox_pending_count("loop") == 1
    assert store.inbox_pending_count(InboxSource.WHIPLASH) == 1


def test_claim_hands_out_new_events_oldest_first_with_their_payload(
    store: StateStore, clock: FakeClock
) -> None:
    ids = [put(store, f"dlv-{n}")[0] for n in range(5)]
    put(store, "other", "whiplash")
    batch = store.inbox_claim("loop", 3, "worker-a", STALE)
    assert [event.id for event in batch] == ids[:3]
    event = batch[0]
    assert event.status is InboxStatus.DISPATCHED and event.claimed_by == "worker-a"
    assert event.claimed_at == clock.now and event.attempts == 1
    assert event.payload == {"id": "dlv-0", "n": [1, 2]}
    assert event.topic == "label.updated" and event.resource_id == "5001"
    rest = store.inbox_claim("loop", 10, "worker-b", STALE)
    assert [e.id for e in rest] == ids[3:]
    assert store.inbox_claim("loop", 10, "worker-c", STALE) == []


def test_a_dispatched_event_whose_worker_died_is_handed_out_again(
    store: StateStore, clock: FakeClock
) -> None:
    event_id, _ = put(store, "dlv-1")
    store.inbox_claim(None, 10, "dead-worker", STALE)
    clock.advance(STALE - timedelta(seconds=1))
    assert store.inbox_claim(None, 10, "w2", STALE) == []
    clock.advance(timedelta(seconds=2))
    [again] = store.inbox_claim(None, 10, "w2", STALE)
    assert again.id == event_id and again.claimed_by == "w2" and again.attempts == 2


def test_finished_events_are_no_longer_pending_or_claimable(
    store: StateStore, clock: FakeClock
) -> None:
    done_id, _ = put(store, "dlv-1")
    failed_id, _ = put(store, "dlv-2")
    store.inbox_claim(None, 10, "w", STALE)
    assert store.inbox_done([done_id]) == 1
    assert store.inbox_done([failed_id], status="failed", reason="payload is not JSON") == 1
    assert store.inbox_pending_count() == 0
    clock.advance(STALE * 10)
    assert store.inbox_claim(None, 10, "w", STALE) == []
    events = store.inbox_get([done_id, failed_id])
    assert events[done_id].status is InboxStatus.DONE
    assert events[done_id].processed_at == clock.now - STALE * 10
    assert events[failed_id].status is InboxStatus.FAILED
    assert (events[done_id].reason, events[failed_id].reason) == (None, "payload is not JSON")


def test_bad_inbox_input_is_rejected_naming_the_field(store: StateStore) -> None:
    with pytest.raises(ValueError, match="source must be one of 'loop', 'loop_return', 'whiplash'"):
        store.inbox_put("shopify", "k", "t", None, {})
    with pytest.raises(ValueError, match="dedup_key"):
        store.inbox_put("loop", "", "t", None, {})
    with pytest.raises(ValueError, match="payload must be a JSON object"):
        store.inbox_put("loop", "k", "t", None, [1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        store.inbox_claim(None, 0, "w", STALE)
    with pytest.raises(ValueError, match="status must be 'done' or 'failed'"):
        store.inbox_done([1], status="new")
