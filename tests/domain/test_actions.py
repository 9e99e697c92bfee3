"""Specification of the Loop action guard: Process, or Flag + Note, never twice.

A small in-memory Loop stands in for the HTTP client (this tests one function's decisions);
the state store is the real one on a SQLite file. The sandbox-backed DAG tests cover the flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.returns_sync.clients.errors import LoopActionRejected, VendorError
from include.returns_sync.domain.actions import (
    PROCESS_FAILED,
    ActionSettings,
    act,
    process_failed,
)
from include.returns_sync.models import LoopNote, LoopReturn
from include.returns_sync.state import StateStore


def rejected(code: str) -> LoopActionRejected:
    return LoopActionRejected("loop", 200, code, code, "POST", "/return/77/process")


def vendor_failure(status: int | None) -> VendorError:
    return VendorError("loop", status, None, f"HTTP {status}", "POST", "/return/77/process")


@dataclass
class FakeLoop:
    """Records calls; `fail_next` makes the next call raise the given exception."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fail_next: Exception | None = None

    def _call(self, name: str, rid: str) -> None:
        self.calls.append((name, rid))
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    def get_notes(self, return_id: str) -> list[LoopNote]:
        return [LoopNote(content=n) for n in self.notes]

    def process_return(self, return_id: str, details: dict | None = None) -> None:
        self._call("process", return_id)

    def flag_return(self, return_id: str) -> None:
        self._call("flag", return_id)

    def create_note(self, return_id: str, content: str) -> None:
        self._call("note", return_id)
        self.notes.append(content)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    return store


def loop_return(state: str = "open") -> LoopReturn:
    return LoopReturn.model_validate({"id": "77", "state": state})


def run(loop: FakeLoop, store: StateStore, verdict: str, state: str = "open", **settings):
    return act(
        loop,
        store,
        loop_return(state),
        verdict,
        "Expected 2 x SKU-1; received 1 good, 1 damaged.",
        ActionSettings(**settings),
    )


def test_process_answered_true_is_queued_not_done_until_loop_closes_the_return(
    store: StateStore,
) -> None:
    loop = FakeLoop()
    assert run(loop, store, "process").outcome == "queued"
    assert store.actions_for("77")["process"].status == "queued"
    assert run(loop, store, "process").outcome == "pending"  # still open: Loop is working on it
    assert run(loop, store, "process", "closed").outcome == "confirmed"
    assert store.actions_for("77")["process"].status == "sent"
    assert run(loop, store, "process", "closed").outcome == "already_done"
    assert loop.calls == [("process", "77")]


def test_a_queued_process_is_not_resent_within_the_settle_time(store: StateStore) -> None:
    loop = FakeLoop()
    run(loop, store, "process")
    soon = datetime.now(UTC) + timedelta(minutes=29)
    settle = timedelta(minutes=30)
    assert run(loop, store, "process", now=lambda: soon, process_settle=settle).outcome == (
        "pending"
    )
    assert loop.calls == [("process", "77")]


def test_a_queued_process_still_open_after_the_settle_time_is_resent_once(
    store: StateStore,
) -> None:
    loop = FakeLoop()
    run(loop, store, "process")
    later = datetime.now(UTC) + timedelta(minutes=31)
    assert run(loop, store, "process", now=lambda: later).outcome == "queued"
    # the re-sent Process settles from its own call: not sent a third time within 30 min of it
    soon = datetime.now(UTC) + timedelta(minutes=29)
    assert run(loop, store, "process", now=lambda: soon).outcome == "pending"
    assert loop.calls == [("process", "77"), ("process", "77")]
    assert store.actions_for("77")["process"].attempts == 2


def test_a_process_never_confirmed_after_its_last_send_is_process_failed(
    store: StateStore,
) -> None:
    loop = FakeLoop()
    run(loop, store, "process")
    moment = datetime.now(UTC)
    for _ in range(2):
        moment += timedelta(minutes=31)
        assert run(loop, store, "process", now=lambda at=moment: at).outcome == "queued"
    moment += timedelta(minutes=31)
    outcome = run(loop, store, "process", now=lambda: moment)
    assert (outcome.outcome, outcome.vendor_code) == ("failed", PROCESS_FAILED)
    assert len(loop.calls) == 3
    assert store.actions_for("77")["process"].status == "failed"


def test_a_queued_process_whose_return_moved_to_review_is_process_failed(
    store: StateStore,
) -> None:
    loop = FakeLoop()
    run(loop, store, "process")
    outcome = run(loop, store, "process", "review")
    assert (outcome.outcome, outcome.vendor_code) == ("failed", PROCESS_FAILED)
    action = store.actions_for("77")["process"]
    assert (action.status, action.vendor_code) == ("failed", PROCESS_FAILED)


def test_loop_reporting_processing_failed_makes_it_process_failed_never_resent(
    store: StateStore,
) -> None:
    loop = FakeLoop()
    run(loop, store, "process")
    failed = process_failed(store, "77", store.actions_for("77")["process"], "Out of stock")
    assert failed is not None and failed.vendor_code == PROCESS_FAILED
    assert "Out of stock" in (store.actions_for("77")["process"].message or "")
    later = datetime.now(UTC) + timedelta(hours=5)
    outcome = run(loop, store, "process", now=lambda: later)
    assert (outcome.outcome, outcome.vendor_code) == ("failed", PROCESS_FAILED)
    assert loop.calls == [("process", "77")]


def test_a_processing_failure_of_a_return_we_did_not_process_is_not_ours(
    store: StateStore,
) -> None:
    assert process_failed(store, "78", None, None) is None
    loop = FakeLoop()
    run(loop, store, "process", "closed")  # refused: not open, recorded failed NOT_ACTIONABLE
    assert process_failed(store, "77", store.actions_for("77")["process"], None) is None
    assert store.actions_for("77")["process"].vendor_code == "NOT_ACTIONABLE"


