"""Acting on Loop after a verdict: Process, or Flag plus a Return Note — never twice.

Loop has no idempotency keys and answers some failures with HTTP 200 and an `errors` body, so
every call is guarded by a durable record (`loop_actions`, unique per return and action):

1. Re-read the Loop return. A return that is not `open` is never acted on (`NOT_ACTIONABLE`),
   except that it *proves* an earlier unconfirmed call of ours: `closed` after our process
   intent means processed; `review` after our flag intent means flagged.
2. `begin_action` writes the intent BEFORE the call; only the writer of a new intent calls Loop.
   An intent left by a crashed worker (status `intent` or `unknown`) is resolved by evidence
   first: the return's state, and for flags our note in `GET .../notes` (Loop's docs do not say
   whether a flagged return stays `open` or moves to `review`, so `open` alone proves nothing).
   Only when the evidence says "not done" is the action re-armed (compare-and-swap) and sent.
   A return in `review` after our flag intent is flagged: the flag is never sent again, and a
   note still missing is written (it is the second half of our own action).
3. The result is recorded: `sent`, `failed` (with Loop's error code) or `unknown` (no answer).
   A `failed` action is final: Loop refused it (e.g. `UNPROCESSABLE_FLAGGED_RETURN`), so a
   person must look; it is reported on every run but never re-sent. An authentication error
   (401/403) fails the task instead, so the operator is alerted and fixes the key.

Process is asynchronous at Loop: `true` means queued, so a Process so answered is recorded
`queued`, not done. It becomes `sent` (done) only on evidence that Loop finished it: the return
reads `closed` (re-read right after the run's Processes, or by a later run) or a `return.closed`
webhook arrives. It becomes `failed` with code `PROCESS_FAILED` (reported, alerted, never
re-sent) when Loop says processing failed (a `return.processing.failed` webhook), when the
return moved to `review` instead of closing, or when it is still not closed `process_settle`
after the last of `process_max_sends` Process calls Loop acknowledged. An unconfirmed Process (`queued`, or
`unknown`/`intent`: no answer) on a return that is still `open` is re-sent only after
`process_settle` (`RETURNS_SYNC_PROCESS_SETTLE_MINUTES`, default 30) since its last call, so
a queued Process is never queued twice within that time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from include.returns_sync.clients.errors import LoopActionRejected, VendorError
from include.returns_sync.models import LoopNote, LoopReturn
from include.returns_sync.vocabulary import (
    PROCESS_FAILED,
    UNCONFIRMED,
    ActionKind,
    ActionStatus,
    ReasonCode,
    Verdict,
)
from include.returns_sync.vocabulary import ActionOutcomeKind as Outcome

if TYPE_CHECKING:
    from include.returns_sync.state.records import ActionClaim, LoopAction

PROCESS = ActionKind.PROCESS
FLAG = ActionKind.FLAG
NOTE = ActionKind.NOTE


class LoopActions(Protocol):
    def get_notes(self, return_id: str) -> list[LoopNote]: ...
    def process_return(self, return_id: str, details: dict[str, Any] | None = None) -> None: ...
    def flag_return(self, return_id: str) -> None: ...
    def create_note(self, return_id: str, content: str) -> None: ...


class ActionStore(Protocol):
    def begin_action(
        self, loop_return_id: str, action: ActionKind, payload: str | None = None
    ) -> ActionClaim: ...
    def retry_action(
        self, loop_return_id: str, action: ActionKind, *, seen_attempts: int
    ) -> ActionClaim: ...
    def finish_action(
        self,
        loop_return_id: str,
        action: ActionKind,
        status: ActionStatus,
        vendor_code: str | None = None,
        message: str | None = None,
    ) -> LoopAction: ...


@dataclass(frozen=True)
class ActionOutcome:
    """What happened to one return's verdict at Loop."""

    loop_return_id: str
    #: process | flag | disposition (the action taken, by its `ActionKind` value)
    verdict: str
    #: an `ActionOutcomeKind` value ("queued": Loop accepted a Process; "confirmed": a queued
    #: Process is now closed)
    outcome: str
    loop_state: str | None = None
    vendor_code: str | None = None
    message: str | None = None
    #: True when this reports an outcome recorded by an earlier run (e.g. a failure already
    #: alerted on), False when it happened now.
    repeat: bool = False

    def to_row(self) -> dict[str, Any]:
        """A JSON-friendly dict (run report, XCom): enum members as their plain values."""
        return {key: _plain(value) for key, value in asdict(self).items()}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


