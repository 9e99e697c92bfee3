"""The Loop simulator's state machine: actions on a return, transitions, and what time does.

`LoopActionsMixin` gives `LoopBackend` Process / Flag / Cancel / Close and Notes, with Loop's
quirks: an action the return's state forbids answers HTTP 200 with an error body, success is the
JSON string "true", Get Notes answers 422 when there are none, and Process is queued (the return
closes `process_delay` seconds later, applied by `_settle` on the next read). Every action call,
failed or not, is logged as an `Action`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from include.returns_sync.sandbox.common import SandboxClock
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
            if record.state == "open":
                record.state = "closed"
                record.updated_at = now
                record.closed_at = now
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
