"""The vocabulary of a receipt decision: verdicts and the reason codes behind them.

The names are part of the product's public interface (run reports, summary.json, the Airflow
UI), so they are spelled once, here, and everything else refers to these members.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """What we do with a Whiplash receipt on the Loop side."""

    #: Everything the merchant's criteria require arrived: Process Return in Loop.
    PROCESS = "process"
    #: Something needs a human: Flag Return in Loop plus a Return Note saying why.
    FLAG = "flag"
    #: We must not touch the Loop return at all (not ours, or not open).
    SKIP = "skip"


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
