"""Typed values the state store hands out: its own closed vocabularies and frozen records.

The vocabularies it shares with domain and reconcile (`SyncStatus`, `Verdict`, `ActionKind`,
`ActionStatus`) live in `include.returns_sync.vocabulary`.

Callers never see SQLAlchemy rows; they get these small immutable dataclasses, so the domain
layer can be tested against them without a database and cannot mutate state by accident.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from include.returns_sync.vocabulary import (
    DONE_STATUSES,
    ActionKind,
    ActionStatus,
    SyncStatus,
    Verdict,
)

#: The merchant of a single-merchant deployment, and of every row older than revision 0007.
#: (Spelled here rather than imported from `merchants.py`: the store stays free of settings.)
DEFAULT_MERCHANT = "default"

_MERCHANT_ID = re.compile(r"[a-z0-9_]{1,40}")


def require_merchant(value: object) -> str:
    """A merchant id as the merchants file spells it (`[a-z0-9_]{1,40}`), or a ValueError."""
    if not isinstance(value, str) or not _MERCHANT_ID.fullmatch(value):
        raise ValueError(
            "a merchant id must be 1 to 40 characters of lower-case letters, digits and "
            f"underscores ([a-z0-9_]{{1,40}}); got {value!r}"
        )
    return value


class SyncSource(StrEnum):
    """Which trigger first brought a Loop return to us."""

    POLL = "poll"
    WEBHOOK = "webhook"
    BACKFILL = "backfill"
    MANUAL = "manual"


class ClaimOutcome(StrEnum):
    """Result of trying to claim a Loop return for RMA creation."""

    WON = "won"  # the caller holds the claim and must finish it
    BUSY = "busy"  # another worker holds a fresh claim
    DONE = "done"  # an RMA is already recorded; never create another


class InboxSource(StrEnum):
    """Which vendor sent a webhook."""

    LOOP = "loop"
    #: Loop `return` / `return.processing` topics: how a queued Process ended (receipts DAG).
    LOOP_RETURN = "loop_return"
    WHIPLASH = "whiplash"


class InboxStatus(StrEnum):
    """Lifecycle of one stored webhook delivery."""

    NEW = "new"
    DISPATCHED = "dispatched"
    DONE = "done"
    FAILED = "failed"


E = TypeVar("E", bound=StrEnum)


def coerce(enum: type[E], value: object, field: str) -> E:
    """Turn `value` into a member of `enum`, or raise a ValueError naming the field and choices."""
    if isinstance(value, enum):
        return value
    try:
        return enum(value)  # type: ignore[arg-type]
    except ValueError:
        choices = ", ".join(repr(member.value) for member in enum)
        raise ValueError(f"{field} must be one of {choices}; got {value!r}") from None


@dataclass(frozen=True, slots=True)
class SyncRecord:
    """The durable RMA-creation record of one Loop return.

    `first_seen_at` is when the row was first written; `created_at` is when the Whiplash RMA
    was recorded as created or adopted (None until then).
    """

    loop_return_id: str
    whiplash_return_id: int | None
    status: SyncStatus
    reason_code: str | None
    reason_detail: str | None
    attempts: int
    claim_token: str | None
    claimed_at: datetime | None
    claimed_from: SyncStatus | None
    label_status: str | None
    label_pre_transit_at: datetime | None
    source: SyncSource
    first_seen_at: datetime
    created_at: datetime | None
    updated_at: datetime
    last_run_id: str | None
    merchant: str = DEFAULT_MERCHANT

    @property
    def is_done(self) -> bool:
        """True once an RMA exists for this return (created by us or adopted)."""
        return self.status in DONE_STATUSES


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """Answer of `claim_for_creation`.

    When `won` and `stale` are both true the previous holder died mid-creation: an RMA may
    already exist in Whiplash, so the caller must look it up and adopt it rather than create.
    """

    outcome: ClaimOutcome
    record: SyncRecord
    stale: bool = False
    previous_status: SyncStatus | None = None

    @property
    def won(self) -> bool:
        return self.outcome is ClaimOutcome.WON

    @property
    def whiplash_return_id(self) -> int | None:
        return self.record.whiplash_return_id


@dataclass(frozen=True, slots=True)
class Decision:
    """The one reconciliation decision recorded for a Whiplash consumer return."""

    whiplash_return_id: int
    loop_return_id: str | None
    verdict: Verdict
    reason_codes: tuple[str, ...]
    note: str | None
    detail: Mapping[str, Any] | None
    run_id: str | None
    decided_at: datetime
    merchant: str = DEFAULT_MERCHANT


@dataclass(frozen=True, slots=True)
class LoopAction:
    """One call we make (or made) on a Loop return."""

    id: int
    loop_return_id: str
    action: ActionKind
    status: ActionStatus
    vendor_code: str | None
    message: str | None
    payload: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    merchant: str = DEFAULT_MERCHANT


@dataclass(frozen=True, slots=True)
class ActionClaim:
    """Answer of `begin_action`: `created` is True only for the caller that wrote the intent.

    When False, look at `action.status`: `sent` means never again; `intent`/`unknown` mean a
    previous attempt may have reached Loop, so re-read Loop before doing anything.
    """

    created: bool
    action: LoopAction

    @property
    def status(self) -> ActionStatus:
        return self.action.status


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """A stored webhook delivery."""

    id: int
    source: InboxSource
    dedup_key: str
    topic: str
    resource_id: str | None
    payload: Mapping[str, Any]
    received_at: datetime
    status: InboxStatus
    claimed_by: str | None
    claimed_at: datetime | None
    processed_at: datetime | None
    attempts: int
    reason: str | None = None
    merchant: str = DEFAULT_MERCHANT


@dataclass(frozen=True, slots=True)
class InboxSignal:
    """Unclaimed (`new`) inbox events: how many, the newest id, the oldest arrival.

    The same shape as `webhooks.inbox.InboxSignal` (what the webhook trigger reads); the store
    hands it out from `inbox_waiting_by_merchant`, one per merchant with events waiting.
    """

    waiting: int
    newest_id: int
    oldest_received_at: datetime | None