@dataclass(frozen=True)
class ActionSettings:
    dry_run: bool = False
    process_settle: timedelta = timedelta(minutes=30)
    #: Process calls (the first included) before an unconfirmed Process is PROCESS_FAILED.
    process_max_sends: int = 3
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def act(
    loop: LoopActions,
    store: ActionStore,
    current: LoopReturn,
    verdict: Verdict | str,
    note: str | None,
    settings: ActionSettings,
) -> ActionOutcome:
    """Carry one `process`/`flag` verdict to Loop, exactly once. See the module docstring.

    `current` is the Loop return as re-read just before deciding (the caller reads it once for
    reconciliation and acting alike).
    """
    if settings.dry_run:
        return ActionOutcome(current.id or "", verdict, Outcome.DRY_RUN, current.state)
    if verdict == Verdict.PROCESS:
        return _process(loop, store, current, settings)
    if verdict == Verdict.FLAG:
        return _flag(loop, store, current, note or "")
    raise ValueError(f"verdict must be process or flag, got {verdict!r}")


def send_under_intent(
    store: ActionStore,
    loop_return_id: str,
    action: ActionKind,
    call: Callable[[], None],
    accepted: ActionStatus = ActionStatus.SENT,
) -> tuple[str, str | None, str | None]:
    """Make one Loop call under an intent; record and return (status, vendor code, message).

    `accepted` is what Loop's `true` means: `sent` (done), or `queued` for an asynchronous
    Process. A refusal of our credentials (401/403) is recorded `unknown` and propagates.
    """
    try:
        call()
    except (
        LoopActionRejected
    ) as exc:  # HTTP 200 with an errors body: Loop refused, nothing happened
        code = exc.code
        store.finish_action(loop_return_id, action, ActionStatus.FAILED, code, str(exc)[:500])
        return ActionStatus.FAILED, code, str(exc)
    except VendorError as exc:
        status = exc.status
        if status in (401, 403):  # a configuration problem: fail the task, alert, retry later
            store.finish_action(
                loop_return_id, action, ActionStatus.UNKNOWN, str(status), str(exc)[:500]
            )
            raise
        outcome = ActionStatus.FAILED if status in (400, 404, 422) else ActionStatus.UNKNOWN
        store.finish_action(loop_return_id, action, outcome, str(status or ""), str(exc)[:500])
        return outcome, str(status or ""), str(exc)
    store.finish_action(loop_return_id, action, accepted)
    return accepted, None, None


