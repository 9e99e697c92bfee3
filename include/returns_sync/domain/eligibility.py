"""Which Loop returns need a Whiplash RMA (PRODUCT.md 2.1 and the pinned details of section 3)."""

from __future__ import annotations

from enum import StrEnum

from include.returns_sync.models import ELIGIBLE_LABEL_STATUSES, LoopReturn


class Ineligible(StrEnum):
    """Why a Loop return gets no RMA (yet). Not an error: the return is simply not due.

    `LABEL_UNKNOWN` is the exception: the record said nothing about the label (Loop's Return
    Details may carry no label fields) and no other source knew it. That is undecided, not
    "not shipped": the caller records it and retries it on later runs (see `domain.labels`).
    """

    NOT_OPEN = "NOT_OPEN"
    LABEL_NOT_SHIPPED = "LABEL_NOT_SHIPPED"
    LABEL_UNKNOWN = "LABEL_UNKNOWN"


def ineligibility(loop_return: LoopReturn) -> Ineligible | None:
    """None when the return needs an RMA: state `open` and a label at `pre_transit` or later.

    A label may skip `pre_transit` (the first carrier scan is already `in_transit`), so every
    later status counts too; `new`, `failure`, `error` and a label whose status is missing do
    not. A record that carries no label fields at all does not decide: `LABEL_UNKNOWN`.
    """
    if not loop_return.is_open:
        return Ineligible.NOT_OPEN
    if not loop_return.label_known:
        return Ineligible.LABEL_UNKNOWN
    if loop_return.label_status not in ELIGIBLE_LABEL_STATUSES:
        return Ineligible.LABEL_NOT_SHIPPED
    return None


def needs_label(loop_return: LoopReturn) -> bool:
    """An open return whose record says nothing about its label: look the label up elsewhere.

    (A return that is not open is ineligible whatever its label, so it needs no look-up.)
    """
    return loop_return.is_open and not loop_return.label_known
