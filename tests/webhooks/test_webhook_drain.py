"""Draining the inbox: claim, ride along with the batches, done only after the work."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from include.returns_sync.sandbox import Sandbox
from include.returns_sync.sandbox.faults import FaultConfig
from include.returns_sync.state import StateStore
from include.returns_sync.webhooks.drain import (
    InboxClaim,
    claim,
    finish,
    merge_into_batches,
    peek,
    prefetch_loop_returns,
)
from include.returns_sync.webhooks.inbox import accept
from include.returns_sync.webhooks.payloads import parse_loop, parse_whiplash
from tests.webhooks.support import consumer_return_payload, inbox_rows, label_payload


def loop_event(
    store: StateStore, return_id: str, status: str = "pre_transit", at: str = "2026-03-01T12:00:00Z"
) -> int:
    payload = label_payload(return_id, status, label_updated_at=at)
    return accept(store, parse_loop(json.dumps(payload).encode())).inbox_id


def statuses(store: StateStore) -> dict[int, str]:
    return {row["id"]: row["status"] for row in inbox_rows(store)}


def test_a_claim_groups_events_by_return_and_leaves_them_dispatched(store: StateStore) -> None:
    a1 = loop_event(store, "101", "pre_transit")
    a2 = loop_event(store, "101", "in_transit")
    b = loop_event(store, "102")
    taken = claim("loop", "run-1/collect", store)
    assert taken.events == {"101": [a1, a2], "102": [b]}
    assert set(statuses(store).values()) == {"dispatched"}
    assert claim("loop", "run-2/collect", store).events == {}  # nobody else gets them


def test_events_needing_no_work_are_closed_at_claim_time(store: StateStore) -> None:
    # stored `new` (as if the endpoint died before closing it) but needing no work
    stale, _ = store.inbox_put("loop", "k", "label.created", "103", {"label_status": "new"})
    wanted = loop_event(store, "104")
    taken = claim("loop", "run-1/collect", store)
    assert taken.events == {"104": [wanted]}
    assert statuses(store) == {stale: "done", wanted: "dispatched"}
    closed = store.inbox_get([stale, wanted])
    assert closed[stale].reason == "no work: label status 'new' does not start RMA creation"
    assert closed[wanted].reason is None


def test_a_dry_run_peek_sees_what_a_claim_would_take_and_takes_nothing(
    store: StateStore,
) -> None:
    a1 = loop_event(store, "101", "pre_transit")
    a2 = loop_event(store, "101", "in_transit")
    b = loop_event(store, "102")
    idle, _ = store.inbox_put("loop", "k", "label.created", "103", {"label_status": "new"})
    seen = peek("loop", store)
    assert seen.events == {"101": [a1, a2], "102": [b]}
    assert seen.since is not None
    assert set(statuses(store).values()) == {"new"}  # not claimed, the idle one not closed
    assert [e.attempts for e in store.inbox_get([a1, a2, b, idle]).values()] == [0, 0, 0, 0]
    assert claim("loop", "live-run/collect", store).events == seen.events


def test_finishing_marks_the_events_done_and_nothing_else(store: StateStore) -> None:
    a = loop_event(store, "101")
    b = loop_event(store, "102")
    taken = claim("loop", "run-1", store)
    assert finish(taken.events["101"], store) == 1
    assert statuses(store) == {a: "done", b: "dispatched"}
    assert finish([], store) == 0 and finish(None, store) == 0


def test_events_of_a_run_that_died_are_handed_to_a_later_run(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = loop_event(store, "101")
    claim("loop", "run-1", store)  # ... and run-1 never finishes
    monkeypatch.setenv("RETURNS_SYNC_INBOX_STALE_MINUTES", "1")
    later = StateStore(store.engine, clock=lambda: store._now() + timedelta(minutes=2))
    assert claim("loop", "run-2", later).events == {"101": [a]}


def test_the_claim_limit_leaves_the_rest_waiting(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(5):
        loop_event(store, str(200 + n))
    monkeypatch.setenv("RETURNS_SYNC_INBOX_CLAIM_LIMIT", "3")
    assert len(claim("loop", "run-1", store).events) == 3
    assert store.inbox_pending_count("loop") == 5  # 3 dispatched + 2 new
    assert len(claim("loop", "run-2", store).events) == 2


def test_whiplash_events_claim_consumer_return_ids(store: StateStore) -> None:
    done = accept(
        store,
        parse_whiplash(
            json.dumps(consumer_return_payload("consumer_return.completed", id=180001)).encode()
        ),
    )
    changed = accept(
        store,
        parse_whiplash(
            json.dumps(
                consumer_return_payload("consumer_return.status_changed", id=180001)
            ).encode()
        ),
    )
    created = accept(
        store,
        parse_whiplash(
            json.dumps(
                consumer_return_payload("consumer_return.created", id=180002, status=1)
            ).encode()
        ),
    )
    assert claim("whiplash", "run-1", store).events == {"180001": [done.inbox_id, changed.inbox_id]}
    assert statuses(store)[created.inbox_id] == "done"


def test_claimed_returns_ride_in_the_batch_that_already_holds_them() -> None:
    batches: list[dict[str, Any]] = [
        {"returns": [{"id": "101"}, {"id": "102"}], "ids": []},
        {"returns": [], "ids": ["300"]},
    ]
    inbox = InboxClaim("loop", {"102": [7], "300": [8, 9], "555": [10]})
    merged = merge_into_batches(batches, inbox, batch_size=100)
    assert merged == [
        {"returns": [{"id": "101"}, {"id": "102"}], "ids": [], "inbox_event_ids": [7]},
        {"returns": [], "ids": ["300"], "inbox_event_ids": [8, 9]},
        {"returns": [], "ids": ["555"], "inbox_event_ids": [10]},
    ]


def test_claimed_returns_alone_are_split_into_batches_of_batch_size() -> None:
    inbox = InboxClaim("loop", {str(n): [n] for n in range(5)})
    merged = merge_into_batches([{"returns": [], "ids": []}], inbox, batch_size=2)
    assert [b["ids"] for b in merged] == [["0", "1"], ["2", "3"], ["4"]]
    assert [b["inbox_event_ids"] for b in merged] == [[0, 1], [2, 3], [4]]


def test_with_nothing_to_do_there_is_still_one_empty_batch() -> None:
    assert merge_into_batches([{"returns": [], "ids": []}], InboxClaim("loop"), 100) == [
        {"returns": [], "ids": []}
    ]


# --------------------------------------------------------------------------- prefetch


@pytest.fixture
def loop_hook(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real LoopHook on the sandbox (no client-side throttle, millisecond retry waits)."""
    from include.returns_sync.clients.loop import LoopHook
    from include.returns_sync.clients.policy import RetryPolicy

    monkeypatch.setenv(
        "AIRFLOW_CONN_LOOP_DEFAULT",
        json.dumps(
            {"conn_type": "http", "host": sandbox.loop_url, "password": sandbox.loop_api_key}
        ),
    )
    return LoopHook(
        retry_policy=RetryPolicy(max_attempts=2, base_seconds=0.001, max_seconds=0.002),
        rate_limit_per_second=0,
    )