def _process(
    loop: LoopActions, store: ActionStore, current: LoopReturn, settings: ActionSettings
) -> ActionOutcome:
    rid = current.id or ""
    claim = store.begin_action(rid, PROCESS, None)
    if not claim.created:
        previous = claim.action
        if previous.status == ActionStatus.SENT:
            return ActionOutcome(rid, PROCESS, Outcome.ALREADY_DONE, current.state)
        if previous.status == ActionStatus.FAILED:  # refused, or processing failed: a person looks
            return ActionOutcome(
                rid,
                PROCESS,
                Outcome.FAILED,
                current.state,
                previous.vendor_code,
                previous.message,
                repeat=True,
            )
        settled = settle_process(store, rid, current.state, previous)
        if settled is not None:
            return settled
        if not current.is_open:
            return ActionOutcome(rid, PROCESS, Outcome.NOT_ACTIONABLE, current.state)
        if settings.now() - previous.updated_at < settings.process_settle:
            return ActionOutcome(rid, PROCESS, Outcome.PENDING, current.state)
        # Loop acknowledged our last Process ("queued") and, `process_max_sends` calls on, has
        # still not closed the return: stop and have a person look. (An unanswered call is no
        # evidence that Loop had it: it is re-sent after settling, without this limit.)
        if (
            previous.status == ActionStatus.QUEUED
            and previous.attempts >= settings.process_max_sends
        ):
            minutes = int(settings.process_settle.total_seconds() // 60)
            return _process_failed(
                store,
                rid,
                current.state,
                f"Loop did not close the return within {minutes} min of our last "
                f"({previous.attempts}) Process call",
            )
        claim = store.retry_action(rid, PROCESS, seen_attempts=previous.attempts)
        if not claim.created:
            return ActionOutcome(rid, PROCESS, Outcome.PENDING, current.state)
    elif not current.is_open:
        store.finish_action(
            rid, PROCESS, ActionStatus.FAILED, ReasonCode.NOT_ACTIONABLE, f"state {current.state}"
        )
        return ActionOutcome(rid, PROCESS, Outcome.NOT_ACTIONABLE, current.state)
    status, code, message = send_under_intent(
        store, rid, PROCESS, lambda: loop.process_return(rid), accepted=ActionStatus.QUEUED
    )
    return ActionOutcome(rid, PROCESS, status, current.state, code, message)


def settle_process(
    store: ActionStore, loop_return_id: str, loop_state: str | None, previous: LoopAction | None
) -> ActionOutcome | None:
    """Settle an unconfirmed Process of ours from the return's Loop state; None: still open.

    `closed` proves it (confirmed); `review` means Loop did not carry it out (processing fails
    leave the return `open` or `review`, and we never flag a return we process): PROCESS_FAILED.
    """
    if previous is None or previous.status not in UNCONFIRMED:
        return None
    if loop_state == "closed":
        store.finish_action(
            loop_return_id, PROCESS, ActionStatus.SENT, message="confirmed: Loop state closed"
        )
        return ActionOutcome(loop_return_id, PROCESS, Outcome.CONFIRMED, loop_state)
    if loop_state == "review" and previous.status == ActionStatus.QUEUED:
        return _process_failed(
            store,
            loop_return_id,
            loop_state,
            "Loop moved the return to review instead of closing it",
        )
    return None


def process_failed(
    store: ActionStore, loop_return_id: str, previous: LoopAction | None, message: str | None
) -> ActionOutcome | None:
    """Loop reported that processing failed (`return.processing.failed`): record PROCESS_FAILED.

    Only an unconfirmed Process of ours is marked (a failure of a processing someone else
    started in Loop admin, or of a return we never processed, is not ours to report); None then.
    """
    if previous is None or previous.status not in UNCONFIRMED:
        return None
    text = (
        f"Loop reported processing failed: {message}"
        if message
        else "Loop reported processing failed"
    )
    return _process_failed(store, loop_return_id, None, text)


def _process_failed(
    store: ActionStore, loop_return_id: str, loop_state: str | None, message: str
) -> ActionOutcome:
    store.finish_action(loop_return_id, PROCESS, ActionStatus.FAILED, PROCESS_FAILED, message[:500])
    return ActionOutcome(
        loop_return_id, PROCESS, Outcome.FAILED, loop_state, PROCESS_FAILED, message
    )


def _flag(loop: LoopActions, store: ActionStore, current: LoopReturn, note: str) -> ActionOutcome:
    rid = current.id or ""
    flag_claim = store.begin_action(rid, FLAG, None)
    note_claim = store.begin_action(rid, NOTE, note)
    flag_sent = not flag_claim.created and flag_claim.action.status == ActionStatus.SENT
    note_sent = not note_claim.created and note_claim.action.status == ActionStatus.SENT
    if flag_sent and note_sent:
        return ActionOutcome(rid, FLAG, Outcome.ALREADY_DONE, current.state)
    for claim in (flag_claim, note_claim):
        if not claim.created and claim.action.status == ActionStatus.FAILED:  # refused: final
            previous = claim.action
            return ActionOutcome(
                rid, FLAG, Outcome.FAILED, current.state, previous.vendor_code, previous.message
            )
    unconfirmed_note = not note_claim.created and not note_sent
    if unconfirmed_note and any(n.content.strip() == note.strip() for n in loop.get_notes(rid)):
        store.finish_action(rid, NOTE, ActionStatus.SENT, message="confirmed: note present in Loop")
        note_sent = True
    if not flag_sent and not flag_claim.created and current.state == "review":
        store.finish_action(rid, FLAG, ActionStatus.SENT, message="confirmed: Loop state review")
        flag_sent = True
    # In `review` because of our flag: the note still belongs to our action and is written.
    flagged_by_us = flag_sent and current.state == "review"
    if not current.is_open and not flagged_by_us and not (flag_sent and note_sent):
        for action, claim, sent in ((FLAG, flag_claim, flag_sent), (NOTE, note_claim, note_sent)):
            if claim.created and not sent:
                store.finish_action(
                    rid, action, ActionStatus.FAILED, ReasonCode.NOT_ACTIONABLE, current.state
                )
        return ActionOutcome(rid, FLAG, Outcome.NOT_ACTIONABLE, current.state)
    outcome: str = ActionStatus.SENT
    code: str | None = None
    message: str | None = None
    if not flag_sent:
        if not flag_claim.created:  # an unconfirmed flag: flagging again is harmless, re-arm it
            flag_claim = store.retry_action(rid, FLAG, seen_attempts=flag_claim.action.attempts)
        if flag_claim.created:
            outcome, code, message = send_under_intent(
                store, rid, FLAG, lambda: loop.flag_return(rid)
            )
    if outcome == ActionStatus.SENT and not note_sent:
        if not note_claim.created:
            note_claim = store.retry_action(rid, NOTE, seen_attempts=note_claim.action.attempts)
        if note_claim.created:
            outcome, code, message = send_under_intent(
                store, rid, NOTE, lambda: loop.create_note(rid, note)
            )
    return ActionOutcome(rid, FLAG, outcome, current.state, code, message)