def test_flag_sends_the_flag_and_one_note(store: StateStore) -> None:
    loop = FakeLoop()
    assert run(loop, store, "flag").outcome == "sent"
    assert run(loop, store, "flag").outcome == "already_done"
    assert loop.calls == [("flag", "77"), ("note", "77")]
    assert len(loop.notes) == 1


@pytest.mark.parametrize("state", ["closed", "cancelled", "expired", "review"])
def test_a_return_that_is_not_open_is_never_acted_on(store: StateStore, state: str) -> None:
    loop = FakeLoop()
    assert run(loop, store, "process", state).outcome == "not_actionable"
    assert run(loop, store, "flag", state).outcome == "not_actionable"
    assert loop.calls == []


def test_an_http_200_with_errors_is_a_failure_with_the_vendor_code(store: StateStore) -> None:
    loop = FakeLoop(fail_next=rejected("UNPROCESSABLE_FLAGGED_RETURN"))
    outcome = run(loop, store, "process")
    assert (outcome.outcome, outcome.vendor_code) == ("failed", "UNPROCESSABLE_FLAGGED_RETURN")
    action = store.actions_for("77")["process"]
    assert (action.status, action.vendor_code) == ("failed", "UNPROCESSABLE_FLAGGED_RETURN")


def test_an_unanswered_process_is_not_resent_while_loop_may_still_be_working(
    store: StateStore,
) -> None:
    loop = FakeLoop(fail_next=vendor_failure(None))  # timeout: did Loop queue it or not?
    assert run(loop, store, "process").outcome == "unknown"
    assert run(loop, store, "process").outcome == "pending"
    assert loop.calls == [("process", "77")]


def test_an_unanswered_process_is_confirmed_by_a_closed_return(store: StateStore) -> None:
    loop = FakeLoop(fail_next=vendor_failure(502))
    run(loop, store, "process")
    assert run(loop, store, "process", "closed").outcome == "confirmed"
    assert store.actions_for("77")["process"].status == "sent"
    assert loop.calls == [("process", "77")]


def test_an_unanswered_process_is_resent_once_it_has_settled_and_the_return_is_open(
    store: StateStore,
) -> None:
    loop = FakeLoop(fail_next=vendor_failure(None))
    run(loop, store, "process")
    later = datetime.now(UTC) + timedelta(hours=1)
    assert run(loop, store, "process", now=lambda: later).outcome == "queued"
    assert loop.calls == [("process", "77"), ("process", "77")]


def test_an_unconfirmed_note_found_in_loop_is_not_written_again(store: StateStore) -> None:
    class CrashAfterNote(FakeLoop):
        def create_note(self, return_id: str, content: str) -> None:
            super().create_note(return_id, content)
            raise SystemExit("worker killed after Loop stored the note")

    crashing = CrashAfterNote()
    with pytest.raises(SystemExit):
        run(crashing, store, "flag")
    assert store.actions_for("77")["note"].status == "intent"  # outcome never recorded
    loop = FakeLoop(notes=list(crashing.notes))
    assert run(loop, store, "flag").outcome == "sent"
    assert loop.calls == []  # flag already sent; the note is found in Loop, not written again
    assert store.actions_for("77")["note"].status == "sent"


def test_dry_run_calls_nothing_and_records_nothing(store: StateStore) -> None:
    loop = FakeLoop()
    assert run(loop, store, "process", dry_run=True).outcome == "dry_run"
    assert loop.calls == [] and store.actions_for("77") == {}


def test_a_refused_action_is_reported_but_never_repeated(store: StateStore) -> None:
    loop = FakeLoop(fail_next=rejected("UNPROCESSABLE_FLAGGED_RETURN"))
    run(loop, store, "process")
    again = run(loop, store, "process")
    assert (again.outcome, again.vendor_code) == ("failed", "UNPROCESSABLE_FLAGGED_RETURN")
    assert loop.calls == [("process", "77")]


def test_an_authentication_error_fails_the_task_and_is_retried_later(store: StateStore) -> None:
    loop = FakeLoop(fail_next=vendor_failure(401))
    with pytest.raises(VendorError):
        run(loop, store, "process")
    later = datetime.now(UTC) + timedelta(hours=1)
    assert run(loop, store, "process", now=lambda: later).outcome == "queued"


def test_a_flag_whose_answer_was_lost_is_confirmed_by_review_and_its_note_still_written(
    store: StateStore,
) -> None:
    """Loop moved the return to `review` on our flag, but the answer never reached us."""
    loop = FakeLoop(fail_next=vendor_failure(None))
    assert run(loop, store, "flag").outcome == "unknown"
    assert run(loop, store, "flag", "review").outcome == "sent"
    assert run(loop, store, "flag", "review").outcome == "already_done"
    assert loop.calls == [("flag", "77"), ("note", "77")]  # the flag was not sent again
    assert len(loop.notes) == 1
    actions = store.actions_for("77")
    assert (actions["flag"].status, actions["note"].status) == ("sent", "sent")


def test_a_flag_whose_answer_was_lost_on_a_return_still_open_is_sent_again_once(
    store: StateStore,
) -> None:
    """Where a flagged return stays `open`, nothing in Loop tells whether the flag landed."""
    loop = FakeLoop(fail_next=vendor_failure(None))
    assert run(loop, store, "flag").outcome == "unknown"
    assert run(loop, store, "flag").outcome == "sent"
    assert run(loop, store, "flag").outcome == "already_done"
    assert loop.calls == [("flag", "77"), ("flag", "77"), ("note", "77")]
    assert len(loop.notes) == 1