def labelled_returns(sandbox: Sandbox, store: StateStore, n: int, state: str = "open") -> list[str]:
    """n Loop returns whose label just reached pre_transit, each with its webhook in the inbox."""
    ids = []
    for k in range(n):
        record = sandbox.loop.add_return(
            order_name=f"#P{k}",
            provider_order_id=9_000 + k,
            items=[("SKU-P", 1)],
            label_status=None,
            state=state,
        )
        moved = sandbox.loop.set_label_status(record["id"], "pre_transit")
        loop_event(store, record["id"], at=moved["label_updated_at"] or "2026-01-01T00:00:00Z")
        ids.append(record["id"])
    return ids


def test_several_webhook_returns_are_read_with_one_list_call(
    sandbox: Sandbox, store: StateStore, loop_hook: Any
) -> None:
    ids = labelled_returns(sandbox, store, 3)
    inbox = claim("loop", "run-1", store)
    listed = prefetch_loop_returns(inbox, loop_hook, page_size=750)
    assert sorted(r["id"] for r in listed) == sorted(ids)
    assert loop_hook.calls == {"list_returns": 1}
    merged = merge_into_batches([{"returns": [], "ids": []}], inbox, 100, listed)
    assert [sorted(r["id"] for r in b["returns"]) for b in merged] == [sorted(ids)]
    assert merged[0]["ids"] == [] and sorted(merged[0]["inbox_event_ids"]) == inbox.event_ids


def test_a_return_the_list_does_not_show_is_read_by_id(
    sandbox: Sandbox, store: StateStore, loop_hook: Any
) -> None:
    [open_id] = labelled_returns(sandbox, store, 1)
    [closed_id] = labelled_returns(sandbox, store, 1, state="closed")
    inbox = claim("loop", "run-1", store)
    listed = prefetch_loop_returns(inbox, loop_hook, page_size=750)
    merged = merge_into_batches([{"returns": [], "ids": []}], inbox, 100, listed)
    assert [[r["id"] for r in b["returns"]] for b in merged] == [[open_id], []]
    assert [b["ids"] for b in merged] == [[], [closed_id]]


def test_no_list_call_for_a_single_return_or_an_old_label(
    sandbox: Sandbox, store: StateStore, loop_hook: Any
) -> None:
    labelled_returns(sandbox, store, 1)
    assert prefetch_loop_returns(claim("loop", "run-1", store), loop_hook, page_size=750) == []
    loop_event(store, "501", at="2026-01-01T00:00:00Z")
    loop_event(store, "502", at="2026-01-01T00:00:00Z")
    assert prefetch_loop_returns(claim("loop", "run-2", store), loop_hook, page_size=750) == []
    assert loop_hook.calls == {}


def test_a_failing_list_call_falls_back_to_reading_by_id(
    sandbox: Sandbox, store: StateStore, loop_hook: Any
) -> None:
    labelled_returns(sandbox, store, 2)
    sandbox.set_faults(FaultConfig(rate=1.0, kinds=("500",)), "loop")
    assert prefetch_loop_returns(claim("loop", "run-1", store), loop_hook, page_size=750) == []
