"""The closed vocabularies of returns-sync, spelled once: state, domain and reconcile share them.

The values are part of the product's public interface (run reports, summary.json, the Airflow
UI, the state database), so every module refers to these members instead of string literals.
Plain Python: no Airflow, no HTTP, no database.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """What we do with a Whiplash receipt on the Loop side (one decision per consumer return)."""

    #: Everything the merchant's criteria require arrived: Process Return in Loop.
    PROCESS = "process"
    #: Something needs a human: Flag Return in Loop plus a Return Note saying why.
    FLAG = "flag"
    #: We must not touch the Loop return at all (not ours, or not open).
    SKIP = "skip"


#: Verdicts that lead to a call on Loop.
ACTED_ON = frozenset({Verdict.PROCESS, Verdict.FLAG})


class ReasonCode(StrEnum):
    """Why a return was flagged or skipped. Declaration order is the order in `reason_codes`."""

    #: Skip: the Whiplash consumer return was not created by us (no RMA record of ours).
    UNKNOWN_RETURN = "UNKNOWN_RETURN"
    #: Skip: the Loop return is not `open` (or could not be found), so it is never acted on.
    NOT_ACTIONABLE = "NOT_ACTIONABLE"
    #: Flag: the receipt is final but not a single unit (good or damaged) was received.
    NOTHING_RECEIVED = "NOTHING_RECEIVED"
    #: Flag (criteria `on_shortfall`): fewer units of an expected SKU arrived than Loop expects.
    MISSING_ITEMS = "MISSING_ITEMS"
    #: Flag (criteria `on_damaged`): at least one unit of an expected SKU arrived damaged.
    DAMAGED = "DAMAGED"
    #: Flag (criteria `on_overage`): more units of an expected SKU arrived than Loop expects.
    EXTRA_ITEMS = "EXTRA_ITEMS"
    #: Flag (criteria `on_unexpected_sku`): units of a SKU Loop does not expect at all arrived.
    UNEXPECTED_SKU = "UNEXPECTED_SKU"
    #: Flag (criteria `value_threshold`): the expected value exceeds the human-review threshold.
    OVER_VALUE_THRESHOLD = "OVER_VALUE_THRESHOLD"


#: Reason codes that make a return `skip` rather than `flag`.
SKIP_REASONS = frozenset({ReasonCode.UNKNOWN_RETURN, ReasonCode.NOT_ACTIONABLE})


class UnreadableReason(StrEnum):
    """Why a final receipt was left undecided this run (reported; a later run decides it)."""

    INVALID_WHIPLASH_DATA = "INVALID_WHIPLASH_DATA"
    INVALID_LOOP_DATA = "INVALID_LOOP_DATA"
    LOOP_UNAVAILABLE = "LOOP_UNAVAILABLE"


class SyncStatus(StrEnum):
    """Where the Loop -> Whiplash RMA creation for one Loop return stands."""

    CLAIMED = "claimed"  # a worker holds the creation claim right now
    CREATED = "created"  # we created the consumer return in Whiplash
    ADOPTED = "adopted"  # it already existed in Whiplash (lookup hit or 409) and we took it over
    UNMAPPABLE = "unmappable"  # cannot be mapped yet (unknown SKU/order, no items); retried later
    FAILED = "failed"  # a creation attempt failed; retried later


#: Statuses after which no further RMA may ever be created for the return.
DONE_STATUSES = frozenset({SyncStatus.CREATED, SyncStatus.ADOPTED})
#: Statuses a later run should try again.
RETRY_STATUSES = frozenset({SyncStatus.UNMAPPABLE, SyncStatus.FAILED})


class ActionKind(StrEnum):
    """The calls we make on a Loop return; each at most once per return."""

    PROCESS = "process"
    FLAG = "flag"
    NOTE = "note"
    DISPOSITION = "disposition"  # optional: every unit's disposition, in one record


class ActionStatus(StrEnum):
    """Lifecycle of one Loop action; `intent` is written before the HTTP call is made."""

    INTENT = "intent"
    #: Loop accepted a Process ("true" = queued); done only once Loop shows the return closed.
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the call may or may not have reached Loop (timeout, dropped connection)


#: Statuses of a Process that may still be running at Loop (or may never have arrived).
UNCONFIRMED = frozenset({ActionStatus.INTENT, ActionStatus.QUEUED, ActionStatus.UNKNOWN})

#: The vendor code of a Process Loop accepted but could not carry out (or never confirmed).
#: (An action on a return that is not `open` is recorded with `ReasonCode.NOT_ACTIONABLE`.)
PROCESS_FAILED = "PROCESS_FAILED"


class ActionOutcomeKind(StrEnum):
    """What happened to one verdict (or one return's dispositions) at Loop in one run."""

    SENT = "sent"
    #: Loop accepted a Process; it is done once Loop closes the return.
    QUEUED = "queued"
    #: A queued Process of ours whose return Loop has now closed.
    CONFIRMED = "confirmed"
    ALREADY_DONE = "already_done"
    NOT_ACTIONABLE = "not_actionable"
    #: An unconfirmed Process still within its settle time: nothing sent.
    PENDING = "pending"
    FAILED = "failed"
    UNKNOWN = "unknown"
    DRY_RUN = "dry_run"
