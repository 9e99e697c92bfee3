"""The Loop simulator's state machine: actions on a return, transitions, and what time does.

`LoopActionsMixin` gives `LoopBackend` Process / Flag / Cancel / Close and Notes, with Loop's
quirks: an action the return's state forbids answers HTTP 200 with an error body, success is the
JSON string "true", Get Notes answers 422 when there are none, and Process is queued (the return
closes `process_delay` seconds later, applied by `_settle` on the next read). Every action call,
failed or not, is logged as an `Action`.

Strict (`LoopBackend.strict`, see strict.py): when queued processing finishes the return closes
and Loop's `return` topic sends `return.closed`; for the returns chosen with
`fail_processing(return_id)` processing fails instead: the return stays `open` and the
`return.processing` topic sends `return.processing.failed` (its only trigger, per the contract;
there is no webhook for "processing started", and a return being processed still reads `open`,
the only states Loop documents being open/closed/cancelled/expired/review). Lenient: processing
always succeeds and sends nothing, as before.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from include.returns_sync.sandbox.clock import SandboxClock
from include.returns_sync.sandbox.loop_records import (
    NOT_FOUND,
    Action,
    LoopError,
    Note,
    ReturnRecord,
)
from include.returns_sync.sandbox.loop_render import _note_view

NOTE_LIMIT = 255
NOTE_INVALID = "Content is required and must be less than 255 characters."
DISPOSITIONS_PER_CALL = 30
DISPOSITION_OUTCOMES = ("back_to_stock", "resale_hold", "recycle", "donate", "missing")
DISPOSITION_FIELDS = (
    "line_item_id",
    "disposition_outcome",
    "return_processor",
    "note",
    "inspected_at",
)
#: Loop's failure message "may be generic": the sandbox sends a generic one.
PROCESSING_FAILED_MESSAGE = "The return could not be processed."
FOREIGN_LINE_ITEM = "One or more line items do not belong to the authenticated shop."


def _invalid(message: str) -> dict[str, Any]:
    return {"message": message, "errors": {"items": [message]}}


class LoopActionsMixin:
    """Actions, transitions and settling of `LoopBackend` (its lock guards the state)."""

    clock: SandboxClock
    flag_moves_to_review: bool
    allow_flagged_to_process: bool
    process_delay: float
    expire_after_days: int | None
    _lock: threading.RLock
    _returns: dict[str, ReturnRecord]
    _notes: list[Note]
    _actions: list[Action]
    _note_ids: Iterator[int]
    _dispositions: dict[int, dict[str, Any]]
    _processing_fails: set[str]
    #: Returns whose queued processing failed, in order (the sandbox's truth for tests and demo).
    processing_failed: list[str]
    strict: bool

    if TYPE_CHECKING:  # provided by LoopWebhooksMixin (a stub here would shadow it)

        def _notify_return(self, record: ReturnRecord, trigger: str) -> None: ...
        def _notify_processing_failed(self, record: ReturnRecord, message: str | None) -> None: ...

    def fail_processing(self, return_id: str, fail: bool = True) -> None:
        """Strict: the next queued processing of this return fails (admin/test knob)."""
        with self._lock:
            record = self._returns.get(str(return_id))
            if record is None:
                raise LoopError(404, NOT_FOUND)
            if fail:
                self._processing_fails.add(record.id)
            else:
                self._processing_fails.discard(record.id)

    def act(self, return_id: str, action: str) -> Any:
        """Process, flag, cancel or close; returns the 200 body ("true" or an error object)."""
        handlers: dict[str, Callable[[ReturnRecord], Any]] = {
            "process": self._process,
            "flag": self._flag,
            "cancel": self._cancel,
            "close": self._close,
        }
        with self._lock:
            record = self._lookup_for_action(return_id, action)
            body = handlers[action](record)
            self._log(record.id, action, body)
            return body

    def add_note(self, return_id: str, content: Any) -> str:
        with self._lock:
            record = self._lookup_for_action(return_id, "note")
            if not isinstance(content, str) or not content.strip() or len(content) >= NOTE_LIMIT:
                body = {"message": NOTE_INVALID, "errors": {"message": NOTE_INVALID}}
                self._actions.append(
                    Action(record.id, "note", self.clock.now(), False, NOTE_INVALID)
                )
                raise LoopError(422, body)
            note = Note(next(self._note_ids), record.id, content, self.clock.now())
            self._notes.append(note)
            self._log(record.id, "note", "true")
            return "true"

    def assess_dispositions(self, body: Any) -> list[dict[str, Any]]:
        """Record one disposition per line item (Loop's dispositioning API); echo the items.

        At most 30 items, each `{"line_item_id": int, "disposition_outcome": <enum>}`; a bad
        item is 422, a line item of no return of this shop 403 (2026-10). Assessing a line item
        again replaces its disposition. Each return touched logs one `disposition` action.
        """
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not 1 <= len(items) <= DISPOSITIONS_PER_CALL:
            raise LoopError(422, _invalid(f"items must be a list of 1 to {DISPOSITIONS_PER_CALL}"))
        for item in items:
            line_item_id = item.get("line_item_id") if isinstance(item, dict) else None
            outcome = item.get("disposition_outcome") if isinstance(item, dict) else None
            if not isinstance(line_item_id, int) or isinstance(line_item_id, bool):
                raise LoopError(422, _invalid("line_item_id must be an integer"))
            if outcome not in DISPOSITION_OUTCOMES:
                raise LoopError(422, _invalid(f"disposition_outcome {outcome!r} is not valid"))
        with self._lock:
            owners = {
                line.line_item_id: record.id
                for record in self._returns.values()
                for line in record.line_items
            }
            if any(item["line_item_id"] not in owners for item in items):
                raise LoopError(403, {"message": FOREIGN_LINE_ITEM})
            echoed = []
            for item in items:
                kept = {k: item[k] for k in DISPOSITION_FIELDS if k in item}
                self._dispositions[item["line_item_id"]] = kept
                echoed.append(kept)
            for return_id in sorted({owners[item["line_item_id"]] for item in items}):
                self._log(return_id, "disposition", "true")
            return echoed

    def dispositions(self) -> dict[int, dict[str, Any]]:
        """The current disposition of every assessed line item."""
        with self._lock:
            return {key: dict(value) for key, value in self._dispositions.items()}

    def get_notes(self, return_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._lookup_for_action(return_id, None)
            notes = [_note_view(n) for n in self._notes if n.return_id == record.id]
        if not notes:
            raise LoopError(422, "false")
        return {"notes": notes}

    def _lookup_for_action(self, return_id: str, action: str | None) -> ReturnRecord:
        record = self._returns.get(str(return_id))
        if record is None:
            # Decision: an unknown id answers 404 NOT_FOUND (undocumented for actions).
            if action is not None:
                self._actions.append(
                    Action(str(return_id), action, self.clock.now(), False, "NOT_FOUND")
                )
            raise LoopError(404, NOT_FOUND)
        self._settle(record)
        return record

    def _log(self, return_id: str, action: str, body: Any) -> None:
        ok = body == "true"
        result = "true" if ok else json.dumps(body, sort_keys=True)
        self._actions.append(Action(return_id, action, self.clock.now(), ok, result))

    def _process(self, record: ReturnRecord) -> Any:
        if record.state == "cancelled":
            return {"message": "Return is cancelled and therefore cannot be processed."}
        if record.state == "review":
            return {"message": "Return is review and therefore cannot be processed."}
        if record.state != "open":
            return _state_error(record.state, "UNPROCESSABLE_RETURN")
        if record.flagged and not self.allow_flagged_to_process:
            return _state_error("open", "UNPROCESSABLE_FLAGGED_RETURN")
        # Queued, not done: a second call before it settles is accepted again (undocumented).
        if record.process_due_at is None:
            record.process_due_at = self.clock.now() + timedelta(seconds=self.process_delay)
        return "true"

    def _flag(self, record: ReturnRecord) -> Any:
        if record.state != "open":
            return _state_error(record.state, "UNPROCESSABLE_RETURN")
        record.flagged = True
        record.updated_at = self.clock.now()
        if self.flag_moves_to_review:
            self._transition(record, "review")
        return "true"

    def _cancel(self, record: ReturnRecord) -> Any:
        if record.state == "expired":
            return {"content": "Return is expired and cannot be processed."}
        if record.flagged and record.state in ("open", "review"):
            return {"content": "Return is flagged and cannot be processed."}
        if record.state != "open":
            return _state_error(record.state, "UNPROCESSABLE_RETURN")
        self._transition(record, "cancelled")
        return "true"

    def _close(self, record: ReturnRecord) -> Any:
        if record.state == "cancelled":
            return {"message": "Return is cancelled and therefore cannot be processed."}
        if record.state not in ("open", "review"):
            return _state_error(record.state, "UNPROCESSABLE_RETURN")
        self._transition(record, "closed")
        return "true"

    def _transition(self, record: ReturnRecord, state: str) -> None:
        now = self.clock.now()
        record.state = state
        record.updated_at = now
        if state == "closed":
            record.closed_at = now

    def _settle(self, record: ReturnRecord) -> None:
        """Apply what time has done: finish queued processing, expire stale labels."""
        now = self.clock.now()
        if record.process_due_at is not None and now >= record.process_due_at:
            record.process_due_at = None
            if record.state == "open" and self.strict and record.id in self._processing_fails:
                self._processing_fails.discard(record.id)
                self.processing_failed.append(record.id)
                self._notify_processing_failed(record, PROCESSING_FAILED_MESSAGE)
            elif record.state == "open":
                record.state = "closed"
                record.updated_at = now
                record.closed_at = now
                if self.strict:
                    self._notify_return(record, "return.closed")
        if (
            self.expire_after_days is not None
            and record.state == "open"
            and record.label_status in (None, "new", "pre_transit")
            and now - record.created_at > timedelta(days=self.expire_after_days)
        ):
            self._transition(record, "expired")


def _state_error(state: str, code: str) -> dict[str, Any]:
    return {
        "errors": {"message": f"Return is {state} and therefore cannot be processed.", "code": code}
    }
