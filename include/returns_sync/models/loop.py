"""Loop Returns records: a return, its line items (one per unit) and notes."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from include.returns_sync.models._base import Money, StrId, UtcDateTime, VendorRecord


class ReturnState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REVIEW = "review"


class LabelStatus(StrEnum):
    NEW = "new"
    PRE_TRANSIT = "pre_transit"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    FAILURE = "failure"
    ERROR = "error"


#: A label at one of these statuses means the package is (or is about to be) on its way; a
#: label can skip `pre_transit` (first carrier scan already in transit), so all count.
ELIGIBLE_LABEL_STATUSES = frozenset(
    {
        LabelStatus.PRE_TRANSIT,
        LabelStatus.IN_TRANSIT,
        LabelStatus.OUT_FOR_DELIVERY,
        LabelStatus.DELIVERED,
    }
)


class LoopLineItem(VendorRecord):
    """One returned unit. Loop has no quantity field: two units are two line items."""

    line_item_id: StrId
    sku: str | None = None
    title: str | None = None
    barcode: str | None = None
    price: Money = None
    return_reason: str | None = None
    parent_return_reason: str | None = None
    outcome: str | None = None


class LoopReturn(VendorRecord):
    """A Loop return as the detailed list, the details endpoint or a webhook describes it."""

    id: StrId
    state: str
    outcome: str | None = None
    order_id: StrId = None
    order_name: str | None = None
    provider_order_id: StrId = None
    customer: str | None = None
    currency: str | None = None
    created_at: UtcDateTime = None
    updated_at: UtcDateTime = None
    carrier: str | None = None
    tracking_number: str | None = None
    label_status: str | None = None
    label_updated_at: UtcDateTime = None
    label_url: str | None = None
    destination_id: StrId = None
    line_items: list[LoopLineItem] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_required(cls, value: str | None) -> str:
        if not value:
            raise ValueError("a Loop return needs an id")
        return value

    @field_validator("state", mode="before")
    @classmethod
    def _normalise_state(cls, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a Loop return needs a state")
        text = value.strip().lower()
        return "review" if text == "needs review" else text

    @field_validator("label_status", mode="before")
    @classmethod
    def _normalise_label(cls, value: object) -> str | None:
        if value is None:
            return None
        text = str(value).strip().lower()
        return None if text in ("", "n/a") else text

    @field_validator("line_items", mode="before")
    @classmethod
    def _null_items(cls, value: object) -> object:
        return [] if value is None else value

    @property
    def is_open(self) -> bool:
        return self.state == ReturnState.OPEN


class LoopNote(VendorRecord):
    id: StrId = None
    content: str = ""
    created_at: UtcDateTime = None
