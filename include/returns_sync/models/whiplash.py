"""Whiplash / Rydership V2 records: items, orders and consumer returns (the RMA)."""

from __future__ import annotations

from pydantic import Field, field_validator

from include.returns_sync.models._base import (
    IntId,
    Money,
    Quantity,
    StrId,
    UtcDateTime,
    VendorRecord,
)

#: Whiplash consumer-return status codes (no official enum; see docs/whiplash-api.md §4.6).
STATUS_NAMES = {
    25: "Unexpected",
    50: "Draft",
    100: "In Transit",
    150: "Arrived",
    200: "Processing",
    250: "Problem",
    300: "Completed",
}


class Originator(VendorRecord):
    """Our id for a Whiplash resource: for an RMA, `original_id` is the Loop return id."""

    id: IntId = None
    provider: str | None = None
    original_id: StrId = None
    group_id: StrId = None
    misc: str | None = None


class WhiplashItem(VendorRecord):
    id: int
    sku: str | None = None
    title: str | None = None
    name: str | None = None
    active: bool | None = None


class WhiplashOrder(VendorRecord):
    id: int
    status: int | None = None
    order_orig: str | None = None
    warehouse_id: IntId = None
    return_warehouse_id: IntId = None
    originator: Originator | None = None


class ReturnItem(VendorRecord):
    """A line of a consumer return: what was expected (`quantity`) and what was received."""

    id: IntId = None
    item_id: IntId = None
    sku: str | None = None
    name: str | None = None
    price: Money = None
    quantity: Quantity = 0
    quantity_good: Quantity = 0
    quantity_damaged: Quantity = 0
    return_action: str | None = None
    description: str | None = None


class ConsumerReturn(VendorRecord):
    id: int
    status: int | None = None
    status_name: str | None = None
    reference: StrId = None
    order_id: IntId = None
    warehouse_id: IntId = None
    tracking: str | None = None
    carrier: str | None = None
    created_at: UtcDateTime = None
    updated_at: UtcDateTime = None
    arrived_at: UtcDateTime = None
    completed_at: UtcDateTime = None
    originator: Originator | None = None
    return_items: list[ReturnItem] = Field(default_factory=list)

    @field_validator("return_items", mode="before")
    @classmethod
    def _null_items(cls, value: object) -> object:
        return [] if value is None else value

    @property
    def loop_return_id(self) -> str | None:
        """The Loop return this RMA was created for: originator first, then reference."""
        if self.originator and self.originator.original_id:
            return self.originator.original_id
        return self.reference
