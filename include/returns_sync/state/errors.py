"""Errors raised by the state store; each message names the return, field or key at fault."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.returns_sync.state.records import LoopAction, SyncRecord


class StateError(Exception):
    """Base class of the store's own errors (configuration errors are ValueErrors instead)."""


class StateConfigError(ValueError):
    """The `returns_sync_db` connection cannot be understood; the message names the bad part."""


class TokenKeyError(ValueError):
    """The Fernet key is missing or malformed, or does not decrypt the stored token."""


class ClaimLostError(StateError):
    """The caller no longer holds the creation claim it is trying to finish."""

    def __init__(self, loop_return_id: str, record: SyncRecord | None) -> None:
        self.loop_return_id = loop_return_id
        self.record = record
        where = "no sync record exists" if record is None else f"status is {record.status.value}"
        super().__init__(f"Loop return {loop_return_id}: the claim was lost ({where})")


class DuplicateRmaError(StateError):
    """A second, different Whiplash RMA was reported for a Loop return that already has one.

    This means a duplicate exists in Whiplash; it needs a human, so it is never swallowed.
    """

    def __init__(self, loop_return_id: str, existing: int | None, reported: int) -> None:
        self.loop_return_id = loop_return_id
        self.existing = existing
        self.reported = reported
        super().__init__(
            f"Loop return {loop_return_id} already has Whiplash consumer return {existing}; "
            f"refusing to record a second one ({reported})"
        )


class WhiplashIdConflictError(StateError):
    """The Whiplash consumer return is already recorded against another Loop return."""

    def __init__(self, whiplash_return_id: int, loop_return_id: str, owner: str | None) -> None:
        self.whiplash_return_id = whiplash_return_id
        self.loop_return_id = loop_return_id
        self.owner = owner
        super().__init__(
            f"Whiplash consumer return {whiplash_return_id} belongs to Loop return {owner}, "
            f"not {loop_return_id}"
        )


class ActionStateError(StateError):
    """A Loop action cannot move to the requested status (e.g. `sent` is final)."""

    def __init__(self, message: str, action: LoopAction | None = None) -> None:
        self.action = action
        super().__init__(message)
