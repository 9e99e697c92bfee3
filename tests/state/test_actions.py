"""One decision per Whiplash consumer return; never act twice on a Loop return."""

from __future__ import annotations

from datetime import timedelta

import pytest

from include.returns_sync.state import (
    ActionKind,
    ActionStateError,
    ActionStatus,
    StateStore,
    Verdict,
)
from tests.state.support import FakeClock


def test_a_decision_is_written_once_and_the_first_one_stands(
    store: StateStore, clock: FakeClock
) -> None:
    first, inserted = store.record_decision(
        700_001,
        verdict="flag",
        reason_codes=["MISSING_ITEMS", "DAMAGED"],
        loop_return_id="5001",
        note="Expected 2 x SKU-1, received 1 good + 1 damaged",
        detail={"rows": [{"sku": "SKU-1", "expected": 2, "good": 1, "damaged": 1}]},
        run_id="run-1",
    )
    assert inserted
    assert first.verdict is Verdict.FLAG
    assert first.reason_codes == ("MISSING_ITEMS", "DAMAGED")
    assert first.detail == {"rows": [{"sku": "SKU-1", "expected": 2, "good": 1, "damaged": 1}]}
    assert first.decided_at == clock.now

    clock.advance(timedelta(hours=1))
    again, inserted = store.record_decision(700_001, verdict=Verdict.PROCESS, run_id="run-2")
    assert not inserted
    assert again == first
    assert store.get_decisions([700_001, 700_002]) == {700_001: first}


def test_a_decision_needs_a_known_verdict_and_json_detail(store: StateStore) -> None:
    with pytest.raises(ValueError, match="verdict must be one of 'process', 'flag', 'skip'"):
        store.record_decision(700_003, verdict="maybe")
    with pytest.raises(ValueError, match="detail is not JSON-serialisable"):
        store.record_decision(700_003, verdict="skip", detail={"when": object()})
    with pytest.raises(ValueError, match="reason_codes"):
        store.record_decision(700_003, verdict="flag", reason_codes="MISSING_ITEMS")
    assert store.get_decisions([700_003]) == {}


def test_begin_action_twice_creates_the_intent_only_once(store: StateStore) -> None:
    first = store.begin_action("5001", "flag", payload=None)
    second = store.begin_action("5001", ActionKind.FLAG)
    assert first.created and not second.created
    assert second.status is ActionStatus.INTENT
    assert second.action.id == first.action.id


def test_each_kind_of_action_is_separate(store: StateStore) -> None:
    assert store.begin_action("5001", "flag").created
    assert store.begin_action("5001", "note", payload="Expected 2 x SKU-1").created
    assert store.begin_action("5002", "flag").created
    actions = store.actions_for("5001")
    assert set(actions) == {ActionKind.FLAG, ActionKind.NOTE}
    assert actions[ActionKind.NOTE].payload == "Expected 2 x SKU-1"
    assert set(store.get_actions(["5001", "5002", "5003"])) == {"5001", "5002"}


def test_a_sent_action_is_final(store: StateStore, clock: FakeClock) -> None:
    store.begin_action("5001", "process")
    clock.advance(timedelta(seconds=3))
    sent = store.finish_action("5001", "process", "sent", vendor_code="200", message="queued")
    assert sent.status is ActionStatus.SENT and sent.updated_at == clock.now
    assert store.begin_action("5001", "process").status is ActionStatus.SENT
    assert store.finish_action("5001", "process", "sent", vendor_code="again") == sent
    with pytest.raises(ActionStateError, match="already sent"):
        store.finish_action("5001", "process", "failed")
    claim = store.retry_action("5001", "process", seen_attempts=sent.attempts)
    assert not claim.created and claim.status is ActionStatus.SENT


def test_an_unknown_outcome_is_kept_so_the_caller_rereads_loop_before_acting(
    store: StateStore,
) -> None:
    store.begin_action("5001", "flag")
    store.finish_action("5001", "flag", "unknown", message="read timeout")
    again = store.begin_action("5001", "flag")
    assert not again.created and again.status is ActionStatus.UNKNOWN
    assert again.action.message == "read timeout"


def test_only_one_resolver_may_retry_an_action(store: StateStore) -> None:
    store.begin_action("5001", "flag")
    failed = store.finish_action("5001", "flag", "failed", vendor_code="500")
    winner = store.retry_action("5001", "flag", seen_attempts=failed.attempts)
    loser = store.retry_action("5001", "flag", seen_attempts=failed.attempts)
    assert winner.created and winner.status is ActionStatus.INTENT
    assert winner.action.attempts == 2 and winner.action.vendor_code is None
    assert not loser.created


def test_finishing_or_retrying_an_action_never_begun_is_an_error(store: StateStore) -> None:
    with pytest.raises(ActionStateError, match="call begin_action first"):
        store.finish_action("5001", "note", "sent")
    with pytest.raises(ActionStateError, match="no note action"):
        store.retry_action("5001", "note", seen_attempts=1)


def test_finish_action_refuses_intent_and_unknown_kinds(store: StateStore) -> None:
    store.begin_action("5001", "flag")
    with pytest.raises(ValueError, match="status must be one of queued, sent, failed, unknown"):
        store.finish_action("5001", "flag", "intent")
    with pytest.raises(ValueError, match="action must be one of"):
        store.begin_action("5001", "refund")


def test_unfinished_decisions_are_those_whose_last_step_is_not_settled(
    store: StateStore,
) -> None:
    cases = {
        1: ("process", []),  # decided, nothing sent yet
        2: ("process", [("process", "sent")]),  # done
        3: ("process", [("process", "unknown")]),  # no answer: carry on
        4: ("flag", [("flag", "sent"), ("note", "intent")]),  # crashed before the note finished
        5: ("flag", [("flag", "sent"), ("note", "sent")]),  # done
        6: ("flag", [("flag", "failed")]),  # refused: final
        7: ("skip", []),  # nothing to do
    }
    for wid, (verdict, steps) in cases.items():
        store.record_decision(wid, verdict=verdict, loop_return_id=f"L{wid}")
        for action, status in steps:
            store.begin_action(f"L{wid}", action)
            if status != "intent":
                store.finish_action(f"L{wid}", action, status)
    assert sorted(store.unfinished_decisions()) == [1, 3, 4]


def test_a_queued_process_is_unfinished_until_it_is_confirmed_sent(store: StateStore) -> None:
    store.record_decision(9001, verdict="process", loop_return_id="5001")
    store.begin_action("5001", "process")
    assert store.finish_action("5001", "process", "queued").status == "queued"
    assert list(store.unfinished_decisions()) == [9001]  # Loop queued it; not done yet
    assert store.finish_action("5001", "process", "sent").status == "sent"
    assert store.unfinished_decisions() == {}


def test_a_process_whose_processing_failed_is_finished_and_never_re_armed_as_sent(
    store: StateStore,
) -> None:
    store.record_decision(9002, verdict="process", loop_return_id="5002")
    store.begin_action("5002", "process")
    store.finish_action("5002", "process", "queued")
    failed = store.finish_action("5002", "process", "failed", "PROCESS_FAILED", "Loop said so")
    assert (failed.status, failed.vendor_code) == ("failed", "PROCESS_FAILED")
    assert store.unfinished_decisions() == {}  # reported, not carried: a person must look
