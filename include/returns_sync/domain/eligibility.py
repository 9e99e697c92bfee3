"""Which Loop returns need a Whiplash RMA (PRODUCT.md 2.1 and the pinned details of section 3)."""

from __future__ import annotations

from enum import StrEnum

from include.returns_sync.models import ELIGIBLE_LABEL_STATUSES, LoopReturn


class Ineligible(StrEnum):
    """Why a Loop return gets no RMA (yet). Not an error: the return is simply not due."""

    NOT_OPEN = "NOT_OPEN"
    LABEL_NOT_SHIPPED = "LABEL_NOT_SHIPPED"


def ineligibility(loop_return: LoopReturn) -> Ineligible | None:
    """None when the return needs an RMA: state `open` and a label at `pre_transit` or later.

    A label may skip `pre_transit` (the first carrier scan is already `in_transit`), so every
    later status counts too; `new`, `failure`, `error` and a missing label do not.
    """
    if not loop_return.is_open:
        return Ineligible.NOT_OPEN
    if loop_return.label_status not in ELIGIBLE_LABEL_STATUSES:
        return Ineligible.LABEL_NOT_SHIPPED
    return None
